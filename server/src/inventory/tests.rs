//! Tests for inventory diffs.

use super::*;

fn disk(name: &str, serial: &str, volumes: Vec<pb::Volume>) -> pb::StorageDevice {
    pb::StorageDevice {
        name: name.to_owned(),
        serial: Some(pb::Readable::value(serial)),
        model: Some(pb::Readable::value("Disk")),
        size_bytes: 512 << 30,
        transport: "sata".to_owned(),
        volumes,
        ..Default::default()
    }
}

fn volume(name: &str, state: pb::EncryptionState) -> pb::Volume {
    pb::Volume {
        name: name.to_owned(),
        size_bytes: 100 << 30,
        holds_data: true,
        filesystem: Some(pb::Readable::value("ext4")),
        encryption: Some(pb::Encryption {
            state: state.into(),
            scheme: if state == pb::EncryptionState::Encrypted {
                pb::EncryptionScheme::Luks2
            } else {
                pb::EncryptionScheme::None
            }
            .into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn inventory(storage: Vec<pb::StorageDevice>) -> pb::Inventory {
    pb::Inventory { hostname: "ward7-pc03".to_owned(), storage, ..Default::default() }
}

/// Changes as `kind subject: before -> after [flag]` lines.
fn render(changes: &[Change]) -> String {
    changes
        .iter()
        .map(|c| {
            format!(
                "{:?} {}: {} -> {}{}\n",
                c.kind,
                c.subject,
                c.before.as_deref().unwrap_or("-"),
                c.after.as_deref().unwrap_or("-"),
                c.flag.as_ref().map(|f| format!(" [{f}]")).unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn a_disk_that_disappears_is_flagged_and_a_new_one_is_recorded() {
    use pb::EncryptionState::Encrypted;
    let old = inventory(vec![disk("sda", "S1", vec![volume("sda1", Encrypted)]), disk("sdb", "S2", vec![])]);
    let new = inventory(vec![disk("sda", "S1", vec![volume("sda1", Encrypted)]), disk("sdc", "S3", vec![])]);
    expect_test::expect![[r#"
        Removed storage S2: sdb Disk 512.0 GiB sata -> - [a storage device disappeared from the machine]
        Added storage S3: - -> sdc Disk 512.0 GiB sata
    "#]]
    .assert_eq(&render(&diff(&old, &new)));
    // A USB stick being unplugged is recorded, not flagged.
    let mut with_stick = old.clone();
    with_stick.storage.push(pb::StorageDevice { removable: true, ..disk("sdd", "STICK", vec![]) });
    expect_test::expect![[r#"
        Removed storage STICK: sdd Disk 512.0 GiB sata removable -> -
    "#]]
    .assert_eq(&render(&diff(&with_stick, &old)));
}

#[test]
fn a_volume_that_stops_being_encrypted_is_flagged() {
    use pb::EncryptionState::{Encrypted, NotEncrypted};
    let old = inventory(vec![disk("sda", "S1", vec![volume("sda1", Encrypted), volume("sda2", NotEncrypted)])]);
    let new = inventory(vec![disk("sda", "S1", vec![volume("sda1", NotEncrypted), volume("sda2", Encrypted)])]);
    expect_test::expect![[r#"
        Changed storage S1 volume sda1 encryption: encrypted (LUKS2) -> NOT ENCRYPTED [a volume is no longer encrypted]
        Changed storage S1 volume sda2 encryption: NOT ENCRYPTED -> encrypted (LUKS2)
    "#]]
    .assert_eq(&render(&diff(&old, &new)));
}

#[test]
fn a_renamed_disk_keeps_its_identity_by_serial_and_facts_of_removed_things_are_not_repeated() {
    let old = inventory(vec![disk("sda", "S1", vec![volume("sda1", pb::EncryptionState::Encrypted)])]);
    let mut new = old.clone();
    new.storage[0].name = "sdb".to_owned();
    new.storage[0].volumes.clear();
    new.hostname = "ward7-pc04".to_owned();
    expect_test::expect![[r#"
        Removed storage S1 volume sda1: 100.0 GiB ext4 -> -
        Changed hostname: ward7-pc03 -> ward7-pc04
    "#]]
    .assert_eq(&render(&diff(&old, &new)));
    assert!(diff(&old, &old).is_empty());
}
