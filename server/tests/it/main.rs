//! End-to-end tests of issue 4 (lifecycle, register, roles, audit trail)
//! against the real `custodian-server` and `custodianctl` binaries over
//! mutual TLS on loopback. The agent side (enrolment, a signed report) is
//! played by this test with the real wire protocol, since the server crate
//! may not depend on the agent crate.

#![allow(clippy::unwrap_used)] // A test harness: a failure should panic with its cause.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use custodian_proto::channel::{ClientIdentity, connect};
use custodian_proto::envelope::{REPORT_PAYLOAD_TYPE, sign};
use custodian_proto::v1 as pb;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use prost::Message;

mod disposal;
mod inventory;
mod list;
mod rollout;
mod wipe;

/// A running server in a temporary data directory, killed on drop.
struct TestServer {
    dir: tempfile::TempDir,
    child: Child,
    url: String,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_bin() -> &'static str {
    env!("CARGO_BIN_EXE_custodian-server")
}

fn ctl_bin() -> &'static str {
    env!("CARGO_BIN_EXE_custodianctl")
}

#[track_caller]
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}\nstdout: {}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[track_caller]
fn fails(out: Output) -> String {
    assert!(!out.status.success(), "command should fail; stdout: {}", String::from_utf8_lossy(&out.stdout));
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

impl TestServer {
    fn start(checkpoint_every: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        ok(Command::new(server_bin()).args(["init", "--data-dir"]).arg(&data).output().unwrap());
        let config = std::fs::read_to_string(data.join("server.toml")).unwrap();
        let config =
            config.replace("audit_checkpoint_events = 1000", &format!("audit_checkpoint_events = {checkpoint_every}"));
        std::fs::write(data.join("server.toml"), config).unwrap();
        ok(Command::new(server_bin())
            .args(["operator", "issue", "--data-dir"])
            .arg(&data)
            .args(["--name", "root", "--role", "admin", "--out"])
            .arg(dir.path().join("admin"))
            .output()
            .unwrap());
        let mut child = Command::new(server_bin())
            .args(["--log-level", "warn", "serve", "--data-dir"])
            .arg(&data)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("listening on ").expect("server prints its address").to_owned();
        Self { dir, child, url: format!("https://{addr}") }
    }

    fn identity(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ctl(&self, identity: &str, args: &[&str]) -> Output {
        Command::new(ctl_bin())
            .args(["--server", &self.url, "--identity"])
            .arg(self.identity(identity))
            .args(args)
            .output()
            .unwrap()
    }

    fn offline(&self, args: &[&str]) -> Output {
        Command::new(ctl_bin()).args(args).output().unwrap()
    }

    fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("data/ca.pem")).unwrap()
    }
}

/// A machine played by the test: its key and, once enrolled, its certificate.
struct Machine {
    key: SigningKey,
    key_pem: String,
    device_id: String,
    cert_pem: String,
    seq: u64,
}

impl Machine {
    async fn enroll(server: &TestServer, token: &str, hostname: &str, serial: &str) -> Result<Self, tonic::Status> {
        let key = custodian_proto::envelope::generate_key();
        let key_pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let key_pair = rcgen::KeyPair::from_pem(&key_pem).unwrap();
        let csr_pem = rcgen::CertificateParams::default().serialize_request(&key_pair).unwrap().pem().unwrap();
        let channel = connect(&server.url, &server.ca_pem(), None).await.unwrap();
        let res = pb::enrollment_client::EnrollmentClient::new(channel)
            .enroll(pb::EnrollRequest {
                token: token.to_owned(),
                csr_pem,
                hostname: hostname.to_owned(),
                system_serial: serial.to_owned(),
            })
            .await?
            .into_inner();
        Ok(Self { key, key_pem, device_id: res.device_id, cert_pem: res.certificate_pem, seq: 0 })
    }

    async fn report(
        &mut self,
        server: &TestServer,
        inventory: pb::Inventory,
    ) -> Result<pb::EnvelopeResult, tonic::Status> {
        self.submit(server, Some(inventory), None).await
    }

