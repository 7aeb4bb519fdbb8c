//! `custodian-server`: create a data directory, issue operators, and serve.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use custodian_proto::identity::{OperatorName, Role};
use custodian_server::config::{Config, DataDir};

/// The Custodian server: enrolment, signed reports and wipe attestations,
/// the device register and lifecycle, rollouts, disposals and the audit
/// trail, over mutual-TLS gRPC.
#[derive(Parser)]
#[command(version, long_about = None)]
struct Args {
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data directory: CA, server TLS certificate, signing key, config, store.
    Init {
        /// The data directory to create (must not exist or be empty).
        #[arg(long)]
        data_dir: PathBuf,
        /// Extra names for the server certificate (DNS names or IP addresses).
        /// localhost, 127.0.0.1 and ::1 are always included.
        #[arg(long = "san", value_name = "NAME")]
        sans: Vec<String>,
    },
    /// Serve gRPC over TLS 1.3 with client certificates.
    Serve {
        /// The data directory made by `init`.
        #[arg(long)]
        data_dir: PathBuf,
        /// Listen address; overrides `listen` in server.toml (port 0 picks a free port).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Check the data directory and server.toml, and exit.
    CheckConfig {
        /// The data directory made by `init`.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Operator identities.
    #[command(subcommand)]
    Operator(OperatorCommand),
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Issue an operator certificate: writes ca.pem, cert.pem and key.pem to --out.
    Issue {
        /// The data directory made by `init`.
        #[arg(long)]
        data_dir: PathBuf,
        /// The operator's name (A-Z a-z 0-9 . _ @ -).
        #[arg(long)]
        name: OperatorName,
        /// service-desk, engineer, ig-auditor or admin.
        #[arg(long)]
        role: Role,
        /// Directory to write the identity into.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    custodian_server::init_logging(&args.log_level);
    match run(args.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custodian-server: error: {}", custodian_proto::errors::chain_text(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init { data_dir, mut sans } => {
            let mut all = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
            all.append(&mut sans);
            all.dedup();
            let data_dir = DataDir::new(data_dir);
            custodian_server::ca::init(&data_dir, &all)?;
            println!("created data directory {}", data_dir.root().display());
            println!("server certificate names: {}", all.join(", "));
            println!(
                "next: custodian-server operator issue --data-dir {} --name NAME --role admin --out DIR",
                data_dir.root().display()
            );
            Ok(())
        }
        Command::Serve { data_dir, listen } => {
            let data_dir = DataDir::new(data_dir);
            let mut config = Config::load(&data_dir)?;
            if let Some(listen) = listen {
                config.listen = listen;
            }
            let runtime = tokio::runtime::Runtime::new().context("start async runtime")?;
            runtime.block_on(async {
                let server = custodian_server::grpc::Server::bind(&data_dir, config).await?;
                let addr = server.local_addr()?;
                tracing::info!(%addr, "listening");
                // Scripts and tests read the bound address from this line.
                println!("listening on {addr}");
                server.run(shutdown_signal()).await
            })
        }
        Command::CheckConfig { data_dir } => {
            let data_dir = DataDir::new(data_dir);
            let config = Config::load(&data_dir)?;
            custodian_server::tls::server_config(&data_dir, config.device_cert_renewal_grace)?;
            custodian_server::ca::Ca::load(&data_dir)?;
            println!("configuration OK: listen {}", config.listen);
            Ok(())
        }
        Command::Operator(OperatorCommand::Issue { data_dir, name, role, out }) => {
            let cert = custodian_server::operators::issue(&DataDir::new(data_dir), &name, role, &out)?;
            println!("issued operator {name} ({role}) into {}", out.display());
            println!("certificate expires at {}", custodian_server::ctl::format_time(cert.not_after_ms));
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!(error = %e, "failed to install SIGTERM handler");
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
