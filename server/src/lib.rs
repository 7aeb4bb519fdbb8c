//! The Custodian server: the device register, enrolment and signed-report
//! intake over mutual-TLS gRPC, and the CA behind them; plus the client code
//! of `custodianctl`, the operators' CLI.
//!
//! Start at [`grpc::Server`] for the serving side and [`ctl`] for the CLI.

pub mod audit;
pub mod ca;
pub mod certificate;
pub mod compliance;
pub mod config;
pub mod ctl;
pub mod custody;
pub mod disposal;
pub mod grpc;
pub mod intake;
pub mod inventory;
pub mod lifecycle;
pub mod operators;
pub mod peer;
pub mod rollout;
pub mod sanitisation;
pub mod spreadsheet;
pub mod store;
pub mod tls;
pub mod token;
pub mod verifier;

/// Sets up logging to stderr at `level` (overridden by `RUST_LOG` when set).
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
