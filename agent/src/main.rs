//! `custodian-agent`: enrol, report, run as a daemon, or print the inventory.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use custodian_agent::collect::{HostCollector, InventorySource};
use custodian_agent::state::StateDir;
use custodian_agent::{Agent, EnrollArgs};

/// The Custodian agent: reports this workstation's inventory, signed with its
/// own key, to the Custodian server over mutual TLS.
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

#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    /// Read the system from this root instead of / (for captured fixture trees).
    #[arg(long, global = true, default_value = "/")]
    root: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enrol this machine with a one-time token; then send a first report.
    Enroll {
        /// Server URL, e.g. https://custodian.example.nhs.uk:8443.
        #[arg(long)]
        server: String,
        /// The Custodian CA certificate (PEM) to trust.
        #[arg(long)]
        ca: PathBuf,
        /// The one-time enrolment token from `custodianctl token create`.
        #[arg(long)]
        token: String,
        /// Where the agent keeps its key, certificate and spool.
        #[arg(long, default_value = "/var/lib/custodian-agent")]
        state_dir: PathBuf,
    },
    /// Collect and spool one report, then deliver everything spooled.
    /// Exits non-zero if the server could not be reached (reports stay spooled).
    Report {
        /// Where the agent keeps its key, certificate and spool.
        #[arg(long, default_value = "/var/lib/custodian-agent")]
        state_dir: PathBuf,
        /// Server URL; defaults to the one enrolled with.
        #[arg(long)]
        server: Option<String>,
    },
    /// Run as a daemon: report every interval (jittered), retry with backoff, renew.
    Run {
        /// Where the agent keeps its key, certificate and spool.
        #[arg(long, default_value = "/var/lib/custodian-agent")]
        state_dir: PathBuf,
        /// How often to report (e.g. 15m, 1h).
        #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// Server URL; defaults to the one enrolled with.
        #[arg(long)]
        server: Option<String>,
    },
    /// Sanitise a disk (or image file), verify it by read-back, and send a
    /// signed wipe attestation.
    ///
    /// Exit status: 0 when the wipe passed and the server recorded its
    /// attestation; 3 when it passed and the attestation is spooled because
    /// the server could not be reached (`report` or the daemon sends it
    /// later); 1 when the wipe failed or was interrupted, or the server
    /// rejected the attestation (the disk is then not recorded as wiped).
    Wipe {
        /// The block device or image file to wipe.
        #[arg(long)]
        device: PathBuf,
        /// clear-zero, clear-random, clear-multipass, purge-crypto-erase or purge-sanitize.
        #[arg(long)]
        method: String,
        /// Passes for clear-multipass (random passes, then zeros; default 3).
        #[arg(long)]
        passes: Option<u32>,
        /// full, or sample:PERCENT (random blocks, always the first and last).
        #[arg(long, default_value = "full")]
        verify: custodian_agent::wipe::verify::VerifyMode,
        /// Who is doing the wipe (recorded in the attestation).
        #[arg(long, default_value = "")]
        operator: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// This machine is a wipe station: the disk came out of another
        /// machine, which the server finds by the disk's serial.
        #[arg(long)]
        station: bool,
        /// Where the agent keeps its key, certificate and spool.
        #[arg(long, default_value = "/var/lib/custodian-agent")]
        state_dir: PathBuf,
        /// Server URL; defaults to the one enrolled with.
        #[arg(long)]
        server: Option<String>,
    },
    /// Print what would be reported, without contacting a server.
    Inventory {
        /// Print JSON (the protobuf JSON mapping of the inventory).
        #[arg(long)]
        json: bool,
    },
}

/// Exit status of `wipe` when the wipe passed and its attestation is
/// spooled but not yet on the server.
const EXIT_WIPED_NOT_DELIVERED: u8 = 3;

