//! `custodianctl`: the operators' CLI (service desk, engineers, IG, admins).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use custodian_server::ctl::{self, Ctl};

/// Operate a Custodian server: enrolment tokens and the device register.
///
/// Every call authenticates with an operator identity made by
/// `custodian-server operator issue`; the server checks its role.
/// `println!` that ends quietly when the reader has gone (`| head`) instead
/// of panicking on the broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!` with the same treatment as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// custodianctl: the operators' command line for a Custodian server. Look
/// machines up, move them through their lifecycle, plan rollouts, record
/// wipes, destructions and disposals, and export and verify the audit trail,
/// over mutual TLS with an operator identity.
#[derive(Parser)]
#[command(version, long_about = None)]
struct Args {
    /// Server URL, e.g. https://custodian.example.nhs.uk:8443.
    #[arg(long, env = "CUSTODIAN_SERVER", global = true)]
    server: Option<String>,
    /// Directory holding ca.pem, cert.pem and key.pem of an operator identity.
    #[arg(long, env = "CUSTODIAN_IDENTITY", global = true)]
    identity: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enrolment tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The device register.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// The audit trail: export, verify offline, prove inclusion.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Operator identities (admin).
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Rollout plans, bookings, run sheets and progress.
    #[command(subcommand)]
    Rollout(ctl::RolloutCommand),
    /// Wipe attestations.
    #[command(subcommand)]
    Attestations(AttestationsCommand),
    /// Disks destroyed rather than wiped.
    #[command(subcommand)]
    Disk(ctl::DiskCommand),
    /// Alerts: machines that called in after they left.
    #[command(subcommand)]
    Alerts(ctl::AlertsCommand),
    /// The disposal register.
    #[command(subcommand)]
    Disposals(ctl::DisposalsCommand),
    /// Certificates of sanitisation: get one, verify one offline.
    #[command(subcommand)]
    Certificate(ctl::CertificateCommand),
    /// Chain of custody to a contractor: manifests and reconciliation.
    #[command(subcommand)]
    Custody(ctl::CustodyCommand),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Export events, checkpoints and the public key into DIR (ig-auditor or admin).
    Export {
        /// Directory to write (created; must not hold an export).
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify an export OFFLINE: recompute the tree, check every checkpoint.
    Verify {
        /// The export directory.
        dir: PathBuf,
        /// A checkpoint kept from earlier: the export must be consistent with it.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Print an inclusion proof of event SEQ against the latest checkpoint.
    Prove {
        /// The event's sequence number.
        seq: u64,
    },
    /// Check the server's log extends a kept checkpoint (consistency proof, checked here).
    Consistency {
        /// The checkpoint file kept from earlier.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The server's signing key (server-signing.pub.pem).
        #[arg(long)]
        key: PathBuf,
    },
    /// Verify an inclusion proof OFFLINE.
    VerifyProof {
        /// The proof file (as printed by `audit prove`).
        file: PathBuf,
        /// The server's signing key (server-signing.pub.pem).
        #[arg(long)]
        key: PathBuf,
    },
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Issue an operator identity into --out (admin); recorded in the audit trail.
    Issue {
        /// The operator's name (A-Z a-z 0-9 . _ @ -).
        #[arg(long)]
        name: String,
        /// service-desk, engineer, ig-auditor or admin.
        #[arg(long)]
        role: String,
        /// Directory to write ca.pem, cert.pem and key.pem into.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum AttestationsCommand {
    /// Attestations whose disk serial is in no machine's latest inventory.
    Unmatched {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What an enrolment token enrols.
#[derive(Clone, Copy, clap::ValueEnum)]
enum TokenRole {
    /// A workstation in the register.
    Workstation,
    /// A wipe station that wipes disks pulled from other machines.
    WipeStation,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a one-time enrolment token (engineer or admin).
    Create {
        /// Site the enrolling machine belongs to.
        #[arg(long)]
        site: Option<String>,
        /// How long the token stays valid (e.g. 30m, 24h, 7d); server default if omitted.
        #[arg(long, value_parser = ctl::parse_ttl)]
        ttl: Option<Duration>,
        /// Bind the token to the register entry with this asset tag.
        #[arg(long)]
        asset_tag: Option<String>,
        /// What the enrolling machine is.
        #[arg(long, value_enum, default_value = "workstation")]
        role: TokenRole,
    },
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// List registered devices.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Only devices whose latest inventory is not compliant (a fixed data
        /// volume not known to be encrypted, or no inventory yet).
        #[arg(long)]
        noncompliant: bool,
        /// Only devices that have not checked in for at least this many days.
        #[arg(long, value_name = "DAYS")]
        stale: Option<u32>,
        /// Print CSV instead of a table.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        /// Only devices in this lifecycle state.
        #[arg(long)]
        state: Option<String>,
        /// Only devices at this site.
        #[arg(long)]
        site: Option<String>,
        /// Only devices whose model contains this.
        #[arg(long)]
        model: Option<String>,
    },
    /// Add a machine to the register before it enrols (engineer or admin).
    Add {
        /// System serial number.
        #[arg(long)]
        serial: String,
        /// Asset tag.
        #[arg(long)]
        asset_tag: String,
        /// Model.
        #[arg(long)]
        model: String,
        /// Supplier.
        #[arg(long)]
        supplier: Option<String>,
        /// Purchase order reference.
        #[arg(long)]
        order_ref: Option<String>,
        /// Site.
        #[arg(long)]
        site: Option<String>,
        /// ordered or in_stock.
        #[arg(long, default_value = "ordered")]
        state: String,
    },
    /// Import machines from a CSV file, all or none (engineer or admin).
    Import {
        /// CSV with a header row: serial, asset_tag, model [, supplier, order_ref, site, state].
        file: PathBuf,
    },
    /// Move a device through its lifecycle (engineer or admin).
    Transition {
        /// Device id, hostname, serial, asset tag or MAC.
        query: String,
        /// The state to move to.
        state: String,
        /// Why (kept in the audit trail).
        #[arg(long)]
        reason: String,
        /// Deploy despite the encryption guard, for this reason (audited).
        #[arg(long = "override", value_name = "REASON")]
        override_reason: Option<String>,
        /// Site it is now at.
        #[arg(long)]
        site: Option<String>,
        /// Ward it is now on.
        #[arg(long)]
        ward: Option<String>,
        /// Who has it now.
        #[arg(long)]
        assigned_to: Option<String>,
        /// For disposed: recycle, resale, destruction or return-to-lessor.
        #[arg(long)]
        route: Option<String>,
        /// For disposed: the contractor taking it.
        #[arg(long)]
        contractor: Option<String>,
        /// For disposed: the collection or WEEE consignment reference.
        #[arg(long)]
        consignment_ref: Option<String>,
    },
    /// Add a note to a device's history (service desk, engineer or admin).
    Note {
        /// Device id, hostname, serial, asset tag or MAC.
        query: String,
        /// The note.
        text: String,
    },
    /// One device's audit events, newest first.
    History {
        /// Device id, hostname, serial, asset tag or MAC.
        query: String,
        /// Print the events as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Show one device (by id, hostname, serial, asset tag or MAC) and its latest report.
    Show {
        /// Device id, hostname, serial, asset tag or MAC.
        query: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a device: its next call is refused (engineer or admin).
    Revoke {
        /// Device id, hostname or serial.
        query: String,
        /// Why (kept with the device record).
        #[arg(long)]
        reason: String,
    },
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    custodian_server::init_logging("warn");
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("custodianctl: error: start async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custodianctl: error: {}", custodian_proto::errors::chain_text(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    // Offline commands need no server.
    match &args.command {
        Command::Audit(AuditCommand::Verify { dir, checkpoint }) => {
            let outcome = ctl::verify_export_dir(dir, checkpoint.as_deref())?;
            for problem in &outcome.problems {
                outln!("FAIL {problem}");
            }
            if outcome.n_more_problems > 0 {
                outln!("FAIL ... and {} more problems", outcome.n_more_problems);
            }
            if let Some(first) = outcome.problems.first() {
                anyhow::bail!("the audit trail does not verify: {first}");
            }
            outln!(
                "OK {} events; {} checkpoints verified (latest covers {} events); root {}",
                outcome.n_events,
                outcome.n_checkpoints_ok,
                outcome.latest_checkpoint_size.unwrap_or(0),
                outcome.root.map(hex::encode).unwrap_or_default()
            );
            if checkpoint.is_some() {
                outln!("OK consistent with the kept checkpoint");
            }
            return Ok(());
        }
        Command::Audit(AuditCommand::VerifyProof { file, key }) => {
            outln!("OK {}", ctl::verify_proof_file(file, key)?);
            return Ok(());
        }
        Command::Certificate(ctl::CertificateCommand::Verify { dir }) => {
            let summary = custodian_server::certificate::verify_certificate_dir(dir)
                .map_err(|e| anyhow::anyhow!("the certificate does not verify: {e:#}"))?;
            outln!(
                "OK certificate of sanitisation of {}: signature verified; {} disk(s), each piece of evidence matches \
                 and verifies; disposal event included in the signed checkpoint of {} events",
                summary.hostname,
                summary.n_disks,
                summary.checkpoint_size
            );
            return Ok(());
        }
        _ => {}
    }
    let server = args.server.context("no server given: use --server URL or set CUSTODIAN_SERVER")?;
    let identity = args.identity.context("no operator identity given: use --identity DIR or set CUSTODIAN_IDENTITY")?;
    let mut ctl = Ctl::connect(&server, &identity).await?;
    match args.command {
        Command::Token(TokenCommand::Create { site, ttl, asset_tag, role }) => {
            let kind = match role {
                TokenRole::Workstation => custodian_proto::v1::DeviceKind::Workstation,
                TokenRole::WipeStation => custodian_proto::v1::DeviceKind::WipeStation,
            };
            let token = ctl.create_token(site, ttl, asset_tag, kind).await?;
            outln!("{}", token.token);
            eprintln!("one-time enrolment token; expires {}", ctl::format_time(token.expires_at_ms));
        }
        Command::Device(DeviceCommand::List { json, csv, state, site, model, noncompliant, stale }) => {
            let req = custodian_proto::v1::ListDevicesRequest {
                stale_days: stale.unwrap_or(0),
                noncompliant,
                state: state.unwrap_or_default(),
                site: site.unwrap_or_default(),
                model: model.unwrap_or_default(),
                ..Default::default()
            };
            let devices = ctl.list_devices(req).await?;
            if csv {
                out!("{}", ctl::render_device_list_csv(&devices));
            } else if json {
                outln!("{}", ctl::render_device_list_json(&devices));
            } else {
                out!("{}", ctl::render_device_list(&devices));
            }
        }
        Command::Device(DeviceCommand::Show { query, json }) => {
            let device = ctl.get_device(&query).await?;
            if json {
                outln!("{}", ctl::render_device_json(&device));
            } else {
                out!("{}", ctl::render_device(&device));
            }
        }
        Command::Attestations(AttestationsCommand::Unmatched { json }) => {
            let list = ctl.unmatched_attestations().await?;
            if json {
                outln!("{}", ctl::render_unmatched_json(&list));
            } else {
                out!("{}", ctl::render_unmatched(&list));
            }
        }
        Command::Device(DeviceCommand::Revoke { query, reason }) => {
            let device = ctl.revoke_device(&query, &reason).await?;
            outln!("revoked device {} ({}); its next call will be refused", device.device_id, device.hostname);
        }
        Command::Device(DeviceCommand::Add { serial, asset_tag, model, supplier, order_ref, site, state }) => {
            let device = custodian_proto::v1::NewDevice {
                line: 0,
                serial,
                asset_tag,
                model,
                supplier: supplier.unwrap_or_default(),
                order_ref: order_ref.unwrap_or_default(),
                site: site.unwrap_or_default(),
                state,
            };
            for d in ctl.add_devices(vec![device], "device add").await? {
                outln!(
                    "added device {} (asset tag {}, serial {}) in state {}",
                    d.device_id,
                    d.asset_tag,
                    d.serial,
                    d.state
                );
            }
        }
        Command::Device(DeviceCommand::Import { file }) => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?;
            let devices = ctl::parse_device_csv(&text)?;
            let source =
                format!("import {}", file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            let added = ctl.add_devices(devices, &source).await?;
            outln!("imported {} devices from {}", added.len(), file.display());
        }
        Command::Device(DeviceCommand::Transition {
            query,
            state,
            reason,
            override_reason,
            site,
            ward,
            assigned_to,
            route,
            contractor,
            consignment_ref,
        }) => {
            let req = custodian_proto::v1::TransitionDeviceRequest {
                query,
                state,
                reason,
                override_reason: override_reason.unwrap_or_default(),
                site: site.unwrap_or_default(),
                ward: ward.unwrap_or_default(),
                assigned_to: assigned_to.unwrap_or_default(),
                disposal_route: route.unwrap_or_default(),
                contractor: contractor.unwrap_or_default(),
                consignment_ref: consignment_ref.unwrap_or_default(),
            };
            let res = ctl.transition(req).await?;
            if let Some(d) = res.device {
                outln!("device {} is now {} (audit event {})", d.device_id, d.state, res.audit_seq);
            }
            for warning in &res.warnings {
                eprintln!("custodianctl: WARNING: {warning}");
            }
        }
        Command::Device(DeviceCommand::Note { query, text }) => {
            let res = ctl.add_note(&query, &text).await?;
            outln!("note added to device {} (audit event {})", res.device_id, res.audit_seq);
        }
        Command::Device(DeviceCommand::History { query, json }) => {
            let (device_id, events) = ctl.history(&query).await?;
            if json {
                for event in &events {
                    outln!("{}", String::from_utf8_lossy(&event.to_bytes()));
                }
            } else {
                out!("{}", ctl::render_history(&device_id, &events));
            }
        }
        Command::Audit(AuditCommand::Export { out }) => {
            let summary = ctl.export_audit(&out).await?;
            outln!(
                "exported {} events and {} checkpoints to {}",
                summary.n_events,
                summary.n_checkpoints,
                out.display()
            );
        }
        Command::Audit(AuditCommand::Consistency { checkpoint, key }) => {
            println!("OK {}", ctl.check_consistency(&checkpoint, &key).await?);
        }
        Command::Audit(AuditCommand::Prove { seq }) => {
            outln!("{}", ctl.prove(seq).await?);
        }
        Command::Audit(AuditCommand::Verify { .. } | AuditCommand::VerifyProof { .. }) => {
            unreachable!("offline commands return before connecting")
        }
        Command::Operator(OperatorCommand::Issue { name, role, out }) => {
            let res = ctl.issue_operator(&name, &role).await?;
            ctl::write_identity(&out, &res)?;
            outln!("issued operator {name} ({role}) into {}", out.display());
            outln!("certificate expires at {}", ctl::format_time(res.not_after_ms));
        }
        Command::Rollout(command) => ctl::run_rollout(&ctl, command).await?,
        Command::Disk(command) => out!("{}", ctl::run_disk(&ctl, command).await?),
        Command::Alerts(command) => out!("{}", ctl::run_alerts(&ctl, command).await?),
        Command::Disposals(command) => out!("{}", ctl::run_disposals(&ctl, command).await?),
        Command::Certificate(ctl::CertificateCommand::Get { query, out }) => {
            out!("{}", ctl::get_certificate(&ctl, &query, &out).await?)
        }
        Command::Certificate(ctl::CertificateCommand::Verify { .. }) => {
            unreachable!("offline commands return before connecting")
        }
        Command::Custody(command) => out!("{}", ctl::run_custody(&ctl, command).await?),
    }
    Ok(())
}
