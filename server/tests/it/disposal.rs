//! End-to-end checks of issue 7 (destruction records, the sanitised gate,
//! disposal routes and register, ghost alerts) against the real binaries over
//! mutual TLS on loopback. The machine is played by the test (`Machine` in
//! `main.rs`), so it can sign its own wipe attestations.

use std::path::Path;
use std::process::Command;

use custodian_proto::channel::{ClientIdentity, connect};
use custodian_proto::envelope::{WIPE_ATTESTATION_PAYLOAD_TYPE, sign};
use custodian_proto::v1 as pb;
use prost::Message;

use super::{Machine, TestServer, fails, ok, readable};

fn two_disk_inventory() -> pb::Inventory {
    let disk = |name: &str, serial: &str| pb::StorageDevice {
        name: name.to_owned(),
        serial: readable(serial),
        model: readable("ACME SSD"),
        size_bytes: 256 << 30,
        ..Default::default()
    };
    pb::Inventory {
        hostname: "old-pc".to_owned(),
        system: Some(pb::SystemInfo { serial: readable("SYS-OLD-1"), ..Default::default() }),
        storage: vec![disk("sda", "DISK-A"), disk("sdb", "DISK-B")],
        ..Default::default()
    }
}

/// The machine attests that it wiped its own disk `serial` (passed).
async fn attest_own_wipe(server: &TestServer, machine: &mut Machine, serial: &str) -> pb::EnvelopeResult {
    machine.seq += 1;
    let mut att = super::wipe::attestation(&machine.device_id, machine.seq, serial, &machine.device_id);
    if let Some(disk) = att.disk.as_mut() {
        disk.model = "ACME SSD".to_owned(); // As this machine's inventory names it.
    }
    let envelope = sign(&machine.key, WIPE_ATTESTATION_PAYLOAD_TYPE, att.encode_to_vec());
    let identity = ClientIdentity { cert_pem: &machine.cert_pem, key_pem: &machine.key_pem };
    let channel = connect(&server.url, &server.ca_pem(), Some(identity)).await.unwrap();
    let res = pb::agent_client::AgentClient::new(channel)
        .submit_reports(pb::SubmitReportsRequest { envelopes: vec![envelope] })
        .await
        .unwrap()
        .into_inner();
    res.results.into_iter().next().unwrap()
}

fn openssl_verifies(dir: &Path) -> bool {
    Command::new("openssl")
        .args(["pkeyutl", "-verify", "-pubin", "-inkey", "server-signing.pub.pem", "-rawin"])
        .args(["-in", "certificate.json", "-sigfile", "certificate.json.sig"])
        .current_dir(dir)
        .output()
        .unwrap()
        .status
        .success()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("evidence")).unwrap();
    for name in ["certificate.json", "certificate.json.sig", "server-signing.pub.pem"] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
    for entry in std::fs::read_dir(from.join("evidence")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join("evidence").join(entry.file_name())).unwrap();
    }
}

