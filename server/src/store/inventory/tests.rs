//! Tests for inventory history in the store: changes are recorded in the
//! report's transaction, and heartbeats are checked against the latest hash.

use custodian_proto::identity::DeviceId;

use super::*;
use crate::store::{CommitOutcome, DeviceKind, DeviceRecord, IncomingReport, StoredEnvelope, TokenRecord};

fn enrolled_store() -> (tempfile::TempDir, Store, DeviceId) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let token = TokenRecord {
        created_at_ms: 0,
        expires_at_ms: i64::MAX,
        created_by: "t".to_owned(),
        site: None,
        used: None,
        asset_tag: None,
        kind: DeviceKind::Workstation,
    };
    store.create_token(&[7; 32], &token).unwrap();
    let device_id = DeviceId::random();
    let device = DeviceRecord::enrolled(device_id, [1; 32], "ward7-pc03", None, 1, i64::MAX);
    store.enroll(&[7; 32], 1, device, None).unwrap();
    (dir, store, device_id)
}

fn report(device_id: DeviceId, seq: u64, content: ReportContent) -> IncomingReport {
    IncomingReport {
        device_id,
        seq,
        envelope: StoredEnvelope {
            payload: seq.to_be_bytes().to_vec(),
            payload_type: "t".to_owned(),
            signature: vec![],
            received_at_ms: 1000 * i64::try_from(seq).unwrap(),
        },
        hostname: "ward7-pc03".to_owned(),
        serial: Some("SER1".to_owned()),
        vendor: None,
        model: None,
        content,
    }
}

