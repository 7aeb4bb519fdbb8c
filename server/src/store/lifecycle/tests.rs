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
