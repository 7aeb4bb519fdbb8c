//! `ingest_bench`: the load benchmark of report intake (issue 2, item 10).
//!
//! One run measures two things with the same clients, the same TLS (1.3, the
//! same CA, one client certificate per simulated device, the ring provider)
//! and the same request bytes:
//!
//! - **baseline**: a trivial unary call on a bare tonic server (`Echo`, run as
//!   a child process of this binary: `ingest_bench echo-server`);
//! - **ingest**: `Agent.SubmitReports` on the real `custodian-server serve`
//!   (a child process with a fresh data directory), acknowledged only once
//!   durable.
//!
//! With `--rounds N` the two alternate N times against the same two servers
//! (each agent's sequence numbers carrying on), and the bench ends with the
//! median ratio: the machine's speed drifts more than one pair can show.
//!
//! Every report is enrolled, built and signed before the clock starts, so the
//! load generator only sends. Results go to stdout; see BENCHMARKS.md.

#[path = "ingest_bench/cpu.rs"]
mod cpu;
#[path = "ingest_bench/echo.rs"]
mod echo;
#[path = "ingest_bench/fixture.rs"]
mod fixture;
#[path = "ingest_bench/load.rs"]
mod load;
#[path = "ingest_bench/reports.rs"]
mod reports;
#[path = "ingest_bench/rounds.rs"]
mod rounds;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use custodian_proto::v1 as pb;
use prost::Message;

use crate::load::Run;

