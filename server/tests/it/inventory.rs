//! End-to-end check of inventory over the real binaries: a server, an agent
//! reading fixture machines, and `custodianctl`, over mutual TLS on loopback.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_custodian-server")).parent().unwrap().to_owned()
}

/// The agent binary, built next to the server's when it is not there yet.
fn agent_bin() -> PathBuf {
    let path = bin_dir().join("custodian-agent");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "custodian-agent", "--bin", "custodian-agent"]);
        if bin_dir().ends_with("release") {
            build.arg("--release");
        }
        assert!(build.status().unwrap().success(), "build custodian-agent");
    }
    path
}

#[track_caller]
fn run(cmd: &mut Command) -> String {
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/tests/fixtures").join(name)
}

#[test]
fn device_show_has_disks_encryption_and_changes_after_reports() {
    let server = super::wipe::Harness::start();
    let url = &server.url;
    let ctl = |args: &[&str]| server.ctl(args);

    // Enrol the laptop fixture: its first report is a full inventory.
    let token = ctl(&["token", "create"]).trim().to_owned();
    let state = server.dir().join("agent");
    let agent = agent_bin();
    let enrolled = run(Command::new(&agent)
        .args(["--log-level", "warn", "--root"])
        .arg(fixture("laptop-luks2-nvme"))
        .args(["enroll", "--server", url, "--ca"])
        .arg(server.ca_file())
        .args(["--token", &token, "--state-dir"])
        .arg(&state));
    let device_id = enrolled.lines().next().unwrap().strip_prefix("enrolled as device ").unwrap().to_owned();

    let show = |query: &str| -> Value { serde_json::from_str(&ctl(&["device", "show", query, "--json"])).unwrap() };
    let device = show(&device_id);
    let disks = &device["latest_report"]["inventory"]["storage"];
    assert_eq!(disks[0]["name"], "nvme0n1");
    assert_eq!(disks[0]["serial"], "S4ENNF0N123456");
    let root = &disks[0]["volumes"][2];
    assert_eq!(root["encryption"]["state"], "encrypted", "{root}");
    assert_eq!(root["encryption"]["scheme"], "luks2");
    assert_eq!(root["encryption"]["cipher"], "aes-xts-plain64");
    assert_eq!(root["encryption"]["key_size_bits"], 512);
    assert_eq!(device["encryption_compliance"]["state"], "compliant");
    assert_eq!(device["inventory_changes"][0]["subject"], "inventory");
    let text = ctl(&["device", "show", &device_id]);
    assert!(
        text.contains("nvme0n1p3 475.5 GiB on /, [SWAP]: crypto_LUKS, encrypted (LUKS2 aes-xts-plain64 512-bit)"),
        "{text}"
    );
    assert!(text.contains("compliant: every fixed data volume is encrypted"), "{text}");

    // The same machine now shows the desktop's disk: the NVMe disk is gone.
    let report = |root: &str| {
        run(Command::new(&agent)
            .args(["--log-level", "warn", "--root"])
            .arg(fixture(root))
            .args(["report", "--state-dir"])
            .arg(&state))
    };
    report("desktop-sata-plain");
    let device = show(&device_id);
    assert_eq!(device["encryption_compliance"]["state"], "noncompliant");
    assert_eq!(device["encryption_compliance"]["unencrypted_volumes"], serde_json::json!(["sda1 (sda)", "sda5 (sda)"]));
    let changes = device["inventory_changes"].as_array().unwrap();
    let removed = changes.iter().find(|c| c["subject"] == "storage S4ENNF0N123456").unwrap();
    assert_eq!(
        (removed["kind"].as_str(), removed["flagged"].as_bool(), removed["seq"].as_u64()),
        (Some("removed"), Some(true), Some(2))
    );
    assert!(ctl(&["device", "show", &device_id]).contains("REMOVED storage S4ENNF0N123456"));

    // Unchanged: the next report is a heartbeat, and the inventory shown stays that of seq 2.
    report("desktop-sata-plain");
    let device = show(&device_id);
    assert_eq!((device["last_seq"].as_u64(), device["latest_report"]["seq"].as_u64()), (Some(3), Some(2)));

    let noncompliant: Value = serde_json::from_str(&ctl(&["device", "list", "--noncompliant", "--json"])).unwrap();
    assert_eq!(noncompliant[0]["device_id"], device_id.as_str());
    let stale: Value = serde_json::from_str(&ctl(&["device", "list", "--stale", "1", "--json"])).unwrap();
    assert_eq!(stale, serde_json::json!([]));
}

#[test]
fn the_deployed_guard_judges_the_latest_full_inventory_not_a_heartbeat() {
    // An unchanged machine sends heartbeats, which carry no inventory: the
    // encryption guard must look at the last report that carried one.
    let server = super::wipe::Harness::start();
    let token = server.ctl(&["token", "create"]).trim().to_owned();
    let state = server.dir().join("agent");
    let agent = || {
        let mut command = Command::new(agent_bin());
        command.args(["--log-level", "warn", "--root"]).arg(fixture("laptop-luks2-nvme"));
        command
    };
    let enrolled = run(agent()
        .args(["enroll", "--server", &server.url, "--ca"])
        .arg(server.ca_file())
        .args(["--token", &token, "--state-dir"])
        .arg(&state));
    let device_id = enrolled.lines().next().unwrap().strip_prefix("enrolled as device ").unwrap().to_owned();
    run(agent().args(["report", "--state-dir"]).arg(&state));
    let device: Value = serde_json::from_str(&server.ctl(&["device", "show", &device_id, "--json"])).unwrap();
    assert_eq!(
        (device["last_seq"].as_u64(), device["latest_report"]["seq"].as_u64()),
        (Some(2), Some(1)),
        "the second report should be a heartbeat"
    );

    let moved = server.ctl(&["device", "transition", &device_id, "deployed", "--reason", "handed to ward 7"]);
    assert!(moved.contains("deployed"), "{moved}");
    let history = server.ctl(&["device", "history", &device_id, "--json"]);
    let events: Vec<Value> = history.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let event = events.iter().find(|e| e["kind"] == "device_transitioned").expect("a transition event");
    assert!(event["override_reason"].is_null(), "{event}");
    assert_eq!(event["details"]["latest_inventory_seq"], "1", "{event}");
}
