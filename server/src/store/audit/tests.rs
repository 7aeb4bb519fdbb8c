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

/// Appends `n` notes in one transaction, through one appender.
fn append_group(store: &Store, n: usize, device: Option<DeviceId>) {
    store
        .audit
        .transaction(|audit| {
            let mut log = Appender::load(audit)?;
            for i in 0..n {
                let event = AuditEvent::new(i as i64, "alice (admin)", EventKind::NoteAdded, device)
                    .with_reason(format!("group note {i}"));
                log.append(audit, event)?;
            }
            log.store(audit)?;
            Ok(())
        })
        .map_err(crate::store::flatten_tx_error)
        .unwrap();
}

#[test]
fn events_from_single_records_and_groups_read_back_in_order() {
    // A store written before group records: five events as `e` records,
    // written the old way, then groups of 1, 3 and 300 events (the last
    // split at MAX_EVENTS_PER_GROUP).
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let device_id = DeviceId::random();
    let mut frontier = Frontier::default();
    for i in 0..5u64 {
        let mut event = AuditEvent::new(i as i64, "bob (admin)", EventKind::NoteAdded, Some(device_id));
        event.seq = i;
        let bytes = event.to_bytes();
        let hash = leaf_hash(&bytes);
        store.audit.insert(event_key(i), [hash.as_slice(), &bytes].concat()).unwrap();
        store.audit.insert(device_key(device_id, i), &[]).unwrap();
        frontier.push(hash);
    }
    store.audit.insert(STATE_KEY, encode_state(&frontier)).unwrap();
    append_group(&store, 1, Some(device_id));
    append_group(&store, 3, None);
    append_group(&store, 300, Some(device_id));
    let groups = store.audit.scan_prefix([GROUP_TAG]).count();
    assert_eq!(groups, 2 + 300usize.div_ceil(MAX_EVENTS_PER_GROUP), "groups of 1 and 3, then 300 split");
    const { assert!(MAX_EVENTS_PER_GROUP < 300, "the test splits a group") };

    let all = store.audit_entries(0, 1000).unwrap();
    assert_eq!(all.len(), 309);
    for (i, entry) in all.iter().enumerate() {
        assert_eq!(entry.seq, i as u64);
        assert_eq!(AuditEvent::from_bytes(&entry.bytes).unwrap().seq, i as u64, "event {i} stored under its seq");
        assert_eq!(entry.leaf_hash, leaf_hash(&entry.bytes));
        assert_eq!(store.audit_entry(i as u64).unwrap().as_ref(), Some(entry));
    }
    assert_eq!(store.audit_entry(309).unwrap(), None);
    for (from, limit) in [(0, 3), (3, 4), (5, 1), (7, 2), (8, 256), (264, 1000), (308, 5), (309, 5)] {
        let got: Vec<u64> = store.audit_entries(from, limit).unwrap().iter().map(|e| e.seq).collect();
        let want: Vec<u64> = (from..309).take(limit).collect();
        assert_eq!(got, want, "from {from}, limit {limit}");
    }
    let hashes = store.audit_leaf_hashes(309).unwrap();
    assert_eq!(hashes, all.iter().map(|e| e.leaf_hash).collect::<Vec<_>>());
    assert_eq!(store.audit_head().unwrap().root(), root(&hashes));
    let history = store.device_events(device_id).unwrap();
    let want: Vec<u64> = (9..309).rev().chain([5, 4, 3, 2, 1, 0]).collect();
    assert_eq!(history.iter().map(|e| e.seq).collect::<Vec<_>>(), want);
}

#[test]
fn a_damaged_group_record_is_an_error_not_a_shorter_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    append_group(&store, 3, None);
    let value = store.audit.get(group_key(0)).unwrap().unwrap();
    store.audit.insert(group_key(0), &value[..value.len() - 1]).unwrap();
    assert!(matches!(store.audit_entries(0, 10), Err(StoreError::Decode { .. })));
    assert!(matches!(store.audit_entry(1), Err(StoreError::Decode { .. })));
    store.audit.insert(group_key(0), vec![9u8]).unwrap();
    assert!(matches!(store.audit_leaf_hashes(3), Err(StoreError::Decode { .. })));
}