    /// A heartbeat: the agent's inventory is `unchanged` (which the server
    /// already holds), so it sends only its hash, as the real agent does.
    async fn heartbeat(
        &mut self,
        server: &TestServer,
        unchanged: &pb::Inventory,
    ) -> Result<pb::EnvelopeResult, tonic::Status> {
        let inventory_sha256 = <sha2::Sha256 as sha2::Digest>::digest(unchanged.encode_to_vec()).to_vec();
        self.submit(server, None, Some(pb::Heartbeat { inventory_sha256 })).await
    }

    async fn submit(
        &mut self,
        server: &TestServer,
        inventory: Option<pb::Inventory>,
        heartbeat: Option<pb::Heartbeat>,
    ) -> Result<pb::EnvelopeResult, tonic::Status> {
        self.seq += 1;
        let report = pb::Report {
            device_id: self.device_id.clone(),
            seq: self.seq,
            collected_at_ms: custodian_proto::now_ms(),
            agent_version: "test".to_owned(),
            inventory,
            heartbeat,
        };
        let envelope = sign(&self.key, REPORT_PAYLOAD_TYPE, report.encode_to_vec());
        let identity = ClientIdentity { cert_pem: &self.cert_pem, key_pem: &self.key_pem };
        let channel = connect(&server.url, &server.ca_pem(), Some(identity)).await.unwrap();
        let res = pb::agent_client::AgentClient::new(channel)
            .submit_reports(pb::SubmitReportsRequest { envelopes: vec![envelope] })
            .await?
            .into_inner();
        Ok(res.results.into_iter().next().unwrap())
    }
}

fn readable(value: &str) -> Option<pb::Readable> {
    Some(pb::Readable { state: Some(pb::readable::State::Value(value.to_owned())) })
}

