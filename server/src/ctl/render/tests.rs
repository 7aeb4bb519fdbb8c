//! Tests for `device show` as text and JSON.

use custodian_proto::envelope::{generate_key, sign};
use prost::Message;

use super::*;

fn report(hostname: &str) -> pb::Report {
    pb::Report {
        seq: 3,
        inventory: Some(pb::Inventory { hostname: hostname.to_owned(), ..Default::default() }),
        ..Default::default()
    }
}

/// A device whose latest report was signed for `signed_hostname`, as a
/// server sends it with its decoded copy naming `server_hostname`.
fn response(signed_hostname: &str, server_hostname: &str) -> pb::GetDeviceResponse {
    let key = generate_key();
    pb::GetDeviceResponse {
        device: Some(pb::DeviceSummary {
            device_id: "48a10939-fa29-45f4-85e0-aa99fc881269".to_owned(),
            public_key_hex: hex::encode(key.verifying_key().to_bytes()),
            last_seq: 3,
            ..Default::default()
        }),
        latest_envelope: Some(sign(&key, REPORT_PAYLOAD_TYPE, report(signed_hostname).encode_to_vec())),
        latest_report: Some(report(server_hostname)),
        disks: vec![pb::DiskWipeStatus {
            name: "sda".to_owned(),
            model: "Samsung SSD 870".to_owned(),
            size_bytes: 500_107_862_016,
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn device_show_gives_the_inventory_the_device_signed() {
    let text = render_device(&response("ward7-pc01", "ward7-pc01"));
    assert!(text.contains("  hostname      ward7-pc01\n"), "{text}");
    assert!(text.contains("  signature     verified by custodianctl against the enrolled key\n"), "{text}");

    let text = render_device(&response("ward7-pc01", "forged-by-server"));
    assert!(text.contains("  hostname      ward7-pc01\n"), "{text}");
    assert!(!text.contains("forged-by-server"), "{text}");
    assert!(text.contains("THE SERVER'S DECODED COPY DIFFERS"), "{text}");

    let json: Value = serde_json::from_str(&render_device_json(&response("ward7-pc01", "forged-by-server"))).unwrap();
    assert_eq!(json["latest_report"]["inventory"]["hostname"], "ward7-pc01");
    assert_eq!(json["latest_report"]["signature_verified"], true);
    assert_eq!(json["latest_report"]["server_copy_matches_signed"], false);
}

#[test]
fn a_disk_without_attestations_is_shown_not_wiped_with_its_size() {
    let text = render_device(&response("ward7-pc01", "ward7-pc01"));
    assert!(
        text.contains(
            "Disks (wipe status)\n  sda: serial unknown, model Samsung SSD 870, 465.8 GiB (500107862016 bytes)\n    \
             NOT wiped: no attestation\n"
        ),
        "{text}"
    );
}

/// A disk line whose passing wipe, as the server gives it, is signed over
/// `signed_serial` with `outcome`.
fn disk_with_wipe(signed_serial: &str, outcome: pb::WipeOutcome) -> pb::DiskWipeStatus {
    let key = generate_key();
    let attestation = pb::WipeAttestation {
        seq: 4,
        disk: Some(pb::WipedDisk { serial: signed_serial.to_owned(), ..Default::default() }),
        method: pb::WipeMethod::ClearZero.into(),
        result: Some(pb::WipeResult { outcome: outcome.into(), ..Default::default() }),
        ..Default::default()
    };
    let envelope = sign(&key, custodian_proto::envelope::WIPE_ATTESTATION_PAYLOAD_TYPE, attestation.encode_to_vec());
    let stored = pb::StoredAttestation {
        envelope: Some(envelope),
        attestation: Some(attestation),
        signer_public_key_hex: hex::encode(key.verifying_key().to_bytes()),
        ..Default::default()
    };
    pb::DiskWipeStatus {
        name: "sda".to_owned(),
        serial: "S3Z9NB0K123456".to_owned(),
        passed: Some(stored.clone()),
        latest: Some(stored),
        ..Default::default()
    }
}

#[test]
fn a_disk_is_shown_wiped_only_when_the_signed_attestation_says_so() {
    let show = |disk| render_device(&pb::GetDeviceResponse { disks: vec![disk], ..response("pc", "pc") });
    let text = show(disk_with_wipe("s3z9nb0k123456 ", pb::WipeOutcome::Passed));
    assert!(text.contains("    wiped: clear-zero"), "{text}");
    // The server put another disk's attestation under this one.
    let text = show(disk_with_wipe("WD-OTHER-1", pb::WipeOutcome::Passed));
    assert!(
        text.contains(
            "NOT wiped as far as custodianctl can tell: the attestation given for it is of disk \"WD-OTHER-1\""
        ),
        "{text}"
    );
    // The server calls it passed; what the machine signed says otherwise.
    let text = show(disk_with_wipe("S3Z9NB0K123456", pb::WipeOutcome::Failed));
    assert!(text.contains("NOT wiped as far as custodianctl can tell: the signed attestation says FAILED"), "{text}");
    let json: Value = serde_json::from_str(&render_device_json(&pb::GetDeviceResponse {
        disks: vec![disk_with_wipe("WD-OTHER-1", pb::WipeOutcome::Passed)],
        ..response("pc", "pc")
    }))
    .unwrap();
    assert_eq!(json["disks"][0]["wiped"], false);
}