/// Load benchmark: signed-report ingest against a bare tonic mTLS baseline.
#[derive(Parser)]
#[command(about, long_about = None)]
struct Args {
    /// Simulated agents, each with its own key, certificate and mTLS connection.
    #[arg(long, default_value_t = 64)]
    devices: usize,
    /// Reports each agent submits (in each round).
    #[arg(long, default_value_t = 500)]
    reports: usize,
    /// Rounds of baseline then ingest, alternated, against the same two
    /// servers; with more than one, the bench ends with the median ratio
    /// (the machine's speed drifts, and one pair can land anywhere in it).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Envelopes per `SubmitReports` call (an agent catching up batches).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Approximate size of each signed report payload, in bytes.
    #[arg(long, default_value_t = 2048)]
    payload_bytes: usize,
    /// Where to create the temporary server data directory (it should be on
    /// a real disk: the ingest acknowledges only after fsync).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the work directory (server data and logs) afterwards, and print its path.
    #[arg(long)]
    keep_work_dir: bool,
    /// The `custodian-server` binary; by default the one next to this binary.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the baseline echo service with a data directory's TLS setup
    /// (used by the benchmark itself; prints `listening on ADDR`).
    EchoServer {
        /// The server data directory whose CA and certificate to use.
        #[arg(long)]
        data_dir: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let res = match args.command {
        Some(Command::EchoServer { ref data_dir }) => echo::serve(data_dir),
        None => run(&args),
    };
    match res {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingest_bench: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    if args.devices == 0 || args.reports == 0 || args.batch == 0 || args.rounds == 0 {
        bail!("--devices, --reports, --batch and --rounds must be at least 1");
    }
    if !args.reports.is_multiple_of(args.batch) {
        bail!("--reports ({}) must be a multiple of --batch ({})", args.reports, args.batch);
    }
    let server_bin = match &args.server_bin {
        Some(path) => path.clone(),
        None => fixture::sibling_binary("custodian-server")?,
    };
    let work_dir = match &args.work_dir {
        Some(dir) => tempfile::Builder::new().prefix("ingest-bench-").tempdir_in(dir),
        None => tempfile::Builder::new().prefix("ingest-bench-").tempdir(),
    }
    .context("create work directory")?;
    let work_dir = if args.keep_work_dir {
        let kept = work_dir.keep();
        eprintln!("keeping the work directory {}", kept.display());
        WorkDir::Kept(kept)
    } else {
        WorkDir::Temp(work_dir)
    };
    let runtime = tokio::runtime::Runtime::new().context("start async runtime")?;
    runtime.block_on(async {
        let setup_started = Instant::now();
        let server = fixture::Server::start(&server_bin, work_dir.path()).await?;
        let echo_server = fixture::EchoServer::start(&server.data_dir).await?;
        let fleet = fixture::Fleet::enroll(&server, args.devices).await?;
        eprintln!("enrolled {} devices in {:.1?}", fleet.devices.len(), setup_started.elapsed());

        let signing_started = Instant::now();
        let total_reports = args.reports * args.rounds;
        let batches = reports::sign_all(&fleet.devices, total_reports, args.batch, args.payload_bytes);
        let payload_len = batches.first().and_then(|b| b.first()).map_or(0, |req| req.envelopes[0].payload.len());
        let request_len = batches.first().and_then(|b| b.first()).map_or(0, Message::encoded_len);
        eprintln!(
            "signed {} reports in {:.1?} (payload {payload_len} B, request {request_len} B)",
            args.devices * total_reports,
            signing_started.elapsed()
        );

        let mut runs = Vec::with_capacity(args.rounds);
        for (round, batches) in rounds::split(batches, args.rounds)?.into_iter().enumerate() {
            // The same bytes, for the echo server, made per round to halve the memory held.
            let echo_requests: Vec<Vec<echo::pb::EchoRequest>> = batches
                .iter()
                .map(|device| device.iter().map(|req| echo::pb::EchoRequest { payload: req.encode_to_vec() }).collect())
                .collect();
            let baseline = load::baseline(&fleet, &echo_server.url, &|| echo_server.cpu_time(), echo_requests)
                .await
                .with_context(|| format!("run baseline, round {}", round + 1))?;
            let ingest = load::ingest(&fleet, &server.url, &|| server.cpu_time(), batches)
                .await
                .with_context(|| format!("run ingest, round {}", round + 1))?;
            runs.push((baseline, ingest));
        }
        server.check_stored(&fleet, total_reports as u64).await.context("check what the server stored")?;
        check_revocation(&server, &fleet, total_reports as u64, args.payload_bytes)
            .await
            .context("check that a revoked device is refused")?;

        println!(
            "ingest_bench: {} devices x {} reports, {} envelope(s) per call, report payload {payload_len} B, \
             request {request_len} B{}",
            args.devices,
            args.reports,
            args.batch,
            if args.rounds > 1 { format!(", {} rounds", args.rounds) } else { String::new() }
        );
        for (round, (baseline, ingest)) in runs.iter().enumerate() {
            if args.rounds > 1 {
                println!("round {} of {}", round + 1, args.rounds);
            }
            print_run("baseline (bare tonic mTLS echo)", baseline, args.batch);
            print_run("ingest (custodian-server, durable)", ingest, args.batch);
            println!("ratio ingest/baseline: {:.2}", ratio(baseline, ingest, args.batch));
        }
        if args.rounds > 1 {
            print_summary(&runs, args.batch);
        }
        anyhow::Ok(())
    })
}

/// The benchmark's scratch directory: removed afterwards unless kept.
enum WorkDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl WorkDir {
    fn path(&self) -> &std::path::Path {
        match self {
            WorkDir::Temp(dir) => dir.path(),
            WorkDir::Kept(path) => path,
        }
    }
}

/// Revokes the first device, whose key the server has just used for every
/// one of its reports, and checks that its very next report is refused and
/// not stored.
async fn check_revocation(
    server: &fixture::Server,
    fleet: &fixture::Fleet,
    n_reports: u64,
    payload_bytes: usize,
) -> anyhow::Result<()> {
    let device = fleet.devices.first().context("no devices")?;
    server.revoke(device.device_id).await?;
    let identity = custodian_proto::channel::ClientIdentity { cert_pem: &device.cert_pem, key_pem: &device.key.pem };
    let channel = custodian_proto::channel::connect(&server.url, &fleet.ca_pem, Some(identity)).await?;
    let envelope = reports::sign_report(device, n_reports + 1, payload_bytes);
    let res = pb::agent_client::AgentClient::new(channel)
        .submit_reports(pb::SubmitReportsRequest { envelopes: vec![envelope] })
        .await;
    match res {
        Err(status) if status.code() == tonic::Code::PermissionDenied => {}
        other => bail!("a revoked device's report got {other:?}, expected PermissionDenied"),
    }
    server.check_stored(fleet, n_reports).await
}

/// Ingest's rate as a share of the baseline's.
fn ratio(baseline: &Run, ingest: &Run, batch: usize) -> f64 {
    ingest.reports_per_sec(batch) / baseline.reports_per_sec(batch)
}

/// The medians over all rounds.
fn print_summary(runs: &[(Run, Run)], batch: usize) {
    let of = |values: Vec<f64>| rounds::summary(&values).expect("at least one round");
    let baseline = of(runs.iter().map(|(baseline, _)| baseline.reports_per_sec(batch)).collect());
    let ingest = of(runs.iter().map(|(_, ingest)| ingest.reports_per_sec(batch)).collect());
    let server_cpu = of(runs.iter().map(|(_, ingest)| ingest.server_cpu_us_per_report(batch)).collect());
    let ratios = of(runs.iter().map(|(baseline, ingest)| ratio(baseline, ingest, batch)).collect());
    println!("over {} rounds (median, and the range):", runs.len());
    println!("  baseline {:.0} reports/s ({:.0} to {:.0})", baseline.median, baseline.min, baseline.max);
    println!(
        "  ingest   {:.0} reports/s ({:.0} to {:.0}), server CPU {:.0} us per report ({:.0} to {:.0})",
        ingest.median, ingest.min, ingest.max, server_cpu.median, server_cpu.min, server_cpu.max
    );
    println!("  ratio ingest/baseline: median {:.2} ({:.2} to {:.2})", ratios.median, ratios.min, ratios.max);
}

fn print_run(name: &str, run: &Run, batch: usize) {
    println!(
        "{name:<36} {:>8.0} reports/s ({:>7.0} calls/s)  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} calls in {:.2?}; \
         CPU per report: server {:.0} us, load generator {:.0} us)",
        run.reports_per_sec(batch),
        run.calls_per_sec(),
        run.percentile_ms(50.0),
        run.percentile_ms(99.0),
        run.latencies_us.len(),
        run.elapsed,
        run.server_cpu_us_per_report(batch),
        run.client_cpu_us_per_report(batch),
    );
    let threads: Vec<String> = run
        .server_threads_us_per_report(batch)
        .into_iter()
        .filter(|(_, us)| *us >= 0.5)
        .map(|(name, us)| format!("{name} {us:.0}"))
        .collect();
    println!("{:<36} server CPU us per report by thread: {}", "", threads.join(", "));
    let (busy, idle, stolen) = run.machine_cpu.percentages();
    println!("{:<36} machine CPU: busy {busy:.0}%, idle {idle:.0}%, stolen by the hypervisor {stolen:.0}%", "");
}

/// The request type of the ingest path, named for readability.
type SubmitReports = pb::SubmitReportsRequest;