fn alert_id(list: &str) -> String {
    let line = list.lines().find(|l| l.starts_with("alert ")).expect("an alert line");
    line.split_whitespace().nth(1).unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_disks_need_two_proofs_then_disposal_and_a_ghost_alert() {
    let server = TestServer::start(1000);
    let dir = server.dir.path();
    for (name, role) in [("eve", "engineer"), ("sam", "service-desk"), ("ida", "ig-auditor")] {
        ok(server.ctl(
            "admin",
            &["operator", "issue", "--name", name, "--role", role, "--out", dir.join(name).to_str().unwrap()],
        ));
    }
    let token = ok(server.ctl("eve", &["token", "create"])).trim().to_owned();
    let mut pc = Machine::enroll(&server, &token, "old-pc", "SYS-OLD-1").await.unwrap();
    let res = pc.report(&server, two_disk_inventory()).await.unwrap();
    assert_eq!(res.outcome, pb::Outcome::Accepted as i32, "{res:?}");
    // A wipe while the machine was still in use does not count: it was
    // written to since.
    let res = attest_own_wipe(&server, &mut pc, "DISK-A").await;
    assert_eq!(res.outcome, pb::Outcome::Accepted as i32, "{res:?}");
    ok(server.ctl("eve", &["device", "transition", "old-pc", "retired", "--reason", "end of life"]));
    let out = fails(server.ctl("eve", &["device", "transition", "old-pc", "sanitised", "--reason", "wiped"]));
    assert!(out.contains("not covered: sda (serial DISK-A: its passing wipe (finished"), "{out}");
    assert!(out.contains("is from before the machine was retired"), "{out}");
    let show = ok(server.ctl("sam", &["device", "show", "old-pc"]));
    assert!(show.contains("DOES NOT COUNT: this wipe is from before the machine was retired"), "{show}");
    let res = attest_own_wipe(&server, &mut pc, "DISK-A").await;
    assert_eq!(res.outcome, pb::Outcome::Accepted as i32, "{res:?}");
    let show = ok(server.ctl("sam", &["device", "show", "old-pc"]));
    assert!(!show.contains("DOES NOT COUNT"), "wiped again since the retirement: {show}");

    // One attestation for two disks: refused, naming the uncovered disk.
    let out = fails(server.ctl("eve", &["device", "transition", "old-pc", "sanitised", "--reason", "wiped"]));
    assert!(out.contains("not covered: sdb (serial DISK-B)"), "{out}");
    assert!(!out.contains("DISK-A"), "DISK-A is covered: {out}");

    // Destruction records: refused with a clear error when a field is bad or missing.
    let destroy = |who: &str, method: &str, witness: &str| {
        server.ctl(
            who,
            &[
                "disk",
                "destroyed",
                "DISK-B",
                "--method",
                method,
                "--contractor",
                "Shredco",
                "--certificate-ref",
                "CD-2026-17",
                "--date",
                "2026-01-05",
                "--witness",
                witness,
            ],
        )
    };
    let out = fails(destroy("eve", "melt", "Jo Bloggs"));
    assert!(out.contains("unknown destruction method \"melt\""), "{out}");
    let out = fails(destroy("eve", "shred", " "));
    assert!(out.contains("witness is required"), "{out}");
    let out = fails(destroy("sam", "shred", "Jo Bloggs"));
    assert!(out.contains("permission denied"), "{out}");
    let out = ok(destroy("eve", "shred", "Jo Bloggs"));
    assert!(out.contains("disk DISK-B recorded as destroyed (shred by Shredco"), "{out}");
    let out = fails(destroy("eve", "crush", "Jo Bloggs"));
    assert!(out.contains("already has a destruction record"), "{out}");

    // One wiped and one destroyed: sanitised, with both proofs in the event.
    ok(server.ctl("eve", &["device", "transition", "old-pc", "sanitised", "--reason", "wiped and shredded"]));
    let history = ok(server.ctl("admin", &["device", "history", "old-pc", "--json"]));
    let sanitised = history.lines().find(|l| l.contains("\"to\":\"sanitised\"")).expect("the sanitised event");
    assert!(sanitised.contains("wipe_attestation DISK-A"), "{sanitised}");
    assert!(sanitised.contains("destruction_record DISK-B"), "{sanitised}");

    // A sanitised machine that calls in is a ghost: refused, one alert, its calls counted.
    let err = pc.report(&server, two_disk_inventory()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
    assert!(err.message().contains("sanitised"), "{err}");
    pc.report(&server, two_disk_inventory()).await.unwrap_err();
    let alerts = ok(server.ctl("sam", &["alerts", "list"]));
    assert!(alerts.contains("severity high  old-pc"), "{alerts}");
    assert!(alerts.contains("called in while sanitised; 2 call(s)"), "{alerts}");
    assert!(alerts.contains("1 alert(s)"), "{alerts}");
    let ghost_events = ok(server.ctl("admin", &["device", "history", "old-pc", "--json"]))
        .lines()
        .filter(|l| l.contains("\"kind\":\"ghost_call\""))
        .count();
    assert_eq!(ghost_events, 1, "one audit event per open alert");

    // Disposal needs its route, contractor and consignment.
    let out = fails(server.ctl("eve", &["device", "transition", "old-pc", "disposed", "--reason", "collected"]));
    assert!(out.contains("disposed needs --route"), "{out}");
    let out = fails(server.ctl(
        "eve",
        &["device", "transition", "old-pc", "disposed", "--reason", "x", "--route", "landfill", "--contractor", "C"],
    ));
    assert!(out.contains("unknown disposal route \"landfill\""), "{out}");
    ok(server.ctl(
        "eve",
        &[
            "device",
            "transition",
            "old-pc",
            "disposed",
            "--reason",
            "collected",
            "--route",
            "recycle",
            "--contractor",
            "Recyclers, Ltd",
            "--consignment-ref",
            "WEEE-0042",
        ],
    ));

    // The disposal register: IG and admin only; table and CSV.
    let out = fails(server.ctl("eve", &["disposals", "list"]));
    assert!(out.contains("permission denied"), "{out}");
    let register = ok(server.ctl("ida", &["disposals", "list"]));
    assert!(register.contains("old-pc  serial SYS-OLD-1"), "{register}");
    assert!(register.contains("route recycle  contractor Recyclers, Ltd  consignment WEEE-0042"), "{register}");
    assert!(register.contains("1 disposal(s)"), "{register}");
    let csv = ok(server.ctl("ida", &["disposals", "list", "--csv", "--since", "2000-01-01"]));
    assert!(
        csv.starts_with("disposed_at,device_id,hostname,serial,asset_tag,route,contractor,consignment_ref"),
        "{csv}"
    );
    assert!(csv.contains(",old-pc,SYS-OLD-1,,recycle,\"Recyclers, Ltd\",WEEE-0042,"), "{csv}");
    let later = ok(server.ctl("ida", &["disposals", "list", "--since", "2999-01-01"]));
    assert!(later.contains("0 disposal(s)"), "{later}");

    // The certificate of sanitisation: written for IG, verified by stock OpenSSL and offline.
    let cert_dir = dir.join("cert");
    let out = fails(server.ctl("sam", &["certificate", "get", "old-pc", "--out", cert_dir.to_str().unwrap()]));
    assert!(out.contains("permission denied"), "{out}");
    let out = ok(server.ctl("ida", &["certificate", "get", "old-pc", "--out", cert_dir.to_str().unwrap()]));
    assert!(out.contains("certificate.html and 2 evidence file(s)"), "{out}");
    let html = std::fs::read_to_string(cert_dir.join("certificate.html")).unwrap();
    assert!(html.contains("Shredco (certificate of destruction CD-2026-17)"), "{html}");
    assert!(html.contains("Recyclers, Ltd"), "{html}");
    let certificate: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cert_dir.join("certificate.json")).unwrap()).unwrap();
    assert_eq!(certificate["disks"][0]["category"], "Clear");
    assert_eq!(certificate["disks"][0]["serial"], "DISK-A");
    assert_eq!(certificate["disks"][1]["category"], "Destroy");
    assert_eq!(certificate["disks"][1]["organisation"], "Shredco (certificate of destruction CD-2026-17)");
    assert_eq!(certificate["disposal"]["consignment_ref"], "WEEE-0042");
    assert!(openssl_verifies(&cert_dir), "openssl verifies the certificate as issued");
    let out = ok(server.offline(&["certificate", "verify", cert_dir.to_str().unwrap()]));
    assert!(out.contains("OK certificate of sanitisation of old-pc"), "{out}");
    // It was issued with the disposal, and the register lists its hash.
    let hash =
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(std::fs::read(cert_dir.join("certificate.json")).unwrap()));
    let register = ok(server.ctl("ida", &["disposals", "list"]));
    assert!(register.contains(&format!("certificate sha256 {hash}")), "{register}");
    let again = dir.join("cert-again");
    ok(server.ctl("ida", &["certificate", "get", "old-pc", "--out", again.to_str().unwrap()]));
    assert_eq!(
        std::fs::read(again.join("certificate.json")).unwrap(),
        std::fs::read(cert_dir.join("certificate.json")).unwrap(),
        "the issued certificate is kept"
    );

    // One byte changed in the certificate: both OpenSSL and `certificate verify` refuse it.
    let tampered = dir.join("cert-tampered");
    copy_tree(&cert_dir, &tampered);
    let path = tampered.join("certificate.json");
    let text = std::fs::read_to_string(&path).unwrap().replacen("WEEE-0042", "WEEE-0043", 1);
    std::fs::write(&path, text).unwrap();
    assert!(!openssl_verifies(&tampered), "openssl refuses a changed certificate");
    let out = fails(server.offline(&["certificate", "verify", tampered.to_str().unwrap()]));
    assert!(out.contains("does not verify against server-signing.pub.pem"), "{out}");
    // One byte changed in a piece of evidence: `certificate verify` refuses it.
    for (file, needle) in [
        ("evidence/destruction-record-DISK-B.json", "\"witness\":\"Jo"),
        ("evidence/wipe-attestation-DISK-A.json", "\"payload\": \""),
    ] {
        let tampered = dir.join(format!("cert-{}", file.replace('/', "-")));
        copy_tree(&cert_dir, &tampered);
        let path = tampered.join(file);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.windows(needle.len()).position(|w| w == needle.as_bytes()).expect(needle) + needle.len() + 4;
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        std::fs::write(&path, bytes).unwrap();
        let out = fails(server.offline(&["certificate", "verify", tampered.to_str().unwrap()]));
        assert!(out.contains("does not match its hash in the certificate"), "{file}: {out}");
    }

    // A disposed machine calling in: still the one open alert, one more call.
    pc.report(&server, two_disk_inventory()).await.unwrap_err();
    let alerts = ok(server.ctl("admin", &["alerts", "list"]));
    assert!(alerts.contains("3 call(s)"), "{alerts}");
    let id = alert_id(&alerts);

    // Acknowledging needs a note, is audited, and clears the alert.
    let out = fails(server.ctl("sam", &["alerts", "ack", &id, "--note", "seen"]));
    assert!(out.contains("permission denied"), "{out}");
    let out = fails(server.ctl("ida", &["alerts", "ack", &id, "--note", " "]));
    assert!(out.contains("--note is required"), "{out}");
    let out = ok(server.ctl("ida", &["alerts", "ack", &id, "--note", "machine found at the recycler; disks were out"]));
    assert!(out.contains(&format!("alert {id} acknowledged")), "{out}");
    assert!(ok(server.ctl("admin", &["alerts", "list"])).contains("0 alert(s)"));
    let all = ok(server.ctl("admin", &["alerts", "list", "--all"]));
    assert!(all.contains("acknowledged by ida (ig-auditor)"), "{all}");
    let out = fails(server.ctl("ida", &["alerts", "ack", &id, "--note", "again"]));
    assert!(out.contains("already acknowledged"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custody_reconciliation_flags_missing_and_extra_serials_and_blocks_closing() {
    let server = TestServer::start(1000);
    let dir = server.dir.path();
    ok(server.ctl(
        "admin",
        &["device", "add", "--serial", "SYS-9", "--asset-tag", "NHS-9", "--model", "OptiPlex", "--state", "in_stock"],
    ));
    let out_dir = dir.join("manifest");
    let create = |out: &Path| {
        server.ctl(
            "admin",
            &[
                "custody",
                "manifest",
                "create",
                "--contractor",
                "Recyclers Ltd",
                "--collection-ref",
                "COL-7",
                "--machine",
                "NHS-9",
                "--disk",
                "DISK-X",
                "--disk",
                "DISK-Y",
                "--out",
                out.to_str().unwrap(),
            ],
        )
    };
    let out = ok(create(&out_dir));
    let id = out.split_whitespace().nth(2).unwrap().trim_end_matches(':').to_owned();
    assert!(out.contains(&format!("custody manifest {id}: open")), "{out}");
    let csv = std::fs::read_to_string(out_dir.join("manifest.csv")).unwrap();
    assert!(csv.contains(",Recyclers Ltd,COL-7,machine,SYS-9,"), "{csv}");
    assert!(csv.contains(",disk,DISK-Y,,"), "{csv}");
    let verified = Command::new("openssl")
        .args(["pkeyutl", "-verify", "-pubin", "-inkey", "server-signing.pub.pem", "-rawin"])
        .args(["-in", "manifest.json", "-sigfile", "manifest.json.sig"])
        .current_dir(&out_dir)
        .output()
        .unwrap();
    assert!(verified.status.success(), "the manifest verifies with openssl");

    // One serial missing from the return, one never handed over, one twice: open, and it cannot close.
    let ret = dir.join("return.csv");
    std::fs::write(&ret, "item,serial,outcome\n1,sys-9,shredded\n2,DISK-X,wiped\n3,EXTRA-1,shredded\n4,DISK-X,wiped\n")
        .unwrap();
    let out = ok(server.ctl("admin", &["custody", "reconcile", &id, ret.to_str().unwrap()]));
    assert!(out.contains(": open"), "{out}");
    assert!(out.contains("missing from the return: DISK-Y"), "{out}");
    assert!(out.contains("returned but never handed over: EXTRA-1"), "{out}");
    assert!(out.contains("returned more than once: DISK-X"), "{out}");
    let out = fails(server.ctl("admin", &["custody", "close", &id]));
    assert!(out.contains("cannot be closed while items are open: missing from the return: [DISK-Y]"), "{out}");

    // The corrected return matches: reconciled, then closed; a closed manifest stays closed.
    std::fs::write(&ret, "serial\nSYS-9\nDISK-X\nDISK-Y\n").unwrap();
    let out = ok(server.ctl("admin", &["custody", "reconcile", &id, ret.to_str().unwrap()]));
    assert!(out.contains(": reconciled"), "{out}");
    let out = ok(server.ctl("admin", &["custody", "close", &id]));
    assert!(out.contains(": closed"), "{out}");
    let out = fails(server.ctl("admin", &["custody", "reconcile", &id, ret.to_str().unwrap()]));
    assert!(out.contains("is closed"), "{out}");

    // Every step is in the audit trail.
    let export = dir.join("audit");
    ok(server.ctl("admin", &["audit", "export", "--out", export.to_str().unwrap()]));
    let mut events = String::new();
    for entry in std::fs::read_dir(&export).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            events.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    for action in ["created", "reconciled", "closed"] {
        assert!(events.contains(&format!("\"action\":\"{action}\"")), "{action}");
    }
    assert_eq!(events.matches("custody_manifest_changed").count(), 4, "created, reconciled twice, closed");
}