fn inventory(hostname: &str, serial: &str, encrypted: bool) -> pb::Inventory {
    let state = if encrypted { pb::EncryptionState::Encrypted } else { pb::EncryptionState::NotEncrypted };
    pb::Inventory {
        hostname: hostname.to_owned(),
        system: Some(pb::SystemInfo {
            serial: readable(serial),
            model: readable("OptiPlex 7010"),
            ..Default::default()
        }),
        storage: vec![pb::StorageDevice {
            name: "sda".to_owned(),
            serial: readable("DISK-SN-1"),
            volumes: vec![pb::Volume {
                name: "sda2".to_owned(),
                holds_data: true,
                encryption: Some(pb::Encryption { state: state.into(), ..Default::default() }),
                ..Default::default()
            }],
            ..Default::default()
        }],
        network: vec![pb::NetworkInterface {
            name: "eth0".to_owned(),
            mac: "AA:BB:CC:DD:EE:01".to_owned(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn history_len(server: &TestServer, query: &str) -> usize {
    let out = ok(server.ctl("admin", &["device", "history", query, "--json"]));
    out.lines().count()
}

/// A scripted history through register, enrolment, reports, guards,
/// overrides, refusals and roles; then the audit trail of it is exported and
/// verified offline, and tampering with it is caught at the right place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_history_lifecycle_roles_and_audit_trail() {
    let server = TestServer::start(5);
    let dir = server.dir.path();

    // Admin issues the other operators over the API.
    for (name, role) in [("eve", "engineer"), ("sam", "service-desk"), ("ida", "ig-auditor")] {
        ok(server.ctl(
            "admin",
            &["operator", "issue", "--name", name, "--role", role, "--out", dir.join(name).to_str().unwrap()],
        ));
    }
    // While the server runs, the offline issuer cannot open the store and says what to use instead.
    let out = fails(
        Command::new(server_bin())
            .args(["operator", "issue", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--name", "late", "--role", "admin", "--out"])
            .arg(dir.join("late"))
            .output()
            .unwrap(),
    );
    assert!(out.contains("custodianctl operator issue"), "{out}");
    // Only admin issues operators.
    let out = fails(server.ctl(
        "eve",
        &["operator", "issue", "--name", "x", "--role", "admin", "--out", dir.join("x").to_str().unwrap()],
    ));
    assert!(out.contains("needs one of: admin"), "{out}");

    // Register before enrolment: add one; a CSV with one bad row applies nothing.
    ok(server.ctl(
        "eve",
        &["device", "add", "--serial", "SN-1", "--asset-tag", "NHS-0001", "--model", "OptiPlex 7010", "--site", "RVI"],
    ));
    let csv = dir.join("po.csv");
    std::fs::write(
        &csv,
        "serial,asset_tag,model,state\nSN-2,NHS-0002,OptiPlex,in_stock\nSN-3,NHS-0001,OptiPlex,ordered\n",
    )
    .unwrap();
    let out = fails(server.ctl("eve", &["device", "import", csv.to_str().unwrap()]));
    assert!(out.contains("line 3: a device with asset tag NHS-0001 is already registered"), "{out}");
    let listed = ok(server.ctl("sam", &["device", "list", "--csv"]));
    assert_eq!(listed.lines().count(), 2, "header and one device: {listed}");
    std::fs::write(
        &csv,
        "serial,asset_tag,model,state\nSN-2,NHS-0002,OptiPlex,in_stock\nSN-3,NHS-0003,Latitude,ordered\n",
    )
    .unwrap();
    assert!(ok(server.ctl("eve", &["device", "import", csv.to_str().unwrap()])).contains("imported 2 devices"));
    let listed = ok(server.ctl("sam", &["device", "list", "--csv", "--state", "in_stock"]));
    assert!(listed.contains("NHS-0002") && !listed.contains("NHS-0003"), "{listed}");
    let listed = ok(server.ctl("sam", &["device", "list", "--csv", "--model", "latitude"]));
    assert!(listed.contains("NHS-0003") && !listed.contains("NHS-0002"), "{listed}");
    // Service desk and IG cannot add.
    for who in ["sam", "ida"] {
        let out = fails(server.ctl(who, &["device", "add", "--serial", "X", "--asset-tag", "X", "--model", "X"]));
        assert!(out.contains("needs one of: engineer, admin"), "{out}");
    }

    // A token bound to the asset tag; the machine enrols into its register entry.
    let registered = ok(server.ctl("sam", &["device", "show", "NHS-0001", "--json"]));
    let registered: serde_json::Value = serde_json::from_str(&registered).unwrap();
    let register_id = registered["device_id"].as_str().unwrap().to_owned();
    let out = fails(server.ctl("sam", &["token", "create", "--asset-tag", "NHS-0001"]));
    assert!(out.contains("needs one of: engineer, admin"), "{out}");
    let token = ok(server.ctl("eve", &["token", "create", "--asset-tag", "NHS-0001"])).trim().to_owned();
    let mut machine = Machine::enroll(&server, &token, "ward7-pc1", "SN-1").await.unwrap();
    assert_eq!(machine.device_id, register_id, "the certificate names the register's id");
    let accepted = machine.report(&server, inventory("ward7-pc1", "SN-1", false)).await.unwrap();
    assert_eq!(accepted.outcome(), pb::Outcome::Accepted, "{}", accepted.detail);

    // Found by every key.
    for query in [register_id.as_str(), "ward7-pc1", "SN-1", "nhs-0001", "aa:bb:cc:dd:ee:01", "AA-BB-CC-DD-EE-01"] {
        let shown = ok(server.ctl("sam", &["device", "show", query]));
        assert!(shown.contains(&register_id), "{query}: {shown}");
        assert!(shown.contains("staged"), "{query}: {shown}");
    }

    // Guards and the graph. Nothing is written by a refused move.
    let before = history_len(&server, "NHS-0001");
    let out = fails(server.ctl("eve", &["device", "transition", "NHS-0001", "deployed", "--reason", "rollout"]));
    assert!(out.contains("sda2 (sda)") && out.contains("--override"), "{out}");
    let out = fails(server.ctl("eve", &["device", "transition", "NHS-0001", "disposed", "--reason", "x"]));
    assert!(out.contains("from staged it may move to: deployed, retired, lost"), "{out}");
    let out =
        fails(server.ctl("sam", &["device", "transition", "NHS-0001", "deployed", "--reason", "x", "--override", "y"]));
    assert!(out.contains("needs one of: engineer, admin"), "{out}");
    let out = fails(server.ctl("ida", &["device", "transition", "NHS-0001", "retired", "--reason", "x"]));
    assert!(out.contains("needs one of: engineer, admin"), "{out}");
    assert_eq!(history_len(&server, "NHS-0001"), before);
    ok(server.ctl(
        "eve",
        &[
            "device",
            "transition",
            "NHS-0001",
            "deployed",
            "--reason",
            "rollout",
            "--override",
            "BitLocker after go-live",
            "--ward",
            "Ward 7",
            "--assigned-to",
            "Dr Who",
        ],
    ));
    let shown = ok(server.ctl("sam", &["device", "show", "NHS-0001"]));
    assert!(shown.contains("deployed") && shown.contains("Ward 7") && shown.contains("Dr Who"), "{shown}");
    ok(server.ctl("sam", &["device", "note", "NHS-0001", "user reports slow boot"]));
    let out = fails(server.ctl("ida", &["device", "note", "NHS-0001", "x"]));
    assert!(out.contains("needs one of: service-desk, engineer, admin"), "{out}");
    // IG files a checkpoint mid-history (an export signs one covering everything so far).
    let early = dir.join("early-export");
    ok(server.ctl("ida", &["audit", "export", "--out", early.to_str().unwrap()]));
    let kept = dir.join("kept-checkpoint");
    let early_latest = latest_checkpoint(&early);
    std::fs::copy(&early_latest, &kept).unwrap();
    std::fs::copy(format!("{}.sig", early_latest.display()), format!("{}.sig", kept.display())).unwrap();
    ok(server.ctl("eve", &["device", "transition", "NHS-0001", "retired", "--reason", "end of life"]));
    let out = fails(server.ctl("eve", &["device", "transition", "NHS-0001", "sanitised", "--reason", "wiped"]));
    assert!(out.contains("not covered: sda (serial DISK-SN-1)"), "{out}");

    // History, newest first, with the override kept.
    let history = ok(server.ctl("ida", &["device", "history", "NHS-0001"]));
    let kinds: Vec<&str> = history.lines().skip(1).map(|l| l.split_whitespace().nth(2).unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "device_transitioned",
            "note_added",
            "device_transitioned",
            "report_accepted",
            "device_enrolled",
            "device_added"
        ],
        "{history}"
    );
    assert!(history.contains("OVERRIDE: \"BitLocker after go-live\""), "{history}");

    // Lost: the device's certificate is refused from then on.
    let token2 = ok(server.ctl("eve", &["token", "create"])).trim().to_owned();
    let mut other = Machine::enroll(&server, &token2, "ward8-pc2", "SN-9").await.unwrap();
    assert_eq!(
        other.report(&server, inventory("ward8-pc2", "SN-9", true)).await.unwrap().outcome(),
        pb::Outcome::Accepted
    );
    ok(server.ctl("eve", &["device", "transition", "ward8-pc2", "lost", "--reason", "not found at audit"]));
    let refused = other.report(&server, inventory("ward8-pc2", "SN-9", true)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

    // Export: only IG and admin.
    for who in ["sam", "eve"] {
        let out = fails(server.ctl(who, &["audit", "export", "--out", dir.join("nope").to_str().unwrap()]));
        assert!(out.contains("needs one of: ig-auditor, admin"), "{out}");
    }
    // IG moves nothing: no tokens, no revocations.
    let out = fails(server.ctl("ida", &["token", "create"]));
    assert!(out.contains("needs one of: engineer, admin"), "{out}");
    let out = fails(server.ctl("ida", &["device", "revoke", "NHS-0002", "--reason", "x"]));
    assert!(out.contains("needs one of: engineer, admin"), "{out}");
    let export = dir.join("export");
    ok(server.ctl("ida", &["audit", "export", "--out", export.to_str().unwrap()]));
    let verified = ok(server.offline(&["audit", "verify", export.to_str().unwrap()]));
    assert!(verified.starts_with("OK "), "{verified}");
    let n_events = std::fs::read_to_string(export.join("events.jsonl")).unwrap().lines().count();
    assert!(n_events >= 15, "{n_events} events");

    // Every checkpoint verifies with openssl; one changed byte does not.
    let mut checkpoints: Vec<PathBuf> = std::fs::read_dir(export.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none())
        .collect();
    checkpoints.sort();
    assert!(checkpoints.len() >= 2, "the early export's and this one's: {checkpoints:?}");
    for checkpoint in &checkpoints {
        assert!(openssl_verify(&export, checkpoint), "{}", checkpoint.display());
    }
    let altered = dir.join("altered-checkpoint");
    let mut bytes = std::fs::read(&checkpoints[1]).unwrap();
    bytes[3] ^= 0x20;
    std::fs::write(&altered, bytes).unwrap();
    std::fs::copy(format!("{}.sig", checkpoints[1].display()), format!("{}.sig", altered.display())).unwrap();
    assert!(!openssl_verify(&export, &altered));

    // The server proves its log extends the kept checkpoint.
    let consistent = ok(server.ctl(
        "sam",
        &[
            "audit",
            "consistency",
            "--checkpoint",
            kept.to_str().unwrap(),
            "--key",
            export.join("server-signing.pub.pem").to_str().unwrap(),
        ],
    ));
    assert!(consistent.contains("is consistent with the server's latest"), "{consistent}");
    // A checkpoint of a different history at the same size is refused.
    let forged = dir.join("forged-checkpoint");
    let mut text = std::fs::read_to_string(&kept).unwrap();
    let root_line = text.lines().nth(2).unwrap().to_owned();
    text = text.replace(&root_line, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    std::fs::write(&forged, text).unwrap();
    let out = fails(server.ctl(
        "sam",
        &[
            "audit",
            "consistency",
            "--checkpoint",
            forged.to_str().unwrap(),
            "--key",
            export.join("server-signing.pub.pem").to_str().unwrap(),
        ],
    ));
    assert!(out.contains("NOT CONSISTENT"), "{out}");

    // An inclusion proof verifies offline.
    let proof = ok(server.ctl("sam", &["audit", "prove", "3"]));
    std::fs::write(dir.join("proof.json"), &proof).unwrap();
    let checked = ok(server.offline(&[
        "audit",
        "verify-proof",
        dir.join("proof.json").to_str().unwrap(),
        "--key",
        export.join("server-signing.pub.pem").to_str().unwrap(),
    ]));
    assert!(checked.contains("event 3 is included"), "{checked}");

    // Tampering is caught at the right sequence number.
    check_tamper(
        &export,
        dir,
        "flip",
        |lines| {
            let line = &mut lines[7];
            let at = line.find("\"actor\":\"").unwrap() + 9;
            line.replace_range(at..at + 1, "X");
        },
        "seq 7:",
    );
    check_tamper(
        &export,
        dir,
        "delete",
        |lines| {
            lines.remove(4);
        },
        "seq 4:",
    );
    check_tamper(
        &export,
        dir,
        "insert",
        |lines| {
            let copy = lines[2].clone();
            lines.insert(6, copy);
        },
        "seq 6:",
    );
    check_tamper(&export, dir, "swap", |lines| lines.swap(9, 10), "seq 9:");

    // A kept checkpoint: the real export is consistent with it...
    let consistent =
        ok(server.offline(&["audit", "verify", export.to_str().unwrap(), "--checkpoint", kept.to_str().unwrap()]));
    assert!(consistent.contains("consistent with the kept checkpoint"), "{consistent}");
    // ...but a history rewritten from seq 2 onwards and re-signed with the
    // server's own key (as whoever holds the server could) is not.
    let rewritten = dir.join("rewritten");
    rewrite_and_resign(&export, &rewritten, &dir.join("data/server-signing.key"), 2);
    ok(Command::new(ctl_bin()).args(["audit", "verify"]).arg(&rewritten).output().unwrap());
    let out = fails(
        Command::new(ctl_bin())
            .args(["audit", "verify"])
            .arg(&rewritten)
            .arg("--checkpoint")
            .arg(&kept)
            .output()
            .unwrap(),
    );
    assert!(out.contains("not consistent with the kept checkpoint"), "{out}");
}

fn latest_checkpoint(export: &Path) -> PathBuf {
    let mut checkpoints: Vec<PathBuf> = std::fs::read_dir(export.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none())
        .collect();
    checkpoints.sort();
    checkpoints.pop().unwrap()
}

fn openssl_verify(export: &Path, checkpoint: &Path) -> bool {
    Command::new("openssl")
        .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
        .arg(export.join("server-signing.pub.pem"))
        .arg("-rawin")
        .arg("-in")
        .arg(checkpoint)
        .arg("-sigfile")
        .arg(format!("{}.sig", checkpoint.display()))
        .output()
        .unwrap()
        .status
        .success()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("checkpoints")).unwrap();
    for name in ["events.jsonl", "leaf-hashes.bin", "server-signing.pub.pem"] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
    for entry in std::fs::read_dir(from.join("checkpoints")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join("checkpoints").join(path.file_name().unwrap())).unwrap();
    }
}

#[track_caller]
fn check_tamper(export: &Path, dir: &Path, name: &str, change: impl FnOnce(&mut Vec<String>), expect: &str) {
    let copy = dir.join(format!("tampered-{name}"));
    copy_dir(export, &copy);
    let text = std::fs::read_to_string(copy.join("events.jsonl")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    change(&mut lines);
    std::fs::write(copy.join("events.jsonl"), lines.join("\n") + "\n").unwrap();
    let out = fails(Command::new(ctl_bin()).args(["audit", "verify"]).arg(&copy).output().unwrap());
    let first_fail = out.lines().find(|l| l.starts_with("FAIL")).unwrap_or_default();
    assert!(first_fail.starts_with(&format!("FAIL {expect}")), "{name}: {out}");
}

/// Rewrites every event from `from` on and signs fresh checkpoints with the
/// server's key, as an attacker holding the server could.
fn rewrite_and_resign(export: &Path, out: &Path, signing_key: &Path, from: usize) {
    use custodian_server::audit::checkpoint::{Checkpoint, load_signing_key, origin_for};
    use custodian_server::audit::export::ExportWriter;
    use custodian_server::audit::merkle::{Frontier, leaf_hash};
    let key = load_signing_key(&std::fs::read_to_string(signing_key).unwrap()).unwrap();
    let pem = std::fs::read_to_string(export.join("server-signing.pub.pem")).unwrap();
    let mut writer = ExportWriter::create(out, &pem).unwrap();
    let mut frontier = Frontier::default();
    let text = std::fs::read_to_string(export.join("events.jsonl")).unwrap();
    for (i, line) in text.lines().enumerate() {
        let line = if i >= from { line.replacen("\"time_ms\":", "\"time_ms\":1", 1) } else { line.to_owned() };
        let hash = leaf_hash(line.as_bytes());
        writer.push_event(&hash, line.as_bytes()).unwrap();
        frontier.push(hash);
    }
    let checkpoint =
        Checkpoint { origin: origin_for(&key.verifying_key()), size: frontier.size, root: frontier.root(), time_ms: 1 };
    let (text, sig) = checkpoint.sign(&key);
    writer.add_checkpoint(checkpoint.size, 1, text.as_bytes(), &sig).unwrap();
    writer.finish().unwrap();
}
