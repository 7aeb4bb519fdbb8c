//! Verification of wipe attestations: signature first, then content.

use custodian_proto::envelope::{self, REPORT_PAYLOAD_TYPE, WIPE_ATTESTATION_PAYLOAD_TYPE};
use custodian_proto::identity::DeviceId;
use custodian_proto::v1 as pb;
use ed25519_dalek::SigningKey;
use prost::Message;

use super::*;

fn device(kind: DeviceKind, key: &SigningKey) -> DeviceRecord {
    DeviceRecord {
        kind,
        ..DeviceRecord::enrolled(DeviceId::random(), key.verifying_key().to_bytes(), "pc", None, 1, i64::MAX)
    }
}

fn attestation(device: &DeviceRecord) -> pb::WipeAttestation {
    pb::WipeAttestation {
        device_id: device.device_id.to_string(),
        seq: 5,
        disk: Some(pb::WipedDisk {
            model: "ACME SSD".to_owned(),
            serial: "S123".to_owned(),
            wwn: String::new(),
            apparent_size_bytes: 1 << 30,
            native_size_bytes: 1 << 30,
            hidden_area: "not checked".to_owned(),
        }),
        method: pb::WipeMethod::ClearZero.into(),
        passes: 1,
        pattern: "zero".to_owned(),
        seed: Vec::new(),
        verification: Some(pb::WipeVerification {
            mode: pb::VerifyMode::Full.into(),
            sample_percent: 0,
            block_size: 1 << 20,
            blocks_total: 1024,
            blocks_checked: 1024,
        }),
        result: Some(pb::WipeResult { outcome: pb::WipeOutcome::Passed.into(), ..Default::default() }),
        started_at_ms: 1000,
        finished_at_ms: 2000,
        tool_version: "0.1.0".to_owned(),
        tool_sha256: "00".repeat(32),
        operator: "alice".to_owned(),
        source_device_id: device.device_id.to_string(),
        device_path: "/dev/sda".to_owned(),
    }
}

fn sign(key: &SigningKey, att: &pb::WipeAttestation) -> pb::SignedEnvelope {
    envelope::sign(key, WIPE_ATTESTATION_PAYLOAD_TYPE, att.encode_to_vec())
}

fn check(
    key: &SigningKey,
    device: &DeviceRecord,
    envelope: pb::SignedEnvelope,
) -> Result<IncomingAttestation, VerifyAttestationError> {
    verify_attestation(&key.verifying_key(), device, envelope, 10_000)
}

#[test]
fn a_well_formed_attestation_verifies_and_is_stored_verbatim() {
    let key = SigningKey::from_bytes(&[1; 32]);
    let pc = device(DeviceKind::Workstation, &key);
    let env = sign(&key, &attestation(&pc));
    let incoming = check(&key, &pc, env.clone()).unwrap();
    assert_eq!(incoming.seq, 5);
    assert_eq!(incoming.disk_serial, "S123");
    assert_eq!(incoming.source_device, Some(pc.device_id));
    assert!(incoming.passed);
    assert_eq!(incoming.envelope.payload, env.payload);
    assert_eq!(incoming.envelope.signature, env.signature);
}

#[test]
fn altered_bytes_another_devices_key_or_the_report_type_are_refused() {
    let key = SigningKey::from_bytes(&[1; 32]);
    let pc = device(DeviceKind::Workstation, &key);
    let mut env = sign(&key, &attestation(&pc));
    // Flip the verdict byte by byte: any change breaks the signature.
    let last = env.payload.len() - 1;
    env.payload[last] ^= 1;
    assert!(matches!(
        check(&key, &pc, env).unwrap_err(),
        VerifyAttestationError::Envelope(VerifyEnvelopeError::BadSignature)
    ));
    // Signed by another device's key, sent under this device's identity.
    let other = SigningKey::from_bytes(&[2; 32]);
    let env = sign(&other, &attestation(&pc));
    assert!(matches!(
        check(&key, &pc, env).unwrap_err(),
        VerifyAttestationError::Envelope(VerifyEnvelopeError::BadSignature)
    ));
    // The same bytes signed as a report do not pass as an attestation.
    let env = envelope::sign(&key, REPORT_PAYLOAD_TYPE, attestation(&pc).encode_to_vec());
    assert!(matches!(
        check(&key, &pc, env).unwrap_err(),
        VerifyAttestationError::Envelope(VerifyEnvelopeError::WrongPayloadType { .. })
    ));
    // Relabelled as an attestation after being signed as a report.
    let mut env = envelope::sign(&key, REPORT_PAYLOAD_TYPE, attestation(&pc).encode_to_vec());
    env.payload_type = WIPE_ATTESTATION_PAYLOAD_TYPE.to_owned();
    assert!(matches!(
        check(&key, &pc, env).unwrap_err(),
        VerifyAttestationError::Envelope(VerifyEnvelopeError::BadSignature)
    ));
}

