//! Benchmark: report ingest through the group-commit intake alone (the
//! server's path after signature verification and decoding, with no TLS or
//! gRPC): 128 devices with one report in flight each, as in the end-to-end
//! `ingest_bench`, 2 KB payloads, each report committed with its
//! `report_accepted` audit event and acknowledged once durable. Prints
//! reports/s and the process's CPU per report for 3 rounds. Used to measure
//! what the audit trail costs: build once as is and once with
//! `docs/bench/ingest-without-audit.patch` applied (BENCHMARKS.md).
//!
//! `cargo run --release -p custodian-server --example ingest_bench`

#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::time::Instant;

use custodian_proto::identity::DeviceId;
use custodian_proto::v1 as pb;
use custodian_server::intake::Intake;
use custodian_server::store::{IncomingReport, Store, TokenRecord};
use ed25519_dalek::SigningKey;
use prost::Message;

const DEVICES: usize = 128;
const REPORTS_PER_DEVICE: u64 = 250;
const ROUNDS: u64 = 3;
const PAYLOAD_BYTES: usize = 2048;

fn enroll(store: &Store, i: usize, key: &SigningKey) -> DeviceId {
    let mut token_hash = [0u8; 32];
    token_hash[..8].copy_from_slice(&(i as u64).to_be_bytes());
    let token = custodian_server_token(i);
    store.create_token(&token_hash, &token).unwrap();
    let device_id = DeviceId::random();
    store.enroll(&token_hash, 2, device_record(device_id, key, i), ENROLL_EXTRA).unwrap();
    device_id
}

// BENCH-SHIM-START
const ENROLL_EXTRA: Option<DeviceId> = None;
fn custodian_server_token(_i: usize) -> TokenRecord {
    TokenRecord {
        created_at_ms: 1,
        expires_at_ms: i64::MAX,
        created_by: "bench".to_owned(),
        site: None,
        used: None,
        asset_tag: None,
        kind: Default::default(),
    }
}
fn device_record(device_id: DeviceId, key: &SigningKey, i: usize) -> custodian_server::store::DeviceRecord {
    custodian_server::store::DeviceRecord::enrolled(
        device_id,
        key.verifying_key().to_bytes(),
        &format!("pc-{i}"),
        None,
        2,
        i64::MAX,
    )
}
// BENCH-SHIM-END

/// Process CPU time (user + system) so far, in seconds, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// A report of about `PAYLOAD_BYTES`, as the handler hands it to the intake.
fn report(key: &SigningKey, device_id: DeviceId, i: usize, seq: u64) -> IncomingReport {
    let report = pb::Report {
        device_id: device_id.to_string(),
        seq,
        collected_at_ms: 3,
        agent_version: "bench".to_owned(),
        inventory: Some(pb::Inventory { hostname: format!("pc-{i}"), ..Default::default() }),
        heartbeat: None,
    };
    let mut payload = report.encode_to_vec();
    // Pad like the end-to-end bench: one unknown length-delimited field.
    let padding = vec![b'x'; PAYLOAD_BYTES.saturating_sub(payload.len() + 5)];
    prost::encoding::bytes::encode(15_000, &padding, &mut payload);
    common::incoming(key, &report, payload, None)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let key = SigningKey::from_bytes(&[5; 32]);
    let devices: Vec<DeviceId> = (0..DEVICES).map(|i| enroll(&store, i, &key)).collect();
    store.flush_blocking().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let intake = Intake::start(store.clone());
    println!(
        "{DEVICES} devices, one report in flight each, {REPORTS_PER_DEVICE} reports of {PAYLOAD_BYTES} B per device per round"
    );
    for round in 0..ROUNDS {
        // Built before the clock starts: the intake's work is what is timed.
        let first_seq = round * REPORTS_PER_DEVICE + 1;
        let per_device: Vec<Vec<IncomingReport>> = devices
            .iter()
            .enumerate()
            .map(|(i, id)| (first_seq..first_seq + REPORTS_PER_DEVICE).map(|seq| report(&key, *id, i, seq)).collect())
            .collect();
        let cpu_before = cpu_seconds();
        let start = Instant::now();
        runtime.block_on(async {
            let tasks: Vec<_> = per_device
                .into_iter()
                .map(|reports| {
                    let intake = intake.clone();
                    tokio::spawn(async move {
                        for incoming in reports {
                            let out = intake.accept(vec![incoming]).await.unwrap();
                            assert!(out[0].is_ok(), "{out:?}");
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        let elapsed = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu_before;
        let n = DEVICES as f64 * REPORTS_PER_DEVICE as f64;
        println!(
            "round {round}: {:.0} reports/s, CPU {:.0} us per report ({n} reports in {elapsed:.2} s)",
            n / elapsed,
            cpu * 1e6 / n
        );
    }
}
