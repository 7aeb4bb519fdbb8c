//! Register, facet index and transition tests.

use super::*;
use crate::store::NewDevice;

fn row(i: u32, state: LifecycleState, site: &str, model: &str) -> NewDevice {
    NewDevice {
        line: None,
        serial: format!("S{i}"),
        asset_tag: format!("T{i}"),
        model: model.to_owned(),
        supplier: None,
        order_ref: None,
        site: Some(site.to_owned()),
        state,
    }
}

fn tags(devices: &[DeviceRecord]) -> Vec<String> {
    let mut tags: Vec<String> = devices.iter().filter_map(|d| d.asset_tag.clone()).collect();
    tags.sort();
    tags
}

#[test]
fn facet_index_follows_transitions_and_is_rebuilt_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = Store::open(&path).unwrap();
    let rows = [
        row(1, LifecycleState::Ordered, "RVI", "OptiPlex 7010"),
        row(2, LifecycleState::InStock, "rvi", "Latitude 5440"),
        row(3, LifecycleState::InStock, "Freeman", "Latitude 5440"),
    ];
    let added = store.add_devices(&rows, "eve (engineer)", 1, "test").unwrap().unwrap();
    let in_stock =
        |store: &Store| tags(&store.list_devices_by_facets(Some(LifecycleState::InStock), |_| true).unwrap());
    assert_eq!(in_stock(&store), ["T2", "T3"]);
    let rvi_latitude = |store: &Store| {
        tags(
            &store
                .list_devices_by_facets(None, |f| {
                    f.site == Some("rvi") && f.registered_model.is_some_and(|m| m.contains("latitude"))
                })
                .unwrap(),
        )
    };
    assert_eq!(rvi_latitude(&store), ["T2"]);

    let event = AuditEvent::new(2, "eve (engineer)", EventKind::DeviceTransitioned, Some(added[0].device_id));
    let attributes = TransitionAttributes::default();
    store.transition(added[0].device_id, LifecycleState::Ordered, LifecycleState::InStock, &attributes, event).unwrap();
    assert_eq!(in_stock(&store), ["T1", "T2", "T3"]);
    assert_eq!(store.list_devices_by_facets(Some(LifecycleState::Ordered), |_| true).unwrap().len(), 0);

    // A store from before the index: it is rebuilt on open.
    store.idx_facets.clear().unwrap();
    store.flush_blocking().unwrap();
    drop(store);
    let store = crate::store::test_support::open_when_unlocked(&path).unwrap();
    assert_eq!(in_stock(&store), ["T1", "T2", "T3"]);
    assert_eq!(rvi_latitude(&store), ["T2"]);
}

