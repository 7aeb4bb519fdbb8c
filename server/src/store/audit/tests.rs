//! Audit storage tests: appends inside other changes' transactions, the
//! stored frontier, per-device history.

use custodian_proto::identity::DeviceId;

use super::*;
use crate::audit::event::EventKind;
use crate::audit::merkle::root;

#[test]
fn state_round_trips_and_damage_is_refused() {
    let mut frontier = Frontier::default();
    for i in 0u32..13 {
        frontier.push(leaf_hash(&i.to_be_bytes()));
        let bytes = encode_state(&frontier);
        assert_eq!(decode_state(&bytes).unwrap(), frontier);
    }
    let bytes = encode_state(&frontier);
    assert!(decode_state(&bytes[..bytes.len() - 1]).is_err());
    assert!(decode_state(&[2]).is_err());
}

#[test]
fn events_append_in_order_with_recorded_hashes_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let device_id = DeviceId::random();
    for i in 0..10 {
        let device = (i % 3 == 0).then_some(device_id);
        let event = AuditEvent::new(i, "alice (admin)", EventKind::NoteAdded, device).with_reason(format!("n{i}"));
        assert_eq!(store.record_event(event).unwrap(), i as u64);
    }
    let entries = store.audit_entries(0, 100).unwrap();
    assert_eq!(entries.len(), 10);
    let hashes: Vec<Hash> = entries.iter().map(|e| leaf_hash(&e.bytes)).collect();
    assert_eq!(hashes, store.audit_leaf_hashes(10).unwrap());
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry.seq, i as u64);
        assert_eq!(AuditEvent::from_bytes(&entry.bytes).unwrap().seq, i as u64);
    }
    let head = store.audit_head().unwrap();
    assert_eq!(head.size, 10);
    assert_eq!(head.root(), root(&hashes));
    let history: Vec<u64> = store.device_events(device_id).unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(history, [9, 6, 3, 0]);
}

#[test]
fn a_refused_change_writes_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let row = crate::store::NewDevice {
        line: Some(2),
        serial: "S1".to_owned(),
        asset_tag: "T1".to_owned(),
        model: "M".to_owned(),
        supplier: None,
        order_ref: None,
        site: None,
        state: crate::lifecycle::LifecycleState::Ordered,
    };
    store.add_devices(std::slice::from_ref(&row), "eve (engineer)", 1, "test").unwrap().unwrap();
    assert_eq!(store.audit_head().unwrap().size, 1);
    let good =
        crate::store::NewDevice { line: Some(2), serial: "S2".to_owned(), asset_tag: "T2".to_owned(), ..row.clone() };
    let bad = crate::store::NewDevice { line: Some(3), serial: "S3".to_owned(), ..row };
    let err = store.add_devices(&[good, bad], "eve (engineer)", 1, "test").unwrap().unwrap_err();
    assert_eq!(err.problems, [(Some(3), "a device with asset tag T1 is already registered".to_owned())]);
    assert_eq!(store.audit_head().unwrap().size, 1, "nothing from the file was applied");
    assert_eq!(store.list_devices().unwrap().len(), 1);
}
