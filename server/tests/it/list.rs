//! `device list` on a register larger than one page (issue 4): custodianctl
//! fetches every page and shows each machine once, sorted by hostname
//! (ignoring case), then id, as when the server answered in one piece.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Machine, TestServer, ok};

/// Machines imported: two and a half of the server's default pages.
const IMPORTED: usize = 2500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_larger_than_a_page_is_listed_whole_and_sorted() {
    let server = TestServer::start(1000);
    let csv = server.dir.path().join("po.csv");
    let mut rows = String::from("serial,asset_tag,model,supplier,order_ref,site,state\n");
    for i in 0..IMPORTED {
        let state = if i % 2 == 0 { "ordered" } else { "in_stock" };
        rows.push_str(&format!("SN-{i:05},NHS-{i:05},OptiPlex 7010,Dell,PO-1,RVI,{state}\n"));
    }
    std::fs::write(&csv, rows).unwrap();
    let imported = ok(server.ctl("admin", &["device", "import", csv.to_str().unwrap()]));
    assert!(imported.contains(&format!("imported {IMPORTED} devices")), "{imported}");
    // Two enrolled machines with hostnames that sort differently with and without case.
    for (i, hostname) in ["b-pc", "A-pc"].iter().enumerate() {
        let token = ok(server.ctl("admin", &["token", "create"])).trim().to_owned();
        Machine::enroll(&server, &token, hostname, &format!("NEW-{i}")).await.unwrap();
    }

    let listed = ok(server.ctl("admin", &["device", "list", "--csv"]));
    let rows: Vec<Vec<&str>> = listed.lines().skip(1).map(|line| line.split(',').collect()).collect();
    assert_eq!(rows.len(), IMPORTED + 2, "every machine: {}", &listed[..listed.len().min(300)]);
    let tags: BTreeSet<&str> = rows.iter().map(|r| r[3]).filter(|t| !t.is_empty()).collect();
    assert_eq!(tags.len(), IMPORTED, "each imported machine exactly once");
    // Sorted by hostname ignoring case, then id: the unnamed register
    // entries first (by id), then A-pc, then b-pc.
    let keys: Vec<(String, &str)> = rows.iter().map(|r| (r[1].to_lowercase(), r[0])).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "not sorted by hostname, then id");
    assert_eq!([rows[IMPORTED][1], rows[IMPORTED + 1][1]], ["A-pc", "b-pc"]);

    // A filtered list over pages; the table and JSON agree with the CSV.
    let in_stock: Value =
        serde_json::from_str(&ok(server.ctl("admin", &["device", "list", "--json", "--state", "in_stock"]))).unwrap();
    let in_stock = in_stock.as_array().unwrap();
    let ids: BTreeSet<&str> = in_stock.iter().map(|d| d["device_id"].as_str().unwrap()).collect();
    assert_eq!((in_stock.len(), ids.len()), (IMPORTED / 2, IMPORTED / 2));
    assert!(in_stock.iter().all(|d| d["state"] == "in_stock"));
    let table = ok(server.ctl("admin", &["device", "list"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), IMPORTED + 4, "a header, every machine and a count");
    assert_eq!(lines[lines.len() - 1], format!("{} device(s)", IMPORTED + 2));
    let table_ids: Vec<&str> = lines[1..lines.len() - 1].iter().map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(table_ids, rows.iter().map(|r| r[0]).collect::<Vec<_>>(), "same order as the CSV");
}

/// Rows in one purchase order: enough that the devices the server returns
/// for it encode to more than the 4 MiB a gRPC client accepts by default.
const LARGE_ORDER: usize = 25_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_order_of_25000_machines_imports_in_one_go() {
    let server = TestServer::start(1000);
    let csv = server.dir.path().join("big-po.csv");
    let mut rows = String::from("serial,asset_tag,model,supplier,order_ref,site,state\n");
    for i in 0..LARGE_ORDER {
        rows.push_str(&format!("SN-{i:06},NHS-{i:06},OptiPlex 7010 Micro Form Factor,Dell Technologies,PO-2026-0042,Royal Victoria Infirmary,in_stock\n"));
    }
    std::fs::write(&csv, rows).unwrap();
    let imported = ok(server.ctl("admin", &["device", "import", csv.to_str().unwrap()]));
    assert!(imported.contains(&format!("imported {LARGE_ORDER} devices")), "{imported}");
    let shown: Value =
        serde_json::from_str(&ok(server.ctl("admin", &["device", "show", "NHS-024999", "--json"]))).unwrap();
    assert_eq!((shown["serial"].as_str(), shown["state"].as_str()), (Some("SN-024999"), Some("in_stock")), "{shown}");
}