#[test]
fn a_devices_history_includes_report_events_named_by_report_records() {
    use crate::store::test_support::{enroll, report_with_disks, temp_store};
    let (_dir, store) = temp_store();
    let pc = enroll(&store, "ward-pc", crate::store::DeviceKind::Workstation);
    let other = enroll(&store, "other-pc", crate::store::DeviceKind::Workstation);
    for seq in 1..=3 {
        store.commit_report(&report_with_disks(pc, seq, &["S1"])).unwrap().unwrap();
        store.commit_report(&report_with_disks(other, seq, &["S9"])).unwrap().unwrap();
    }
    let kinds = |events: &[AuditEntry]| -> Vec<(u64, EventKind, Option<String>)> {
        events
            .iter()
            .map(|e| {
                let event = AuditEvent::from_bytes(&e.bytes).unwrap();
                (e.seq, event.kind, event.details.get("report_seq").cloned())
            })
            .collect()
    };
    let history = kinds(&store.device_events(pc).unwrap());
    let reports: Vec<_> = history.iter().filter(|(_, kind, _)| *kind == EventKind::ReportAccepted).collect();
    assert_eq!(
        reports.iter().map(|(_, _, seq)| seq.clone().unwrap()).collect::<Vec<_>>(),
        ["3", "2", "1"],
        "{history:?}"
    );
    assert!(history.windows(2).all(|w| w[0].0 > w[1].0), "newest first: {history:?}");
    assert!(history.iter().all(|(seq, ..)| {
        AuditEvent::from_bytes(&store.audit_entry(*seq).unwrap().unwrap().bytes).unwrap().device_id == Some(pc)
    }));
    // No history index entry was written for a report event.
    let mut prefix = vec![DEVICE_TAG];
    prefix.extend_from_slice(pc.as_bytes());
    let indexed: Vec<u64> = store
        .audit
        .scan_prefix(&prefix)
        .map(|item| u64::from_be_bytes(item.unwrap().0[17..].try_into().unwrap()))
        .collect();
    assert!(reports.iter().all(|(seq, ..)| !indexed.contains(seq)), "{indexed:?}");

    // The three earlier forms, from before `report_groups`, of a record per
    // report in `reports`: after 0xC2, the audit seq and a pointer into the
    // envelope log; the envelope's encoding alone (with an index entry for
    // its event instead); and after 0xC1, the audit seq and the encoding.
    // All still read, and each event is listed once.
    let audit_seq = |report_seq: &str| {
        let found = history
            .iter()
            .find(|(_, kind, seq)| *kind == EventKind::ReportAccepted && seq.as_deref() == Some(report_seq));
        found.unwrap().0
    };
    let before: Vec<(u64, crate::store::StoredEnvelope)> =
        (1..=3).map(|seq| (seq, store.report(pc, seq).unwrap().unwrap())).collect();
    let encoded = |seq: u64| {
        crate::store::encode(&crate::store::records::VersionedEnvelope::V1(before[seq as usize - 1].1.clone()))
    };
    let pointer = store.envelopes.append_durable(&[encoded(1).as_slice()]).unwrap()[0];
    let in_log = crate::store::report_record(audit_seq("1"), pointer);
    let (plain, with_seq) = (encoded(2), [[0xC1].as_slice(), &audit_seq("3").to_be_bytes(), &encoded(3)].concat());
    store.reports.insert(crate::store::report_key(pc, 1), in_log).unwrap();
    store.reports.insert(crate::store::report_key(pc, 2), plain.as_slice()).unwrap();
    store.audit.insert(device_key(pc, audit_seq("2")), &[]).unwrap();
    store.reports.insert(crate::store::report_key(pc, 3), with_seq).unwrap();
    let mut device = store.device(pc).unwrap().unwrap();
    device.last_report = None;
    store
        .devices
        .insert(pc.as_bytes(), crate::store::encode(&crate::store::records::VersionedDevice::V1(device)))
        .unwrap();
    assert_eq!(crate::store::report_record_audit_seq(&plain).unwrap(), None);
    for (seq, envelope) in &before {
        assert_eq!(store.report(pc, *seq).unwrap().as_ref(), Some(envelope));
    }
    assert_eq!(store.reports(pc).unwrap(), before);
    assert_eq!(kinds(&store.device_events(pc).unwrap()), history);
}
