//! End-to-end checks of wipe attestations against the real `custodian-server`
//! and `custodianctl` binaries over mutual TLS on loopback. The "agent" side
//! is played by this test (a CSR from rcgen, envelopes signed with
//! ed25519-dalek), so altered and wrongly-signed attestations can be sent.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use custodian_proto::channel::{ClientIdentity, connect};
use custodian_proto::envelope::{self, REPORT_PAYLOAD_TYPE, WIPE_ATTESTATION_PAYLOAD_TYPE};
use custodian_proto::v1 as pb;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use prost::Message;

const SERVER: &str = env!("CARGO_BIN_EXE_custodian-server");
const CTL: &str = env!("CARGO_BIN_EXE_custodianctl");

/// The server process, killed on drop even when the test fails.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run a binary");
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A server in a temporary data directory with an admin identity; the
/// server is killed and the directory removed on drop.
pub(super) struct Harness {
    dir: tempfile::TempDir,
    _server: Running,
    pub(super) url: String,
    ca_pem: String,
    admin: PathBuf,
}

impl Harness {
    /// Initialises a data directory, issues `alice` (admin) and serves on loopback.
    pub(super) fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        run(Command::new(SERVER).arg("init").arg("--data-dir").arg(&data));
        let admin = dir.path().join("admin");
        run(Command::new(SERVER)
            .args(["operator", "issue", "--name", "alice", "--role", "admin", "--data-dir"])
            .arg(&data)
            .arg("--out")
            .arg(&admin));
        let mut child = Command::new(SERVER)
            .args(["--log-level", "warn", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("listening on ").expect("the server says where it listens").to_owned();
        let ca_pem = std::fs::read_to_string(data.join("ca.pem")).unwrap();
        Self { _server: Running(child), url: format!("https://{addr}"), ca_pem, admin, dir }
    }

    /// The temporary directory everything lives in (scratch space for callers too).
    pub(super) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's CA certificate file.
    pub(super) fn ca_file(&self) -> PathBuf {
        self.dir.path().join("data/ca.pem")
    }

    /// Runs `custodianctl` as the admin and returns its stdout (fails the test on error).
    pub(super) fn ctl(&self, args: &[&str]) -> String {
        run(Command::new(CTL).arg("--server").arg(&self.url).arg("--identity").arg(&self.admin).args(args))
    }

    /// Enrols a device with a fresh key using a token of `role`.
    async fn enroll(&self, role: &str, hostname: &str) -> Device {
        let token = self.ctl(&["token", "create", "--role", role]).trim().to_owned();
        let key = SigningKey::from_bytes(&rand::random());
        let key_pem = key.to_pkcs8_pem(Default::default()).unwrap().to_string();
        let key_pair = rcgen::KeyPair::from_pem(&key_pem).unwrap();
        let csr = rcgen::CertificateParams::default().serialize_request(&key_pair).unwrap().pem().unwrap();
        let channel = connect(&self.url, &self.ca_pem, None).await.unwrap();
        let res = pb::enrollment_client::EnrollmentClient::new(channel)
            .enroll(pb::EnrollRequest {
                token,
                csr_pem: csr,
                hostname: hostname.to_owned(),
                system_serial: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        let channel = connect(
            &self.url,
            &self.ca_pem,
            Some(ClientIdentity { cert_pem: &res.certificate_pem, key_pem: &key_pem }),
        )
        .await
        .unwrap();
        Device { id: res.device_id, key, client: pb::agent_client::AgentClient::new(channel) }
    }
}

struct Device {
    id: String,
    key: SigningKey,
    client: pb::agent_client::AgentClient<tonic::transport::Channel>,
}

impl Device {
    async fn submit(&mut self, envelopes: Vec<pb::SignedEnvelope>) -> Vec<pb::EnvelopeResult> {
        self.client.submit_reports(pb::SubmitReportsRequest { envelopes }).await.unwrap().into_inner().results
    }
}

/// A passed full-verification clear-random attestation of disk `serial`,
/// signed by `signer` about a disk from `source`.
pub(super) fn attestation(signer: &str, seq: u64, serial: &str, source: &str) -> pb::WipeAttestation {
    let now = custodian_proto::now_ms();
    pb::WipeAttestation {
        device_id: signer.to_owned(),
        seq,
        disk: Some(pb::WipedDisk {
            model: "ACME SSD 256".to_owned(),
            serial: serial.to_owned(),
            apparent_size_bytes: 256 << 30,
            native_size_bytes: 256 << 30,
            ..Default::default()
        }),
        method: pb::WipeMethod::ClearRandom.into(),
        passes: 1,
        pattern: "chacha20".to_owned(),
        seed: vec![7; 32],
        verification: Some(pb::WipeVerification {
            mode: pb::VerifyMode::Full.into(),
            block_size: 1 << 20,
            blocks_total: 262144,
            blocks_checked: 262144,
            ..Default::default()
        }),
        result: Some(pb::WipeResult { outcome: pb::WipeOutcome::Passed.into(), ..Default::default() }),
        started_at_ms: now - 60_000,
        finished_at_ms: now,
        tool_version: "test".to_owned(),
        operator: "bob".to_owned(),
        source_device_id: source.to_owned(),
        ..Default::default()
    }
}

fn sign(key: &SigningKey, att: &pb::WipeAttestation) -> pb::SignedEnvelope {
    envelope::sign(key, WIPE_ATTESTATION_PAYLOAD_TYPE, att.encode_to_vec())
}

fn outcome(result: &pb::EnvelopeResult) -> pb::Outcome {
    pb::Outcome::try_from(result.outcome).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wipe_attestations_end_to_end() {
    let h = Harness::start();
    let mut station = h.enroll("wipe-station", "wipe-1").await;
    let mut pc = h.enroll("workstation", "ward-pc").await;

    // A station attests to a disk no machine has reported yet: kept, listed.
    let good = sign(&station.key, &attestation(&station.id, 1, "DISK-42", ""));
    let mut altered = good.clone();
    let n = altered.payload.len();
    altered.payload[n - 3] ^= 0x01;
    let stranger = SigningKey::from_bytes(&rand::random());
    let foreign = sign(&stranger, &attestation(&station.id, 2, "DISK-43", ""));
    let results = station.submit(vec![good.clone(), altered, foreign]).await;
    assert_eq!(outcome(&results[0]), pb::Outcome::Accepted, "{:?}", results[0]);
    assert_eq!(outcome(&results[1]), pb::Outcome::Rejected);
    assert!(results[1].detail.contains("signature"), "{}", results[1].detail);
    assert_eq!(outcome(&results[2]), pb::Outcome::Rejected, "signed by another device's key");
    assert!(results[2].detail.contains("signature"), "{}", results[2].detail);
    // The same envelope again is a duplicate, not a second record.
    assert_eq!(outcome(&station.submit(vec![good.clone()]).await[0]), pb::Outcome::Duplicate);

    let unmatched = h.ctl(&["attestations", "unmatched"]);
    assert!(unmatched.contains("DISK-42"), "{unmatched}");
    assert!(unmatched.contains("1 unmatched attestation(s)"), "{unmatched}");
    assert!(unmatched.contains("signature verified by custodianctl"), "{unmatched}");

    // A workstation's attestation for its own disk, in the same sequence as
    // its reports (a report at seq 1, the attestation at 2), plus a report
    // naming the station's disk.
    let storage = vec![
        pb::StorageDevice {
            name: "nvme0n1".to_owned(),
            serial: Some(pb::Readable::value("DISK-42")),
            model: Some(pb::Readable::value("ACME SSD 256")),
            size_bytes: 256 << 30,
            ..Default::default()
        },
        pb::StorageDevice {
            name: "sda".to_owned(),
            serial: Some(pb::Readable::value("DISK-7")),
            size_bytes: 1 << 40,
            ..Default::default()
        },
    ];
    let pc_id = pc.id.clone();
    let report = |seq| pb::Report {
        device_id: pc_id.clone(),
        seq,
        collected_at_ms: custodian_proto::now_ms(),
        agent_version: "test".to_owned(),
        inventory: Some(pb::Inventory {
            hostname: "ward-pc".to_owned(),
            storage: storage.clone(),
            ..Default::default()
        }),
        heartbeat: None,
    };
    let r1 = envelope::sign(&pc.key, REPORT_PAYLOAD_TYPE, report(1).encode_to_vec());
    let mut own = attestation(&pc.id, 2, "DISK-7", &pc.id);
    own.result = Some(pb::WipeResult {
        outcome: pb::WipeOutcome::Failed.into(),
        reason: "verification found a byte that differs".to_owned(),
        first_mismatch_offset: Some(4096),
    });
    let a2 = sign(&pc.key, &own);
    // Claiming a disk of another machine as a workstation is refused.
    let not_mine = sign(&pc.key, &attestation(&pc.id, 3, "DISK-42", &station.id));
    let results = pc.submit(vec![r1, a2, not_mine]).await;
    let outcomes: Vec<pb::Outcome> = results.iter().map(outcome).collect();
    assert_eq!(outcomes, vec![pb::Outcome::Accepted, pb::Outcome::Accepted, pb::Outcome::Rejected], "{results:?}");
    assert!(results[2].detail.contains("own disks"), "{}", results[2].detail);
    // Seq 2 is taken by the attestation: a report there is a replay.
    let replay = envelope::sign(&pc.key, REPORT_PAYLOAD_TYPE, report(2).encode_to_vec());
    assert_eq!(outcome(&pc.submit(vec![replay]).await[0]), pb::Outcome::Rejected);

    let show = h.ctl(&["device", "show", "ward-pc"]);
    assert!(show.contains("Disks (wipe status)"), "{show}");
    assert!(show.contains("wiped: clear-random by wipe station"), "{show}");
    assert!(show.contains("NOT wiped; last attempt: clear-random by the machine itself"), "{show}");
    assert!(show.contains("FAILED at byte 4096"), "{show}");
    let json: serde_json::Value = serde_json::from_str(&h.ctl(&["device", "show", "ward-pc", "--json"])).unwrap();
    assert_eq!(json["disks"][0]["wiped"], true);
    assert_eq!(json["disks"][0]["passed"]["signature_verified"], true);
    assert_eq!(json["disks"][1]["wiped"], false);
    let unmatched = h.ctl(&["attestations", "unmatched"]);
    assert!(unmatched.contains("0 unmatched attestation(s)"), "matched once an inventory holds the disk: {unmatched}");
}
