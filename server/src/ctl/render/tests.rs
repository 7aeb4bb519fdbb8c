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
