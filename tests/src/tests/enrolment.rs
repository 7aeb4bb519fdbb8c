//! Enrolment, reporting and looking a machine up; tokens that must not work.

use std::time::Duration;

use custodian_proto::identity::Role;

use crate::machine::{MODEL, VENDOR};
use crate::process::{Running, Stream};
use crate::{Machine, Server, TestDir};

#[tokio::test]
async fn enrolled_machine_is_found_by_hostname_and_serial_with_its_report() {
    let dir = TestDir::new();
    let server = Server::start(dir.path()).await;
    let machine = Machine::new(dir.path(), "ward7-pc01", "SN-7F3K2L1");
    let device_id = machine.enroll_ok(&server).await;
    machine.report().await.success();

    for query in [machine.hostname.as_str(), machine.serial.as_str(), &device_id.to_string(), "WARD7-PC01"] {
        let out = server.ctl_run(Role::ServiceDesk, &["device", "show", query]).await.success();
        for expected in [
            &format!("Device {device_id}"),
            "hostname      ward7-pc01",
            "serial        SN-7F3K2L1",
            VENDOR,
            MODEL,
            "site          ward-7",
            "status        active",
            "reports       2 (last seq 2)",
            // The second report found the inventory unchanged, so it was a
            // heartbeat; the latest inventory is still the enrolment's.
            "Latest inventory (report seq 1,",
            "; report 2 since was a heartbeat)",
            "verified by custodianctl against the enrolled key",
        ] {
            assert!(out.stdout.contains(expected), "`device show {query}` lacks {expected:?}:\n{out}");
        }
    }

    let device = server.device_json(&machine.serial).await;
    assert_eq!(device["device_id"], device_id.to_string());
    assert_eq!(device["hostname"], "ward7-pc01");
    assert_eq!(device["reported_serial"], "SN-7F3K2L1");
    assert_eq!(device["last_seq"], 2);
    assert_eq!(device["latest_report"]["seq"], 1);
    assert_eq!(device["latest_report"]["signature_verified"], true);
    assert_eq!(device["latest_report"]["inventory"]["hostname"], "ward7-pc01");
    assert_eq!(device["latest_report"]["inventory"]["system"]["model"], MODEL);

    let list = server.ctl_run(Role::IgAuditor, &["device", "list"]).await.success();
    assert!(list.stdout.contains(&device_id.to_string()) && list.stdout.contains("1 device(s)"), "{list}");

    let missing = server.ctl_run(Role::ServiceDesk, &["device", "show", "no-such-host"]).await;
    missing.failure(&["not found", "no-such-host"]);
}

#[tokio::test]
async fn reused_token_is_refused() {
    let dir = TestDir::new();
    let server = Server::start(dir.path()).await;
    let token = server.token().await;
    let first = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    first.enroll(&server, &token).await.success();

    let second = Machine::new(dir.path(), "ward7-pc02", "SN-0002");
    second.enroll(&server, &token).await.failure(&["enrolment refused", "already used"]);
    let list = server.ctl_run(Role::Admin, &["device", "list", "--json"]).await.success();
    assert!(!list.stdout.contains("ward7-pc02"), "the refused machine was registered:\n{list}");
    assert!(!second.state_dir().join("enrollment.toml").exists(), "the refused agent thinks it is enrolled");
}

#[tokio::test]
async fn expired_token_is_refused() {
    let dir = TestDir::new();
    let server = Server::start(dir.path()).await;
    // A token that would be dead on arrival is refused outright.
    let refused = server.ctl_run(Role::Engineer, &["token", "create", "--ttl", "0s"]).await;
    refused.failure(&["0s is too short: a token must stay valid for at least 1s"]);
    let out = server.ctl_run(Role::Engineer, &["token", "create", "--ttl", "1s"]).await.success();
    let token = out.first_line().to_owned();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let machine = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    machine.enroll(&server, &token).await.failure(&["enrolment refused", "expired"]);
}

#[tokio::test]
async fn unknown_token_is_refused() {
    let dir = TestDir::new();
    let server = Server::start(dir.path()).await;
    let machine = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    machine.enroll(&server, "cust_enr_0000").await.failure(&["enrolment refused", "unknown enrolment token"]);
}

#[tokio::test]
async fn renamed_machine_is_found_by_its_new_hostname_only() {
    let dir = TestDir::new();
    let server = Server::start(dir.path()).await;
    let mut machine = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    let device_id = machine.enroll_ok(&server).await;
    machine.rename("theatre2-pc01");
    machine.report().await.success();

    let device = server.device_json("theatre2-pc01").await;
    assert_eq!(device["device_id"], device_id.to_string());
    assert_eq!(device["hostname"], "theatre2-pc01");
    assert_eq!(server.device_json("SN-0001").await["device_id"], device_id.to_string());
    server.ctl_run(Role::ServiceDesk, &["device", "show", "ward7-pc01"]).await.failure(&["not found"]);
}

