//! Benchmark: a register of N machines (default 100,000) added before
//! enrolment, 2,000 of them enrolled with a report listing a MAC address;
//! then `device show` lookups by each key, timed at the store, and filtered
//! `device list`s: at the store unpaged, and as the `ListDevices` handler
//! answers them, one page and every page (what the server does per call,
//! without TLS and gRPC framing).
//!
//! `cargo run --release -p custodian-server --example register_bench [N]`

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::type_complexity)]

mod common;

use std::time::{Duration, Instant};

use custodian_proto::identity::DeviceId;
use custodian_proto::v1 as pb;
use custodian_server::grpc::{DEFAULT_PAGE_SIZE, list_devices_page};
use custodian_server::lifecycle::LifecycleState;
use custodian_server::store::{DeviceFacets, DeviceRecord, NewDevice, Store, TokenRecord};
use ed25519_dalek::SigningKey;
use prost::Message;

const ENROLLED: usize = 2000;
const SAMPLES: usize = 2000;

fn readable(value: &str) -> Option<pb::Readable> {
    Some(pb::Readable { state: Some(pb::readable::State::Value(value.to_owned())) })
}

fn main() {
    let n: usize = std::env::args().nth(1).map(|a| a.parse().unwrap()).unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let start = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let rows: Vec<NewDevice> = chunk
            .iter()
            .map(|i| NewDevice {
                line: None,
                serial: format!("SN{i:07}"),
                asset_tag: format!("NHS-{i:07}"),
                model: if i % 3 == 0 { "Latitude 5440".to_owned() } else { "OptiPlex 7010".to_owned() },
                supplier: Some("Dell".to_owned()),
                order_ref: Some(format!("PO-{}", i / 500)),
                site: Some(format!("site-{}", i % 20)),
                state: if i % 2 == 0 { LifecycleState::Ordered } else { LifecycleState::InStock },
            })
            .collect();
        store.add_devices(&rows, "bench (engineer)", 1, "bench").unwrap().unwrap();
    }
    store.flush_blocking().unwrap();
    println!("registered {n} machines in {:.1} s", start.elapsed().as_secs_f64());

    let key = SigningKey::from_bytes(&[5; 32]);
    let mut enrolled = Vec::new();
    let start = Instant::now();
    for i in 0..ENROLLED.min(n) {
        let serial = format!("SN{i:07}");
        let token_hash = [
            i as u8,
            (i >> 8) as u8,
            1,
            2,
            3,
            4,
            5,
            6,
            7,
            8,
            9,
            10,
            11,
            12,
            13,
            14,
            15,
            16,
            17,
            18,
            19,
            20,
            21,
            22,
            23,
            24,
            25,
            26,
            27,
            28,
            29,
            30,
        ];
        let token = TokenRecord {
            created_at_ms: 1,
            expires_at_ms: i64::MAX,
            created_by: "bench (engineer)".to_owned(),
            site: None,
            used: None,
            asset_tag: None,
            kind: Default::default(),
        };
        store.create_token(&token_hash, &token).unwrap();
        let device_id = store.register_match(Some(&serial), None).unwrap().unwrap().unwrap();
        let hostname = format!("pc-{i:07}");
        let record =
            DeviceRecord::enrolled(device_id, key.verifying_key().to_bytes(), &hostname, Some(&serial), 2, i64::MAX);
        store.enroll(&token_hash, 2, record, Some(device_id)).unwrap();
        let mac = format!("02:00:00:00:{:02x}:{:02x}", i >> 8, i & 0xff);
        let report = pb::Report {
            device_id: device_id.to_string(),
            seq: 1,
            collected_at_ms: 3,
            agent_version: "bench".to_owned(),
            inventory: Some(pb::Inventory {
                hostname: hostname.clone(),
                system: Some(pb::SystemInfo { serial: readable(&serial), ..Default::default() }),
                network: vec![pb::NetworkInterface { name: "eth0".to_owned(), mac: mac.clone(), ..Default::default() }],
                ..Default::default()
            }),
            heartbeat: None,
        };
        let incoming = common::incoming(&key, &report, report.encode_to_vec(), Some(serial.clone()));
        store.commit_report(&incoming).unwrap().unwrap();
        enrolled.push((device_id, hostname, serial, format!("NHS-{i:07}"), mac));
    }
    store.flush_blocking().unwrap();
    println!("enrolled {} of them with a report each in {:.1} s", enrolled.len(), start.elapsed().as_secs_f64());

    let keys: [(&str, Box<dyn Fn(&(DeviceId, String, String, String, String)) -> String>); 5] = [
        ("device id", Box::new(|e| e.0.to_string())),
        ("hostname", Box::new(|e| e.1.clone())),
        ("serial", Box::new(|e| e.2.clone())),
        ("asset tag", Box::new(|e| e.3.clone())),
        ("MAC", Box::new(|e| e.4.to_uppercase())),
    ];
    for (name, key_of) in keys.iter() {
        let mut times: Vec<Duration> = Vec::with_capacity(SAMPLES);
        for k in 0..SAMPLES {
            let entry = &enrolled[(k * 7919) % enrolled.len()];
            let query = key_of(entry);
            let start = Instant::now();
            let found = store.find_devices(&query).unwrap();
            let found = if found.is_empty() {
                store.find_devices(&custodian_server::store::normalise_mac(&query).unwrap()).unwrap()
            } else {
                found
            };
            times.push(start.elapsed());
            assert_eq!(found.len(), 1, "{name} {query}");
        }
        times.sort();
        println!(
            "device show by {name:<9}: median {:>7.1} µs, p99 {:>7.1} µs, max {:>7.1} µs ({SAMPLES} lookups)",
            times[SAMPLES / 2].as_secs_f64() * 1e6,
            times[SAMPLES * 99 / 100].as_secs_f64() * 1e6,
            times[SAMPLES - 1].as_secs_f64() * 1e6
        );
    }
    for (label, state, filter) in [
        (
            "--state in_stock",
            Some(LifecycleState::InStock),
            Box::new(|d: &DeviceFacets<'_>| d.state == LifecycleState::InStock)
                as Box<dyn Fn(&DeviceFacets<'_>) -> bool>,
        ),
        (
            "--site site-7 --model latitude",
            None,
            Box::new(|d: &DeviceFacets<'_>| {
                d.site.is_some_and(|s| s.eq_ignore_ascii_case("site-7"))
                    && [d.model, d.registered_model]
                        .iter()
                        .any(|m| m.is_some_and(|m| m.to_lowercase().contains("latitude")))
            }),
        ),
    ] {
        let mut n_found = 0;
        let times = time_runs(RUNS, || {
            let devices = store.list_devices_by_facets(state, |d| filter(d)).unwrap();
            n_found = devices.len();
        });
        println!("store list, unpaged {label}: {n_found} of {n} devices, {}", summary(&times));
    }

    // The ListDevices handler's work, a page at a time.
    let in_stock = pb::ListDevicesRequest { state: "in_stock".to_owned(), ..Default::default() };
    let site_model =
        pb::ListDevicesRequest { site: "site-7".to_owned(), model: "latitude".to_owned(), ..Default::default() };
    for (label, req) in [("--state in_stock", &in_stock), ("--site site-7 --model latitude", &site_model)] {
        let mut n_page = 0;
        let times = time_runs(PAGE_RUNS, || {
            let page = list_devices_page(&store, req, NOW).unwrap();
            // With a small register (N from the command line) one page may
            // hold every match; a short page must then be the last.
            let short = page.devices.len() < DEFAULT_PAGE_SIZE as usize;
            assert!(!short || page.next_page_token.is_empty(), "a short page names no next page");
            n_page = page.devices.len();
        });
        println!(
            "device list {label}, first page (default size {DEFAULT_PAGE_SIZE}): {n_page} devices, {}",
            summary(&times)
        );
        let mut listing = (0, 0, 0, 0);
        let times = time_runs(RUNS, || listing = list_all(&store, req));
        let (n_devices, n_pages, total_bytes, largest_page_bytes) = listing;
        println!(
            "device list {label}, every page and the client's sort: {n_devices} devices in {n_pages} pages, {}",
            summary(&times)
        );
        println!(
            "  responses: {:.1} MiB in all, largest page {:.2} MiB (gRPC clients refuse more than 4 MiB by default)",
            total_bytes as f64 / MIB,
            largest_page_bytes as f64 / MIB
        );
    }
}

