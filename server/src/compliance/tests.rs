//! Tests for the compliance rule.

use super::*;

fn volume(name: &str, holds_data: bool, state: pb::EncryptionState) -> pb::Volume {
    pb::Volume {
        name: name.to_owned(),
        holds_data,
        encryption: Some(pb::Encryption { state: state.into(), ..Default::default() }),
        ..Default::default()
    }
}

fn inventory(volumes: Vec<pb::Volume>) -> pb::Inventory {
    pb::Inventory {
        storage: vec![pb::StorageDevice { name: "sda".to_owned(), volumes, ..Default::default() }],
        ..Default::default()
    }
}

#[track_caller]
fn check(volumes: Vec<pb::Volume>, expect: Compliance) {
    assert_eq!(encryption_compliance(&inventory(volumes)), expect);
}

#[test]
fn compliance_table() {
    use pb::EncryptionState::{Encrypted, NotEncrypted, Unknown};
    check(vec![volume("sda2", true, Encrypted), volume("sda3", true, Encrypted)], Compliance::Compliant);
    // A volume that holds no data (an EFI partition) does not count.
    check(vec![volume("sda1", false, NotEncrypted), volume("sda2", true, Encrypted)], Compliance::Compliant);
    check(
        vec![volume("sda2", true, Encrypted), volume("sda3", true, NotEncrypted)],
        Compliance::NonCompliant { volumes: vec!["sda3 (sda)".to_owned()] },
    );
    // Unknown is not compliant.
    check(vec![volume("sda2", true, Unknown)], Compliance::NonCompliant { volumes: vec!["sda2 (sda)".to_owned()] });
    // A filesystem on the whole disk is named once.
    check(vec![volume("sda", true, Unknown)], Compliance::NonCompliant { volumes: vec!["sda".to_owned()] });
    check(
        vec![volume("sda1", false, NotEncrypted)],
        Compliance::Unknown { reason: "the report lists no fixed data volumes".to_owned() },
    );
}
