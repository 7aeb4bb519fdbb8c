//! Benchmark: what one sled operation costs, in the shapes the report path
//! uses, so that changes to the store can be judged by how many of each they
//! make per report (decision 010). Each case commits 64,000 "reports" in
//! transactions of 100, as the intake's groups do, into a fresh database,
//! and prints the process's CPU per report (sled's I/O threads included),
//! with and without a flush after each transaction. The baseline is an
//! empty transaction per group, in the same run.
//!
//! `cargo run --release -p custodian-server --example sled_ops`

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

const DEVICES: u64 = 128;
const PER_GROUP: u64 = 100;
const GROUPS: u64 = 640;

type Tx = Result<(), ConflictableTransactionError<()>>;

/// What a case does for one group, given its trees and the group's number.
type Case<'a> = (&'a str, &'a dyn Fn(&[sled::Tree], u64));

/// CPU time of this process so far, in µs.
fn cpu_us() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    // utime and stime, in clock ticks (100 per second on Linux).
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) * 10_000.0
}

/// Runs `group` once per group (its argument: the group's number) in a new
/// database and prints the CPU per report, and how much more that is than
/// `baseline`.
fn run(name: &str, flush: bool, baseline: Option<f64>, group: &dyn Fn(&[sled::Tree], u64)) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new().path(dir.path()).mode(sled::Mode::HighThroughput).open().unwrap();
    let trees: Vec<sled::Tree> = (0..2).map(|i| db.open_tree(format!("t{i}")).unwrap()).collect();
    let started = cpu_us();
    for g in 0..GROUPS {
        group(&trees, g);
        if flush {
            db.flush().unwrap();
        }
    }
    drop(trees);
    drop(db);
    // sled's threads finish their writes after the last handle drops.
    std::thread::sleep(std::time::Duration::from_millis(600));
    let per_report = (cpu_us() - started) / (GROUPS * PER_GROUP) as f64;
    let above = baseline.map(|b| format!(" ({:+.1} µs)", per_report - b)).unwrap_or_default();
    println!("{name:<52} flush={flush:<5} {per_report:5.1} µs CPU per report{above}");
    per_report
}

/// A transaction on one tree doing `op` for each report of group `g`.
fn each_report(tree: &sled::Tree, g: u64, op: impl Fn(&TransactionalTree, u64) -> Tx) {
    tree.transaction(|tx| {
        for i in 0..PER_GROUP {
            op(tx, g * PER_GROUP + i)?;
        }
        Ok(())
    })
    .unwrap();
}

/// A device-id-like key for report `r`'s device, ‖ `suffix`.
fn device_key(r: u64, suffix: &[u8]) -> Vec<u8> {
    let device = r % DEVICES;
    let mut key = device.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes().to_vec();
    key.extend_from_slice(&device.to_be_bytes());
    key.extend_from_slice(suffix);
    key
}

fn main() {
    for flush in [true, false] {
        let baseline = run("empty transaction per group (baseline)", flush, None, &|t, _| {
            t[0].transaction(|_| Tx::Ok(())).unwrap();
        });
        let cases: [Case<'_>; 4] = [
            ("one 21 B record per report (device ‖ seq)", &|t, g| {
                each_report(&t[0], g, |tx, r| {
                    tx.insert(device_key(r, &(r / DEVICES).to_be_bytes()), &[7u8; 21][..])?;
                    Ok(())
                });
            }),
            ("device record: get + rewrite 800 B per report", &|t, g| {
                each_report(&t[0], g, |tx, r| {
                    let _ = tx.get(device_key(r, b""))?;
                    tx.insert(device_key(r, b""), vec![(r % 251) as u8; 800])?;
                    Ok(())
                });
            }),
            ("one 5.6 KB record per group (100 entries of 56 B)", &|t, g| {
                t[0].transaction(|tx| {
                    tx.insert(&g.to_be_bytes(), vec![7u8; 5600])?;
                    Tx::Ok(())
                })
                .unwrap();
            }),
            ("audit: 7 group records of 4.6 KB and the frontier", &|t, g| {
                (&t[0], &t[1])
                    .transaction(|(events, state)| {
                        let _ = state.get(b"s")?;
                        for k in 0..7u64 {
                            events.insert(&(g * 7 + k).to_be_bytes(), vec![7u8; 4600])?;
                        }
                        state.insert(&b"s"[..], vec![1u8; 300])?;
                        Tx::Ok(())
                    })
                    .unwrap();
            }),
        ];
        for (name, group) in cases {
            run(name, flush, Some(baseline), group);
        }
    }
}
