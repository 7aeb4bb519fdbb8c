//! Signed envelopes the server must refuse (and store nothing for), replays,
//! duplicates, and revoked devices.

use custodian_proto::identity::Role;
use custodian_proto::v1 as pb;
use pb::Outcome;
use prost::Message;

use super::check_outcome;
use crate::{DeviceCredentials, Machine, RawDevice, Server, TestDir};

/// A server with one enrolled machine (its first report, seq 1, delivered)
/// and a raw connection as that machine.
async fn enrolled() -> (TestDir, Server, Machine, RawDevice) {
    let dir = TestDir::new();
    let server = Server::start(dir.path()).await;
    let machine = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    machine.enroll_ok(&server).await;
    let device = RawDevice::connect(&server.url(), DeviceCredentials::load(machine.state_dir())).await;
    assert_eq!(server.report_counts("ward7-pc01").await, (1, 1));
    (dir, server, machine, device)
}

#[tokio::test]
async fn tampered_payload_is_refused_and_nothing_stored() {
    let (_dir, server, _machine, device) = enrolled().await;
    let creds = &device.creds;
    let genuine = creds.sign(&creds.report(2, "ward7-pc01"));

    // The payload re-encoded with a different hostname, signature kept.
    let mut report = pb::Report::decode(genuine.payload.as_slice()).unwrap();
    report.inventory.as_mut().unwrap().hostname = "somewhere-else".to_owned();
    let rewritten = pb::SignedEnvelope { payload: report.encode_to_vec(), ..genuine.clone() };
    // One payload bit flipped.
    let mut flipped = genuine.clone();
    flipped.payload[3] ^= 0x01;
    // The signature is over the payload type too.
    let retyped =
        pb::SignedEnvelope { payload_type: "application/vnd.custodian.attestation".to_owned(), ..genuine.clone() };

    for (envelope, detail) in
        [(rewritten, "signature does not verify"), (flipped, "signature does not verify"), (retyped, "payload type")]
    {
        let result = device.submit_one(envelope).await.unwrap();
        check_outcome(&result, Outcome::Rejected, detail);
        assert_eq!(server.report_counts("ward7-pc01").await, (1, 1), "a refused report was stored");
    }
    let devices = server.ctl_run(Role::ServiceDesk, &["device", "list"]).await.success();
    assert!(!devices.stdout.contains("somewhere-else"), "{devices}");

    // The genuine report still takes seq 2: nothing was written for it before.
    check_outcome(&device.submit_one(genuine).await.unwrap(), Outcome::Accepted, "");
    assert_eq!(server.report_counts("ward7-pc01").await, (2, 2));
}

#[tokio::test]
async fn bad_signature_is_refused_and_nothing_stored() {
    let (_dir, server, _machine, device) = enrolled().await;
    let creds = &device.creds;
    let genuine = creds.sign(&creds.report(2, "ward7-pc01"));

    let mut flipped = genuine.clone();
    flipped.signature[10] ^= 0x80;
    let truncated = pb::SignedEnvelope { signature: genuine.signature[..63].to_vec(), ..genuine.clone() };
    let other_key = custodian_proto::envelope::generate_key();
    let foreign = custodian_proto::envelope::sign(&other_key, &genuine.payload_type, genuine.payload.clone());

    for (envelope, detail) in
        [(flipped, "signature does not verify"), (truncated, "63 bytes long"), (foreign, "signature does not verify")]
    {
        let result = device.submit_one(envelope).await.unwrap();
        check_outcome(&result, Outcome::Rejected, detail);
        assert_eq!(server.report_counts("ward7-pc01").await, (1, 1), "a refused report was stored");
    }
    check_outcome(&device.submit_one(genuine).await.unwrap(), Outcome::Accepted, "");
    assert_eq!(server.report_counts("ward7-pc01").await, (2, 2));
}

