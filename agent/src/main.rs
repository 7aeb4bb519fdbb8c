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
    /// Print what would be reported, without contacting a server.
    Inventory {
        /// Print JSON (the protobuf JSON mapping of the inventory).
        #[arg(long)]
        json: bool,
    },
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    custodian_agent::init_logging(&args.log_level);
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custodian-agent: error: {e:#}");
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
                    Err(e) => eprintln!("custodian-agent: warning: first report spooled but not delivered: {e:#}"),
                }
                Ok(())
            })
        }
        Command::Report { state_dir, server } => {
            let mut agent = Agent::open(StateDir::new(state_dir))?;
            let seq = agent.spool_report(&source)?.seq();
            runtime.block_on(async {
                // Machines that report from a timer rather than the daemon renew here.
                if let Err(e) = agent.renew_if_due(server.as_deref()).await {
                    eprintln!("custodian-agent: warning: failed to renew the certificate: {e:#}");
                }
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
                    delivery.rejected,
                    agent.spool.len()
                );
                if delivery.rejected > 0 {
                    anyhow::bail!("{} report(s) were rejected by the server (see the log)", delivery.rejected);
                }
                Ok(())
            })
        }
        Command::Run { state_dir, interval, server } => {
            let agent = Agent::open(StateDir::new(state_dir))?;
            runtime.block_on(custodian_agent::daemon::run(
                agent,
                &source,
                interval,
                server.as_deref(),
                shutdown_signal(),
            ))
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