#[tokio::test]
async fn shared_hostname_asks_for_a_device_id() {
    let dir = TestDir::new();
    let server = Server::start(dir.path()).await;
    let first = Machine::new(&dir.join("a"), "kiosk", "SN-0001");
    let second = Machine::new(&dir.join("b"), "kiosk", "SN-0002");
    let first_id = first.enroll_ok(&server).await;
    let second_id = second.enroll_ok(&server).await;

    let out = server.ctl_run(Role::ServiceDesk, &["device", "show", "kiosk"]).await;
    out.failure(&["matches 2 devices", &first_id.to_string(), &second_id.to_string(), "use a device id"]);
    // The serial and the id still single each one out.
    assert_eq!(server.device_json("SN-0002").await["device_id"], second_id.to_string());
    assert_eq!(server.device_json(&first_id.to_string()).await["serial"], "SN-0001");
}

#[tokio::test]
async fn inventory_prints_what_would_be_reported_without_a_server() {
    let dir = TestDir::new();
    let machine = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    let mut cmd = machine.agent();
    cmd.args(["inventory", "--json"]);
    let out = crate::process::run(cmd).await.success();
    let inventory: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(inventory["hostname"], "ward7-pc01");
    assert_eq!(inventory["system"]["serial"], "SN-0001");
    assert_eq!(inventory["system"]["vendor"], VENDOR);
    assert_eq!(inventory["os"]["name"], "Debian GNU/Linux");
    assert_eq!(inventory["cpu"]["threads"], 2);
}

#[tokio::test]
async fn private_keys_are_0600_and_init_refuses_to_overwrite() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TestDir::new();
    let server = Server::start(dir.path()).await;
    let machine = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    machine.enroll_ok(&server).await;

    let keys = [
        server.data_dir().join("ca.key"),
        server.data_dir().join("server.key"),
        server.data_dir().join("server-signing.key"),
        server.identity(Role::Admin).join("key.pem"),
        machine.state_dir().join("device.key"),
    ];
    for key in &keys {
        let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", key.display());
    }
    let ca_key = std::fs::read(&keys[0]).unwrap();

    let mut init = crate::Bin::Server.command();
    init.arg("init").arg("--data-dir").arg(server.data_dir());
    crate::process::run(init).await.failure(&["refusing to overwrite"]);
    assert_eq!(std::fs::read(&keys[0]).unwrap(), ca_key, "init replaced the CA key");
    let again = machine.enroll(&server, &server.token().await).await;
    again.failure(&["already enrolled"]);
}

#[tokio::test]
async fn one_token_enrols_one_machine_even_when_raced() {
    let dir = TestDir::new();
    let server = Server::start(dir.path()).await;
    let token = server.token().await;
    let machines: Vec<Machine> =
        (0..6).map(|i| Machine::new(dir.path(), &format!("race-pc{i}"), &format!("SN-RACE-{i}"))).collect();
    // All started before any is waited for.
    let mut agents: Vec<Running> =
        machines.iter().map(|machine| Running::spawn(machine.enroll_command(&server, &token))).collect();

    let mut n_enrolled = 0;
    for agent in &mut agents {
        if agent.wait().await.success() {
            n_enrolled += 1;
        } else {
            let stderr = agent.output(Stream::Stderr);
            assert!(stderr.contains("enrolment refused") && stderr.contains("already used"), "{}", agent.transcript());
        }
    }
    assert_eq!(n_enrolled, 1, "exactly one enrolment may succeed");
    let list = server.ctl_run(Role::Admin, &["device", "list"]).await.success();
    assert!(list.stdout.contains("1 device(s)"), "{list}");
}

/// Regression test for the deadlock the ingest benchmark found: sixteen
/// machines enrolling at once (each a transaction and a flush) must all
/// finish, and the server must still answer afterwards.
#[tokio::test]
async fn sixteen_simultaneous_enrolments_all_finish() {
    let dir = TestDir::new();
    let server = Server::start(dir.path()).await;
    let mut tokens = Vec::new();
    for _ in 0..16 {
        tokens.push(server.token().await);
    }
    let machines: Vec<Machine> =
        (0..16).map(|i| Machine::new(dir.path(), &format!("burst-pc{i}"), &format!("SN-BURST-{i}"))).collect();
    let mut agents: Vec<Running> = machines
        .iter()
        .zip(&tokens)
        .map(|(machine, token)| Running::spawn(machine.enroll_command(&server, token)))
        .collect();
    for agent in &mut agents {
        assert!(agent.wait().await.success(), "{}", agent.transcript());
    }
    let list = server.ctl_run(Role::Admin, &["device", "list"]).await.success();
    assert!(list.stdout.contains("16 device(s)"), "{list}");
}

#[tokio::test]
async fn a_ca_file_that_is_not_a_certificate_is_refused_and_the_token_stays_usable() {
    let dir = TestDir::new();
    let server = Server::start(dir.path()).await;
    let token = server.token().await;
    let machine = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    let not_a_ca = dir.join("hostname.txt");
    std::fs::write(&not_a_ca, "ward7-pc01\n").unwrap();

    let mut cmd = machine.agent();
    cmd.args(["enroll", "--server", &server.url(), "--token", &token, "--ca"]).arg(&not_a_ca);
    cmd.arg("--state-dir").arg(machine.state_dir());
    let out = crate::process::run(cmd).await;
    out.failure(&["the CA certificate given is not usable", "no PEM certificate"]);
    assert!(!machine.state_dir().join("enrollment.toml").exists(), "a refused enrolment left the agent enrolled");

    // Refused before the server saw it: the one-time token still works.
    machine.enroll(&server, &token).await.success();
}