#[tokio::test]
async fn report_claiming_another_device_is_refused() {
    let (dir, server, _machine, device) = enrolled().await;
    let other = Machine::new(dir.path(), "ward7-pc02", "SN-0002");
    let other_id = other.enroll_ok(&server).await;

    // Properly signed by this device, but naming the other one.
    let mut report = device.creds.report(2, "ward7-pc02");
    report.device_id = other_id.to_string();
    let result = device.submit_one(device.creds.sign(&report)).await.unwrap();
    check_outcome(&result, Outcome::Rejected, "but the client certificate is device");
    assert_eq!(server.report_counts("ward7-pc01").await, (1, 1));
    assert_eq!(server.report_counts("ward7-pc02").await, (1, 1));
}

#[tokio::test]
async fn replayed_envelope_is_refused() {
    let (_dir, server, _machine, device) = enrolled().await;
    let creds = &device.creds;
    let results = device
        .submit(vec![creds.sign(&creds.report(2, "ward7-pc01")), creds.sign(&creds.report(5, "ward7-pc01"))])
        .await
        .unwrap();
    check_outcome(&results[0], Outcome::Accepted, "");
    check_outcome(&results[1], Outcome::Accepted, "");
    assert_eq!(server.report_counts("ward7-pc01").await, (3, 5));

    // Old sequence numbers with different bytes: a replay, or out of order.
    for seq in [1, 2, 4, 5] {
        let mut report = creds.report(seq, "ward7-pc01");
        report.collected_at_ms += 1;
        let result = device.submit_one(creds.sign(&report)).await.unwrap();
        check_outcome(&result, Outcome::Rejected, "replayed or out-of-order report");
        assert_eq!(result.seq, seq);
    }
    assert_eq!(server.report_counts("ward7-pc01").await, (3, 5));
    assert_eq!(server.device_json("ward7-pc01").await["latest_report"]["seq"], 5);
}

#[tokio::test]
async fn identical_resend_is_a_duplicate_stored_once() {
    let (_dir, server, _machine, device) = enrolled().await;
    let creds = &device.creds;
    let envelope = creds.sign(&creds.report(2, "ward7-pc01"));
    check_outcome(&device.submit_one(envelope.clone()).await.unwrap(), Outcome::Accepted, "");
    let first_seen = server.device_json("ward7-pc01").await["last_seen"].clone();

    for _ in 0..3 {
        let result = device.submit_one(envelope.clone()).await.unwrap();
        check_outcome(&result, Outcome::Duplicate, "already accepted");
        assert_eq!(result.seq, 2);
    }
    // A batch repeating the same envelope next to a new one.
    let next = creds.sign(&creds.report(3, "ward7-pc01"));
    let results = device.submit(vec![envelope, next.clone(), next]).await.unwrap();
    check_outcome(&results[0], Outcome::Duplicate, "");
    check_outcome(&results[1], Outcome::Accepted, "");
    check_outcome(&results[2], Outcome::Duplicate, "");
    assert_eq!(server.report_counts("ward7-pc01").await, (3, 3));
    assert_ne!(first_seen, serde_json::Value::Null);
}

#[tokio::test]
async fn revoked_device_is_refused() {
    let (_dir, server, machine, device) = enrolled().await;
    let out = server.ctl_run(Role::Engineer, &["device", "revoke", "SN-0001", "--reason", "stolen from ward 7"]).await;
    out.success();
    let shown = server.device_json("ward7-pc01").await;
    assert_eq!(shown["status"], "revoked");
    assert_eq!(shown["revocation"]["reason"], "stolen from ward 7");
    assert_eq!(shown["revocation"]["revoked_by"], "alice-engineer (engineer)");

    // The real agent: exits non-zero and says why; the report stays spooled.
    let out = machine.report().await.failure(&["has been revoked", "not delivered"]);
    assert!(out.stderr.contains("report 2 is spooled"), "{out}");
    // The same certificate, in-process.
    let status = device.submit_one(device.creds.sign(&device.creds.report(2, "ward7-pc01"))).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("revoked"), "{status:?}");

    assert_eq!(server.report_counts("ward7-pc01").await, (1, 1));
    server
        .ctl_run(Role::Admin, &["device", "revoke", "ward7-pc01", "--reason", "again"])
        .await
        .failure(&["already revoked"]);
}