fn full(disks: &[&str]) -> ReportContent {
    let inventory = pb::Inventory {
        hostname: "ward7-pc03".to_owned(),
        storage: disks
            .iter()
            .map(|serial| pb::StorageDevice {
                name: "sda".to_owned(),
                serial: Some(pb::Readable::value(*serial)),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let sha256 =
        sha2::Digest::finalize(sha2::Digest::chain_update(sha2::Sha256::default(), inventory.encode_to_vec())).into();
    ReportContent::Inventory { inventory: Box::new(inventory), sha256 }
}

fn sha(content: &ReportContent) -> [u8; 32] {
    match content {
        ReportContent::Inventory { sha256, .. } => *sha256,
        ReportContent::Heartbeat { inventory_sha256 } => *inventory_sha256,
    }
}

#[test]
fn history_is_a_list_of_changes_and_heartbeats_are_checked_against_the_latest_hash() {
    let (_dir, store, device_id) = enrolled_store();
    let first = full(&["DISK-A", "DISK-B"]);
    assert_eq!(store.commit_report(&report(device_id, 1, first.clone())).unwrap(), Ok(CommitOutcome::Accepted));
    // A heartbeat with the latest inventory's hash: nothing to ask for.
    let heartbeat = ReportContent::Heartbeat { inventory_sha256: sha(&first) };
    assert_eq!(store.commit_report(&report(device_id, 2, heartbeat)).unwrap(), Ok(CommitOutcome::Accepted));
    // Disk B leaves the machine.
    let second = full(&["DISK-A"]);
    store.commit_report(&report(device_id, 3, second.clone())).unwrap().unwrap();
    // A heartbeat pointing at the old inventory: the server asks for a full one.
    let stale = ReportContent::Heartbeat { inventory_sha256: sha(&first) };
    assert_eq!(store.commit_report(&report(device_id, 4, stale)).unwrap(), Ok(CommitOutcome::AcceptedWantsInventory));

    let changes = store.inventory_changes(device_id, 10).unwrap();
    let summary: Vec<(u64, i64, &str, bool)> =
        changes.iter().map(|c| (c.seq, c.at_ms, c.change.subject.as_str(), c.change.flag.is_some())).collect();
    assert_eq!(summary, [(3, 3000, "storage DISK-B", true), (1, 1000, "inventory", false)]);
    let latest = store.latest_inventory(device_id).unwrap().unwrap();
    assert_eq!((latest.seq, latest.sha256), (3, sha(&second)));
    // Heartbeats count as check-ins but do not touch the identity fields.
    let device = store.device(device_id).unwrap().unwrap();
    assert_eq!((device.last_seq, device.last_seen_ms, device.n_reports), (4, Some(4000), 4));
}

#[test]
fn a_heartbeat_before_any_inventory_asks_for_one() {
    let (_dir, store, device_id) = enrolled_store();
    let heartbeat = ReportContent::Heartbeat { inventory_sha256: [0; 32] };
    assert_eq!(
        store.commit_report(&report(device_id, 1, heartbeat)).unwrap(),
        Ok(CommitOutcome::AcceptedWantsInventory)
    );
    assert_eq!(store.latest_inventory(device_id).unwrap(), None);
    assert_eq!(store.device(device_id).unwrap().unwrap().serial, None, "a heartbeat sets no serial");
}

/// The stored `inventory_latest` record, as written (not as
/// `latest_inventory` completes it from the device record).
fn stored_latest(store: &Store, device_id: DeviceId) -> LatestInventoryV1 {
    let bytes = store.inventory_latest.get(device_id.as_bytes()).unwrap().unwrap();
    let VersionedLatest::V1(latest) = decode::<VersionedLatest>("inventory_latest", &bytes).unwrap();
    latest
}

#[test]
fn an_unchanged_inventory_is_not_rewritten_but_is_the_latest_report_that_carried_it() {
    let (_dir, store, device_id) = enrolled_store();
    let inventory = full(&["DISK-A"]);
    for seq in 1..=3 {
        assert_eq!(
            store.commit_report(&report(device_id, seq, inventory.clone())).unwrap(),
            Ok(CommitOutcome::Accepted)
        );
    }
    // Written once, by the report that first carried these bytes.
    assert_eq!((stored_latest(&store, device_id).seq, stored_latest(&store, device_id).received_at_ms), (1, 1000));
    // What callers see is the latest report that carried it.
    let latest = store.latest_inventory(device_id).unwrap().unwrap();
    assert_eq!((latest.seq, latest.received_at_ms, latest.sha256), (3, 3000, sha(&inventory)));
    assert_eq!(store.inventory_changes(device_id, 10).unwrap().len(), 1, "only the first inventory is a change");
    let verdict = store.device(device_id).unwrap().unwrap().inventory_verdict.unwrap();
    assert_eq!((verdict.seq, verdict.received_at_ms, verdict.sha256), (3, 3000, Some(sha(&inventory))));

    // A heartbeat is checked against the device record's hash; a changed
    // inventory is diffed against the stored one and rewrites it.
    let heartbeat = ReportContent::Heartbeat { inventory_sha256: sha(&inventory) };
    assert_eq!(store.commit_report(&report(device_id, 4, heartbeat)).unwrap(), Ok(CommitOutcome::Accepted));
    let changed = full(&["DISK-A", "DISK-B"]);
    store.commit_report(&report(device_id, 5, changed.clone())).unwrap().unwrap();
    assert_eq!((stored_latest(&store, device_id).seq, stored_latest(&store, device_id).sha256), (5, sha(&changed)));
    let subjects: Vec<String> =
        store.inventory_changes(device_id, 10).unwrap().into_iter().map(|c| c.change.subject).collect();
    assert_eq!(subjects, ["storage DISK-B", "inventory"]);
    let stale = ReportContent::Heartbeat { inventory_sha256: sha(&inventory) };
    assert_eq!(store.commit_report(&report(device_id, 6, stale)).unwrap(), Ok(CommitOutcome::AcceptedWantsInventory));
}

#[test]
fn a_device_record_without_the_inventory_hash_falls_back_to_the_stored_inventory() {
    let (_dir, store, device_id) = enrolled_store();
    let inventory = full(&["DISK-A"]);
    store.commit_report(&report(device_id, 1, inventory.clone())).unwrap().unwrap();
    // As a record written before the verdict kept the report and hash.
    let mut device = store.device(device_id).unwrap().unwrap();
    let verdict = device.inventory_verdict.as_mut().unwrap();
    verdict.seq = 0;
    verdict.sha256 = None;
    store.devices.insert(device_id.as_bytes(), encode(&crate::store::records::VersionedDevice::V1(device))).unwrap();

    let heartbeat = ReportContent::Heartbeat { inventory_sha256: sha(&inventory) };
    assert_eq!(store.commit_report(&report(device_id, 2, heartbeat)).unwrap(), Ok(CommitOutcome::Accepted));
    let other = ReportContent::Heartbeat { inventory_sha256: [9; 32] };
    assert_eq!(store.commit_report(&report(device_id, 3, other)).unwrap(), Ok(CommitOutcome::AcceptedWantsInventory));
    // The next full inventory is compared with the stored one, unchanged,
    // and the record keeps the hash from then on.
    store.commit_report(&report(device_id, 4, inventory.clone())).unwrap().unwrap();
    assert_eq!(store.inventory_changes(device_id, 10).unwrap().len(), 1);
    let verdict = store.device(device_id).unwrap().unwrap().inventory_verdict.unwrap();
    assert_eq!((verdict.seq, verdict.sha256), (4, Some(sha(&inventory))));
    assert_eq!(store.latest_inventory(device_id).unwrap().unwrap().seq, 4);
}
