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
#[derive(Parser)]
#[command(version, about, long_about = None)]
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
    /// Wipe attestations.
    #[command(subcommand)]
    Attestations(AttestationsCommand),
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
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
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
    },
    /// Show one device (by id, hostname or serial) and its latest report.
    Show {
        /// Device id, hostname or serial.
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
            eprintln!("custodianctl: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let server = args.server.context("no server given: use --server URL or set CUSTODIAN_SERVER")?;
    let identity = args.identity.context("no operator identity given: use --identity DIR or set CUSTODIAN_IDENTITY")?;
    let mut ctl = Ctl::connect(&server, &identity).await?;
    match args.command {
        Command::Token(TokenCommand::Create { site, ttl, role }) => {
            let kind = match role {
                TokenRole::Workstation => custodian_proto::v1::DeviceKind::Workstation,
                TokenRole::WipeStation => custodian_proto::v1::DeviceKind::WipeStation,
            };
            let token = ctl.create_token_of_kind(site, ttl, kind).await?;
            println!("{}", token.token);
            eprintln!("one-time enrolment token; expires {}", ctl::format_time(token.expires_at_ms));
        }
        Command::Device(DeviceCommand::List { json }) => {
            let devices = ctl.list_devices().await?;
            if json {
                println!("{}", ctl::render_device_list_json(&devices));
            } else {
                print!("{}", ctl::render_device_list(&devices));
            }
        }
        Command::Device(DeviceCommand::Show { query, json }) => {
            let device = ctl.get_device(&query).await?;
            if json {
                println!("{}", ctl::render_device_json(&device));
            } else {
                print!("{}", ctl::render_device(&device));
            }
        }
        Command::Attestations(AttestationsCommand::Unmatched { json }) => {
            let list = ctl.unmatched_attestations().await?;
            if json {
                println!("{}", ctl::render_unmatched_json(&list));
            } else {
                print!("{}", ctl::render_unmatched(&list));
            }
        }
        Command::Device(DeviceCommand::Revoke { query, reason }) => {
            let device = ctl.revoke_device(&query, &reason).await?;
            println!("revoked device {} ({}); its next call will be refused", device.device_id, device.hostname);
        }
    }
    Ok(())
}