/// The ids a scan visits, in order, and how it ended.
fn scan(
    store: &Store,
    state: Option<LifecycleState>,
    after: Option<FacetKey>,
    max_entries: usize,
    take: usize,
) -> (Vec<DeviceId>, FacetScanEnd) {
    let mut ids = Vec::new();
    let end = store
        .scan_devices_by_facets(
            state,
            after,
            max_entries,
            |_| true,
            |device| {
                ids.push(device.device_id);
                Ok::<_, StoreError>(if ids.len() >= take { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
            },
        )
        .unwrap();
    (ids, end)
}

fn key_of(device: &DeviceRecord) -> FacetKey {
    FacetKey::from_bytes(&facet_entry(device).0).unwrap()
}

#[test]
fn a_facet_scan_resumes_after_its_key_and_stays_within_its_state() {
    let (_dir, store) = crate::store::test_support::temp_store();
    let rows: Vec<NewDevice> = (0..10)
        .map(|i| row(i, if i < 4 { LifecycleState::Ordered } else { LifecycleState::InStock }, "RVI", "OptiPlex"))
        .collect();
    let mut added = store.add_devices(&rows, "eve (engineer)", 1, "test").unwrap().unwrap();
    // Index order: state (ordered before in_stock), then id.
    added.sort_by_key(|d| (d.state != LifecycleState::Ordered, d.device_id));
    let ids: Vec<DeviceId> = added.iter().map(|d| d.device_id).collect();

    // Everything, then in pieces of three: each piece resumes after the last.
    assert_eq!(scan(&store, None, None, usize::MAX, usize::MAX), (ids.clone(), FacetScanEnd::Finished));
    let (first, end) = scan(&store, None, None, usize::MAX, 3);
    assert_eq!((first.as_slice(), end), (&ids[..3], FacetScanEnd::StoppedAfter(key_of(&added[2]))));
    let (second, _) = scan(&store, None, Some(key_of(&added[2])), usize::MAX, 3);
    assert_eq!(second, ids[3..6]);
    // Stopping on the very last entry says there is nothing more.
    assert_eq!(scan(&store, None, Some(key_of(&added[6])), usize::MAX, 3), (ids[7..].to_vec(), FacetScanEnd::Finished));
    // At most `max_entries` examined, matching or not.
    let (limited, end) = scan(&store, None, None, 2, usize::MAX);
    assert_eq!((limited.as_slice(), end), (&ids[..2], FacetScanEnd::StoppedAfter(key_of(&added[1]))));

    // Within one state: from the start, after one of its keys, and after
    // keys of the states before and after it.
    let in_stock = Some(LifecycleState::InStock);
    assert_eq!(scan(&store, in_stock, None, usize::MAX, usize::MAX), (ids[4..].to_vec(), FacetScanEnd::Finished));
    assert_eq!(scan(&store, in_stock, Some(key_of(&added[5])), usize::MAX, usize::MAX).0, ids[6..]);
    assert_eq!(scan(&store, in_stock, Some(key_of(&added[3])), usize::MAX, usize::MAX).0, ids[4..]);
    let ordered = Some(LifecycleState::Ordered);
    assert_eq!(scan(&store, ordered, None, usize::MAX, usize::MAX), (ids[..4].to_vec(), FacetScanEnd::Finished));
    assert_eq!(scan(&store, ordered, Some(key_of(&added[4])), usize::MAX, usize::MAX).0, Vec::<DeviceId>::new());
}

#[test]
fn facet_keys_are_checked_when_read_back() {
    let mut bytes = [0u8; 17];
    bytes[0] = 1;
    assert_eq!(FacetKey::from_bytes(&bytes).map(|k| k.state()), Some(LifecycleState::InStock));
    assert_eq!(FacetKey::from_bytes(&bytes[..16]), None, "too short");
    bytes[0] = LifecycleState::ALL.len() as u8;
    assert_eq!(FacetKey::from_bytes(&bytes), None, "no such state");
}

/// An enrolled device (`staged`) that has sent `n_reports` inventories.
fn enrolled_with_reports(store: &Store, n_reports: u64) -> DeviceId {
    let device_id = crate::store::test_support::enroll(store, "ward-pc", crate::store::DeviceKind::Workstation);
    for seq in 1..=n_reports {
        let report = crate::store::test_support::report_with_disks(device_id, seq, &["S1"]);
        store.commit_report(&report).unwrap().unwrap();
    }
    device_id
}

#[test]
fn a_move_checked_on_an_older_report_writes_nothing() {
    let (_dir, store) = crate::store::test_support::temp_store();
    let device_id = enrolled_with_reports(&store, 1);
    // The guard was checked when seq 1 was the latest; seq 2 arrives meanwhile.
    let report = crate::store::test_support::report_with_disks(device_id, 2, &["S1"]);
    store.commit_report(&report).unwrap().unwrap();
    let before = store.device(device_id).unwrap().unwrap();
    let audit_size = store.audit_head().unwrap().size;

    let event = AuditEvent::new(10, "eve (engineer)", EventKind::DeviceTransitioned, Some(device_id));
    let expected = ExpectedDevice { state: LifecycleState::Staged, last_seq: Some(1) };
    let attributes = TransitionAttributes { ward: Some("Ward 7".to_owned()), ..Default::default() };
    let res = store
        .transition_recording(device_id, expected, LifecycleState::Deployed, &attributes, event.clone(), None)
        .unwrap();
    assert_eq!(res, Some(TransitionOutcome::ReportedMeanwhile { last_seq: 2 }));
    assert_eq!(store.device(device_id).unwrap().unwrap(), before, "the record is untouched");
    assert_eq!(store.audit_head().unwrap().size, audit_size, "no audit event");
    assert!(store.list_devices_by_facets(Some(LifecycleState::Deployed), |_| true).unwrap().is_empty());

    // Checked on the latest report, the same move goes through.
    let expected = ExpectedDevice { state: LifecycleState::Staged, last_seq: Some(2) };
    let res =
        store.transition_recording(device_id, expected, LifecycleState::Deployed, &attributes, event, None).unwrap();
    let Some(TransitionOutcome::Moved(moved, seq)) = res else { panic!("moved: {res:?}") };
    assert_eq!((moved.state, moved.ward.as_deref()), (LifecycleState::Deployed, Some("Ward 7")));
    assert_eq!(store.device(device_id).unwrap().unwrap(), *moved);
    assert_eq!(store.audit_head().unwrap().size, audit_size + 1);
    assert_eq!(seq, audit_size, "the event is the next one");
}

#[test]
fn a_move_without_a_report_check_ignores_reports() {
    let (_dir, store) = crate::store::test_support::temp_store();
    let device_id = enrolled_with_reports(&store, 2);
    let event = AuditEvent::new(10, "eve (engineer)", EventKind::DeviceTransitioned, Some(device_id));
    let res = store
        .transition(device_id, LifecycleState::Staged, LifecycleState::Retired, &TransitionAttributes::default(), event)
        .unwrap();
    assert!(matches!(res, Some(TransitionOutcome::Moved(ref d, _)) if d.state == LifecycleState::Retired), "{res:?}");
}