const RUNS: usize = 5;
const PAGE_RUNS: usize = 21;
const NOW: i64 = 4;
const MIB: f64 = (1 << 20) as f64;

/// Times `run` `n` times, sorted.
fn time_runs(n: usize, mut run: impl FnMut()) -> Vec<Duration> {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .collect();
    times.sort();
    times
}

fn summary(times: &[Duration]) -> String {
    format!(
        "median {:.1} ms, max {:.1} ms ({} runs)",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        times.len()
    )
}

/// Every page of a listing, then sorted as custodianctl sorts it: the number
/// of devices and pages, and the encoded size of all responses and of the
/// largest.
fn list_all(store: &Store, req: &pb::ListDevicesRequest) -> (usize, usize, usize, usize) {
    let mut req = req.clone();
    let (mut devices, mut n_pages, mut total_bytes, mut largest) = (Vec::new(), 0, 0, 0);
    loop {
        let page = list_devices_page(store, &req, NOW).unwrap();
        n_pages += 1;
        total_bytes += page.encoded_len();
        largest = largest.max(page.encoded_len());
        devices.extend(page.devices);
        if page.next_page_token.is_empty() {
            break;
        }
        req.page_token = page.next_page_token;
    }
    devices.sort_by_cached_key(|d| (d.hostname.to_lowercase(), d.device_id.clone()));
    (devices.len(), n_pages, total_bytes, largest)
}
