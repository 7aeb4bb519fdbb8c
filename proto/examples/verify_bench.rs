//! Benchmark: checking signed 2 KB envelopes one by one (`verify`) against
//! checking them together (`verify_many`), for several batch sizes, in the
//! same run. Prints µs per envelope and the ratio.
//!
//! `cargo run --release -p custodian-proto --example verify_bench`

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::Instant;

use custodian_proto::envelope::{REPORT_PAYLOAD_TYPE, sign, verify, verify_many};
use custodian_proto::v1::SignedEnvelope;
use ed25519_dalek::{SigningKey, VerifyingKey};

const ENVELOPES: usize = 4096;

fn main() {
    let keys: Vec<SigningKey> = (0..64u8).map(|i| SigningKey::from_bytes(&[i + 1; 32])).collect();
    let verifying: Vec<VerifyingKey> = keys.iter().map(SigningKey::verifying_key).collect();
    let envelopes: Vec<SignedEnvelope> = (0..ENVELOPES)
        .map(|i| {
            let mut payload = format!("report {i} ").into_bytes();
            payload.resize(2048, b'x');
            sign(&keys[i % keys.len()], REPORT_PAYLOAD_TYPE, payload)
        })
        .collect();
    let items: Vec<(&VerifyingKey, &SignedEnvelope)> =
        envelopes.iter().enumerate().map(|(i, e)| (&verifying[i % verifying.len()], e)).collect();
    for round in 0..3 {
        let start = Instant::now();
        for (key, envelope) in &items {
            verify(key, envelope, REPORT_PAYLOAD_TYPE).unwrap();
        }
        let single = start.elapsed().as_secs_f64() * 1e6 / ENVELOPES as f64;
        print!("round {round}: verify one by one {single:5.1} µs/envelope;");
        for batch in [8, 32, 128] {
            let start = Instant::now();
            for chunk in items.chunks(batch) {
                assert!(verify_many(chunk, REPORT_PAYLOAD_TYPE).iter().all(Result::is_ok));
            }
            let many = start.elapsed().as_secs_f64() * 1e6 / ENVELOPES as f64;
            print!("  batch {batch:>3}: {many:5.1} µs ({:.2}x)", many / single);
        }
        println!();
    }
}
