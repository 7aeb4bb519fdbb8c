//! Register and facet index tests.

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
