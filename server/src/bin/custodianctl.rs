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
        Command::Token(TokenCommand::Create { site, ttl }) => {
            let token = ctl.create_token(site, ttl).await?;
            outln!("{}", token.token);
            eprintln!("one-time enrolment token; expires {}", ctl::format_time(token.expires_at_ms));
        }
        Command::Device(DeviceCommand::List { json, noncompliant, stale }) => {
            let filter = custodian_proto::v1::ListDevicesRequest { stale_days: stale.unwrap_or(0), noncompliant };
            let devices = ctl.list_devices(filter).await?;
            if json {
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
        Command::Device(DeviceCommand::Revoke { query, reason }) => {
            let device = ctl.revoke_device(&query, &reason).await?;
            outln!("revoked device {} ({}); its next call will be refused", device.device_id, device.hostname);
        }
    }
    Ok(())
}
