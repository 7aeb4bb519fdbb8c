//! Benchmark: report ingest through the group-commit intake (the server's
//! path after signature verification), with the audit trail appending one
//! `report_accepted` event per report in the same transaction.
//! 200 devices, 32 concurrent submitters, 20,000 reports.
//!
//! `cargo run --release -p custodian-server --example ingest_bench`

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::Instant;

use custodian_proto::envelope::{REPORT_PAYLOAD_TYPE, sign};
use custodian_proto::identity::DeviceId;
use custodian_proto::v1 as pb;
use custodian_server::intake::Intake;
use custodian_server::store::{IncomingReport, ReportContent, Store, StoredEnvelope, TokenRecord};
use ed25519_dalek::SigningKey;
use prost::Message;

const DEVICES: usize = 200;
const REPORTS_PER_DEVICE: u64 = 100;

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

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let key = SigningKey::from_bytes(&[5; 32]);
    let devices: Vec<DeviceId> = (0..DEVICES).map(|i| enroll(&store, i, &key)).collect();
    store.flush_blocking().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let intake = Intake::start(store.clone());
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (i, device_id) in devices.iter().enumerate() {
            let intake = intake.clone();
            let key = key.clone();
            let device_id = *device_id;
            tasks.push(tokio::spawn(async move {
                for seq in 1..=REPORTS_PER_DEVICE {
                    let report = pb::Report {
                        device_id: device_id.to_string(),
                        seq,
                        collected_at_ms: 3,
                        agent_version: "bench".to_owned(),
                        inventory: Some(pb::Inventory { hostname: format!("pc-{i}"), ..Default::default() }),
                        heartbeat: None,
                    };
                    let envelope = sign(&key, REPORT_PAYLOAD_TYPE, report.encode_to_vec());
                    let incoming = IncomingReport {
                        device_id,
                        seq,
                        hostname: format!("pc-{i}"),
                        serial: None,
                        vendor: None,
                        model: None,
                        envelope: StoredEnvelope {
                            payload: envelope.payload,
                            payload_type: envelope.payload_type,
                            signature: envelope.signature,
                            received_at_ms: 3,
                        },
                        content: ReportContent::Inventory {
                            inventory: Box::new(report.inventory.clone().unwrap_or_default()),
                            sha256: [seq as u8; 32],
                        },
                    };
                    let out = intake.accept(vec![incoming]).await.unwrap();
                    assert!(out[0].is_ok());
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let elapsed = start.elapsed();
        let n = DEVICES as u64 * REPORTS_PER_DEVICE;
        println!(
            "ingested {n} reports from {DEVICES} concurrent devices in {:.2} s: {:.0} reports/s",
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64()
        );
    });
}