/// A wipe passed and its attestation is spooled, but the server could not
/// be reached.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NotDelivered(String);

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    custodian_agent::init_logging(&args.log_level);
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.is::<NotDelivered>() => {
            eprintln!("custodian-agent: warning: {e}");
            std::process::ExitCode::from(EXIT_WIPED_NOT_DELIVERED)
        }
        Err(e) => {
            eprintln!("custodian-agent: error: {}", custodian_proto::errors::chain_text(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let source = HostCollector::new(&args.root);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("start async runtime")?;
    match args.command {
        Command::Enroll { server, ca, token, state_dir } => {
            let ca_pem =
                std::fs::read_to_string(&ca).with_context(|| format!("read CA certificate {}", ca.display()))?;
            let state = StateDir::new(state_dir);
            runtime.block_on(async {
                let device_id = custodian_agent::enroll(
                    &state,
                    EnrollArgs { server: &server, ca_pem: &ca_pem, token: &token },
                    &source,
                )
                .await?;
                outln!("enrolled as device {device_id}");
                let agent = Agent::open(state)?;
                agent.spool_report(&source)?;
                match agent.deliver(None).await {
                    Ok(delivery) => outln!("first report delivered ({} accepted)", delivery.accepted),
                    Err(e) => eprintln!(
                        "custodian-agent: warning: first report spooled but not delivered: {}",
                        custodian_proto::errors::chain_text(e.as_ref())
                    ),
                }
                Ok(())
            })
        }
        Command::Report { state_dir, server } => {
            let mut agent = Agent::open(StateDir::new(state_dir))?;
            agent.recover_interrupted_wipe()?;
            let seq = agent.spool_report(&source)?.seq();
            runtime.block_on(async {
                // Machines that report from a timer rather than the daemon renew here.
                renew_or_warn(&mut agent, server.as_deref()).await;
                let mut delivery = agent.deliver(server.as_deref()).await.with_context(|| {
                    format!("report {seq} is spooled, {} waiting; not delivered", agent.spool.len())
                })?;
                if delivery.full_inventory_requested {
                    // The server did not know the inventory a heartbeat pointed to.
                    agent.spool_report(&source)?;
                    delivery = agent.deliver(server.as_deref()).await.context("deliver the full inventory")?;
                }
                outln!(
                    "delivered: {} accepted, {} already held, {} rejected; {} waiting",
                    delivery.accepted,
                    delivery.duplicates,
                    delivery.rejected.len(),
                    agent.spool.len()
                );
                if !delivery.rejected.is_empty() {
                    anyhow::bail!("{} report(s) were rejected by the server (see the log)", delivery.rejected.len());
                }
                Ok(())
            })
        }
        Command::Run { state_dir, interval, server } => {
            let agent = Agent::open(StateDir::new(state_dir))?;
            agent.recover_interrupted_wipe()?;
            runtime.block_on(custodian_agent::daemon::run(
                agent,
                &source,
                interval,
                server.as_deref(),
                shutdown_signal(),
            ))
        }
        Command::Wipe { device, method, passes, verify, operator, yes, station, state_dir, server } => {
            let mut agent = Agent::open(StateDir::new(state_dir))?;
            agent.recover_interrupted_wipe()?;
            let method = custodian_agent::wipe::methods::Method::parse(&method, passes)?;
            let device_id = agent.enrollment.device_id.to_string();
            let req = custodian_agent::wipe::WipeRequest {
                device,
                method,
                verify,
                operator,
                source_device_id: if station { String::new() } else { device_id.clone() },
                signer_device_id: device_id,
                root: args.root.clone(),
                show_progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            wipe(&mut agent, &req, yes, &runtime, server.as_deref())
        }
        Command::Inventory { json } => {
            let inventory = source.collect();
            if json {
                outln!("{}", custodian_agent::collect::to_json(&inventory));
            } else {
                out!("{}", custodian_agent::collect::to_text(&inventory));
            }
            Ok(())
        }
    }
}

fn wipe(
    agent: &mut Agent,
    req: &custodian_agent::wipe::WipeRequest,
    yes: bool,
    runtime: &tokio::runtime::Runtime,
    server: Option<&str>,
) -> anyhow::Result<()> {
    use custodian_agent::wipe::{self, attestation};
    use custodian_proto::v1 as pb;

    let prepared = wipe::prepare(req)?;
    let id = &prepared.target.identity;
    eprintln!(
        "about to {} {}\n  model:  {}\n  serial: {}\n  WWN:    {}\n  size:   {} bytes ({:.1} GiB); hidden area: {}",
        req.method.name(),
        prepared.target.path.display(),
        id.model.as_deref().unwrap_or("unknown"),
        id.serial.as_deref().unwrap_or("unknown"),
        id.wwn.as_deref().unwrap_or("unknown"),
        id.apparent_size,
        id.apparent_size as f64 / (1u64 << 30) as f64,
        id.hidden_area.describe(),
    );
    if !yes {
        eprint!("EVERYTHING on it will be destroyed. Type the serial number (or `yes`) to go on: ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).context("read confirmation")?;
        let answer = answer.trim();
        if answer.is_empty() || (answer != "yes" && Some(answer) != id.serial.as_deref()) {
            anyhow::bail!("not confirmed; nothing was written");
        }
    }
    let cancel = wipe::engine::Cancel::new();
    {
        // SIGINT and SIGTERM are caught (not left to kill the process) from
        // before the in-progress marker is written until the process exits.
        let cancel = cancel.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("wipe-signals".to_owned())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
                let Ok(rt) = rt else { return };
                rt.block_on(async {
                    use tokio::signal::unix::{SignalKind, signal};
                    let (Ok(mut int), Ok(mut term)) =
                        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
                    else {
                        return;
                    };
                    let _ = ready_tx.send(());
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                    eprintln!("custodian-agent: stopping the wipe; it will be attested as interrupted");
                    cancel.set();
                });
            })
            .context("start the signal watcher")?;
        ready_rx.recv().context("install the SIGINT/SIGTERM handlers")?;
    }
    let marker = attestation::marker_path(&agent.state);
    let result = wipe::execute(req, &prepared, &wipe::Hooks::default(), &cancel, |started| {
        attestation::write_marker(&marker, started)
    })?;
    let seq = agent.spool_attestation(&result)?;
    attestation::remove_marker(&marker)?;
    let outcome = result.result.clone().unwrap_or_default();
    let delivered = runtime.block_on(async {
        // A wipe can take hours, or run on a machine that was long offline.
        renew_or_warn(agent, server).await;
        agent.deliver(server).await
    });
    // Whether the server now holds this attestation: a passed wipe it does
    // not hold proves nothing to anyone yet.
    let recorded = match &delivered {
        Ok(d) => match d.rejected.iter().find(|r| r.seq == seq) {
            Some(rejected) => Err(anyhow::anyhow!(
                "the server REJECTED attestation {seq}: {}; the disk is NOT recorded as wiped",
                rejected.reason
            )),
            None => {
                eprintln!("attestation {seq} delivered and recorded by the server");
                Ok(())
            }
        },
        Err(e) => Err(anyhow::Error::new(NotDelivered(format!(
            "attestation {seq} is spooled but not delivered: {}; the next `custodian-agent report` or the daemon \
             sends it, and until then the server does not know the disk was wiped",
            custodian_proto::errors::chain_text(e.as_ref())
        )))),
    };
    match pb::WipeOutcome::try_from(outcome.outcome) {
        Ok(pb::WipeOutcome::Passed) => {
            outln!("wipe PASSED: {} by {}; attestation {seq}", prepared.target.path.display(), req.method.name());
            recorded
        }
        Ok(pb::WipeOutcome::Interrupted) => {
            anyhow::bail!("wipe INTERRUPTED ({}); attestation {seq} says so", outcome.reason)
        }
        _ => anyhow::bail!("wipe FAILED: {}; attestation {seq} says so", outcome.reason),
    }
}

/// Renews the certificate if it is due, and warns (delivery is tried anyway)
/// if that fails.
async fn renew_or_warn(agent: &mut Agent, server: Option<&str>) {
    if let Err(e) = agent.renew_if_due(server).await {
        eprintln!(
            "custodian-agent: warning: failed to renew the certificate: {}",
            custodian_proto::errors::chain_text(e.as_ref())
        );
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
