//! Tests for the terminal and JSON views of an inventory.

use super::*;

fn firmware(vendor: v1::Readable, version: v1::Readable, date: v1::Readable) -> v1::Firmware {
    v1::Firmware { bios_vendor: Some(vendor), bios_version: Some(version), bios_date: Some(date), ..Default::default() }
}

#[test]
fn a_bios_read_in_full_is_vendor_version_and_date() {
    let f =
        firmware(v1::Readable::value("Dell Inc."), v1::Readable::value("1.21.0"), v1::Readable::value("2023-05-11"));
    assert_eq!(bios_text(&f), "Dell Inc. 1.21.0 (2023-05-11)");
}

#[test]
fn a_bios_unreadable_for_one_reason_gives_the_reason_once() {
    let absent = || v1::Readable::unknown("absent");
    assert_eq!(bios_text(&firmware(absent(), absent(), absent())), "unknown (absent)");
    // Different reasons, or one field known, keep all three.
    let f = firmware(v1::Readable::value("Dell Inc."), absent(), absent());
    assert_eq!(bios_text(&f), "Dell Inc. unknown (absent) (unknown (absent))");
    let f = firmware(absent(), v1::Readable::unknown("permission denied (run the agent as root)"), absent());
    assert_eq!(
        bios_text(&f),
        "unknown (absent) unknown (permission denied (run the agent as root)) (unknown (absent))"
    );
}

#[test]
fn an_interface_without_addresses_has_no_trailing_space() {
    let inventory = v1::Inventory {
        hostname: "ward7-pc01".to_owned(),
        network: vec![
            v1::NetworkInterface { name: "ifb0".to_owned(), mac: "5e:ec:02:ea:97:dc".to_owned(), ..Default::default() },
            v1::NetworkInterface {
                name: "eth0".to_owned(),
                mac: String::new(),
                addresses: vec!["10.1.2.3/24".to_owned()],
                up: true,
            },
        ],
        ..Default::default()
    };
    let text = inventory_text(&inventory, "  ");
    let network: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with("network")).collect();
    assert_eq!(network, ["  network       ifb0 5e:ec:02:ea:97:dc down", "  network       eth0 - up 10.1.2.3/24"]);
}

fn volume(filesystem: v1::Readable, state: v1::EncryptionState, determined_by: &str) -> v1::Volume {
    v1::Volume {
        name: "vda".to_owned(),
        filesystem: Some(filesystem),
        encryption: Some(v1::Encryption {
            state: state.into(),
            determined_by: determined_by.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn a_volume_shows_its_filesystem_then_its_encryption() {
    let v = volume(v1::Readable::value("ext4"), v1::EncryptionState::NotEncrypted, "no LUKS header");
    assert_eq!(filesystem_and_encryption_text(&v), "ext4, NOT ENCRYPTED");
}

#[test]
fn a_volume_unreadable_for_one_reason_gives_the_reason_once() {
    let why = "permission denied (run the agent as root) reading /dev/vda";
    let v = volume(
        v1::Readable::unknown(why),
        v1::EncryptionState::Unknown,
        &format!("{why}, and no dm-crypt target above it"),
    );
    assert_eq!(
        filesystem_and_encryption_text(&v),
        format!("filesystem and encryption UNKNOWN ({why}, and no dm-crypt target above it)")
    );
    // Unrelated reasons are both given.
    let v = volume(v1::Readable::unknown("absent"), v1::EncryptionState::Unknown, "cryptsetup failed");
    assert_eq!(filesystem_and_encryption_text(&v), "unknown (absent), UNKNOWN (cryptsetup failed)");
}
