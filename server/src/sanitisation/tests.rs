//! Sanitisation coverage tests.

use super::*;

fn readable(value: &str) -> Option<pb::Readable> {
    Some(pb::Readable { state: Some(pb::readable::State::Value(value.to_owned())) })
}

fn disk(name: &str, serial: Option<&str>, removable: bool) -> pb::StorageDevice {
    pb::StorageDevice { name: name.to_owned(), serial: serial.and_then(readable), removable, ..Default::default() }
}

#[test]
fn every_fixed_disk_must_be_covered() {
    let inventory = pb::Inventory {
        storage: vec![
            disk("sda", Some("S1"), false),
            disk("nvme0n1", None, false),
            disk("sdb", Some("USB1"), true),
            disk("sdc", Some("S3"), false),
        ],
        ..Default::default()
    };
    let none = sanitisation_coverage(&inventory, &SanitisationEvidence::default());
    assert_eq!(none.uncovered, ["sda (serial S1)", "nvme0n1 (serial unreadable)", "sdc (serial S3)"]);
    assert!(none.covered.is_empty());
    let evidence = SanitisationEvidence {
        wiped_serials: ["S1".to_owned()].into(),
        destroyed_serials: ["S3".to_owned()].into(),
        not_counted: BTreeMap::new(),
    };
    let some = sanitisation_coverage(&inventory, &evidence);
    assert_eq!(some.covered, ["sda (serial S1)", "sdc (serial S3)"]);
    assert_eq!(some.uncovered, ["nvme0n1 (serial unreadable)"]);
}

#[test]
fn evidence_that_does_not_count_is_named_with_its_reason() {
    let inventory = pb::Inventory { storage: vec![disk("sda", Some("S1"), false)], ..Default::default() };
    let evidence = SanitisationEvidence {
        not_counted: [("S1".to_owned(), "its passing wipe is from before the machine was retired".to_owned())].into(),
        ..Default::default()
    };
    let coverage = sanitisation_coverage(&inventory, &evidence);
    assert_eq!(coverage.uncovered, ["sda (serial S1: its passing wipe is from before the machine was retired)"]);
}