#[track_caller]
fn check_invalid(kind: DeviceKind, change: impl Fn(&mut pb::WipeAttestation), expect: &str) {
    let key = SigningKey::from_bytes(&[3; 32]);
    let pc = device(kind, &key);
    let mut att = attestation(&pc);
    change(&mut att);
    let err = check(&key, &pc, sign(&key, &att)).unwrap_err();
    assert!(err.to_string().contains(expect), "{err} does not say {expect:?}");
}

#[test]
fn malformed_content_is_refused_with_the_reason() {
    let ws = DeviceKind::Workstation;
    check_invalid(ws, |a| a.device_id = DeviceId::random().to_string(), "names device");
    check_invalid(ws, |a| a.seq = 0, "sequence number");
    check_invalid(ws, |a| a.disk = None, "no disk");
    check_invalid(ws, |a| a.disk.as_mut().unwrap().apparent_size_bytes = 0, "size is 0");
    check_invalid(ws, |a| a.disk.as_mut().unwrap().native_size_bytes = 1, "native size");
    check_invalid(ws, |a| a.method = 0, "unknown method");
    check_invalid(ws, |a| a.method = 99, "unknown method");
    check_invalid(ws, |a| a.finished_at_ms = 999, "times out of order");
    check_invalid(ws, |a| a.seed = vec![1; 7], "seed is 7 bytes");
    check_invalid(ws, |a| a.result = None, "no result");
    check_invalid(ws, |a| a.verification.as_mut().unwrap().blocks_checked = 2000, "more blocks checked");
    check_invalid(ws, |a| a.verification.as_mut().unwrap().mode = pb::VerifyMode::None.into(), "how it was verified");
    check_invalid(ws, |a| a.source_device_id = DeviceId::random().to_string(), "only to its own disks");
    // A passed wipe that did not reach the whole disk.
    let hidden = |a: &mut pb::WipeAttestation| {
        let disk = a.disk.as_mut().unwrap();
        disk.native_size_bytes = disk.apparent_size_bytes + (8 << 20);
        disk.hidden_area = "HPA enabled".to_owned();
    };
    check_invalid(ws, hidden, "8388608 bytes beyond its apparent size (a hidden area: HPA enabled) were not written");
    let short = |a: &mut pb::WipeAttestation| {
        let v = a.verification.as_mut().unwrap();
        (v.blocks_total, v.blocks_checked) = (512, 512);
    };
    check_invalid(ws, short, "spans 536870912 bytes (512 blocks of 1048576), less than the disk's 1073741824");
    check_invalid(ws, |a| a.verification.as_mut().unwrap().blocks_checked = 1, "checked 1 of 1024");
    // The same shortfalls in a wipe that failed are recorded as they are.
    let key = SigningKey::from_bytes(&[5; 32]);
    let pc = device(ws, &key);
    let mut failed = attestation(&pc);
    hidden(&mut failed);
    failed.verification.as_mut().unwrap().blocks_checked = 1;
    failed.result = Some(pb::WipeResult { outcome: pb::WipeOutcome::Failed.into(), ..Default::default() });
    assert!(!check(&key, &pc, sign(&key, &failed)).unwrap().passed);
    // A station's attestation needs no source; it is matched by serial.
    let key = SigningKey::from_bytes(&[4; 32]);
    let station = device(DeviceKind::WipeStation, &key);
    let mut att = attestation(&station);
    att.source_device_id = String::new();
    assert_eq!(check(&key, &station, sign(&key, &att)).unwrap().source_device, None);
}
