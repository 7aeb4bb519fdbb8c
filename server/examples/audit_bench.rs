//! Benchmark: build an audit export of N events (default 1,000,000) with a
//! checkpoint every 1,000, then verify it offline as `custodianctl audit
//! verify` does, and print the times.
//!
//! `cargo run --release -p custodian-server --example audit_bench [N]`

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::Instant;

use custodian_proto::identity::DeviceId;
use custodian_server::audit::checkpoint::{Checkpoint, origin_for};
use custodian_server::audit::event::{AuditEvent, EventKind, Evidence};
use custodian_server::audit::export::ExportWriter;
use custodian_server::audit::merkle::{Frontier, leaf_hash};
use custodian_server::audit::verify::verify_export;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;

fn main() {
    let n: u64 = std::env::args().nth(1).map(|a| a.parse().unwrap()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::from_bytes(&[7; 32]);
    let pem = key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
    let devices: Vec<DeviceId> = (0..1000).map(|_| DeviceId::random()).collect();

    let start = Instant::now();
    let mut writer = ExportWriter::create(dir.path(), &pem).unwrap();
    let mut frontier = Frontier::default();
    let mut bytes_total = 0u64;
    for seq in 0..n {
        let device_id = devices[(seq % 1000) as usize];
        let mut event = AuditEvent::new(
            1_700_000_000_000 + seq as i64,
            AuditEvent::device_actor(device_id),
            EventKind::ReportAccepted,
            Some(device_id),
        )
        .with_detail("report_seq", (seq / 1000 + 1).to_string());
        event.evidence.push(Evidence::of("report_payload", &seq.to_be_bytes()));
        event.seq = seq;
        let bytes = event.to_bytes();
        bytes_total += bytes.len() as u64;
        let hash = leaf_hash(&bytes);
        writer.push_event(&hash, &bytes).unwrap();
        frontier.push(hash);
        if frontier.size % 1000 == 0 || seq + 1 == n {
            let checkpoint = Checkpoint {
                origin: origin_for(&key.verifying_key()),
                size: frontier.size,
                root: frontier.root(),
                time_ms: 1_700_000_000_000 + seq as i64,
            };
            let (text, sig) = checkpoint.sign(&key);
            writer.add_checkpoint(checkpoint.size, checkpoint.time_ms, text.as_bytes(), &sig).unwrap();
        }
    }
    writer.finish().unwrap();
    let built = start.elapsed();
    println!(
        "built an export of {n} events ({:.1} MB, mean {} bytes/event) with {} checkpoints in {:.2} s (append + frontier: {:.0} events/s)",
        bytes_total as f64 / 1e6,
        bytes_total / n.max(1),
        n.div_ceil(1000),
        built.as_secs_f64(),
        n as f64 / built.as_secs_f64()
    );

    let start = Instant::now();
    let outcome = verify_export(dir.path(), None).unwrap();
    let verified = start.elapsed();
    assert!(outcome.is_ok(), "{:?}", outcome.problems);
    println!(
        "verified {} events and {} checkpoints offline in {:.2} s ({:.0} events/s)",
        outcome.n_events,
        outcome.n_checkpoints_ok,
        verified.as_secs_f64(),
        outcome.n_events as f64 / verified.as_secs_f64()
    );
}
