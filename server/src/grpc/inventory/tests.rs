//! Tests for the list filters and the compliance verdicts lists show.

use super::*;

fn summary(last_seen_ms: i64, state: &str) -> pb::DeviceSummary {
    pb::DeviceSummary {
        enrolled_at_ms: 1,
        last_seen_ms,
        encryption_compliance: Some(pb::ComplianceVerdict { state: state.to_owned(), ..Default::default() }),
        ..Default::default()
    }
}

#[test]
fn filters_combine() {
    let now = 100 * DAY_MS;
    #[track_caller]
    fn check(summary: &pb::DeviceSummary, stale_days: u32, noncompliant: bool, now: i64, expect: bool) {
        assert_eq!(
            passes(summary, &pb::ListDevicesRequest { stale_days, noncompliant, ..Default::default() }, now),
            expect
        );
    }
    let fresh_compliant = summary(now - DAY_MS / 2, "compliant");
    let old_noncompliant = summary(now - 10 * DAY_MS, "noncompliant");
    let never_seen_unknown = summary(0, "unknown");
    check(&fresh_compliant, 0, false, now, true);
    check(&fresh_compliant, 1, false, now, false);
    check(&fresh_compliant, 0, true, now, false);
    check(&old_noncompliant, 7, true, now, true);
    check(&old_noncompliant, 11, false, now, false);
    // Never reported: stale since enrolment, and unknown is not compliant.
    check(&never_seen_unknown, 90, true, now, true);
}

/// The verdict and last-inventory time `add_compliance` gives `device`.
fn listed(store: &Store, device: &DeviceRecord) -> (String, Vec<String>, i64) {
    let mut summary = pb::DeviceSummary::default();
    add_compliance(store, &mut summary, device).unwrap();
    let verdict = summary.encryption_compliance.unwrap();
    (verdict.state, verdict.unencrypted_volumes, summary.last_inventory_ms)
}

#[test]
fn the_verdict_is_kept_at_commit_and_follows_encryption_being_lost() {
    use crate::grpc::test_support::{self, NOW};
    let (_dir, store) = test_support::temp_store();
    let device_id = test_support::enroll(&store, "ward-pc");
    let device = store.device(device_id).unwrap().unwrap();
    assert_eq!(device.inventory_verdict, None);
    assert_eq!(listed(&store, &device), ("unknown".to_owned(), vec![], 0));

    store.commit_report(&test_support::inventory_report(device_id, 1, NOW, true)).unwrap().unwrap();
    let device = store.device(device_id).unwrap().unwrap();
    // It names the report and the hash of the inventory it judged.
    let sha256 = Some(store.latest_inventory(device_id).unwrap().unwrap().sha256);
    let kept =
        crate::store::InventoryVerdict { received_at_ms: NOW, encryption: Compliance::Compliant, seq: 1, sha256 };
    assert_eq!(device.inventory_verdict.as_ref(), Some(&kept));
    assert_eq!(listed(&store, &device), ("compliant".to_owned(), vec![], NOW));

    // Encryption turned off: the next inventory's verdict replaces it.
    store.commit_report(&test_support::inventory_report(device_id, 2, NOW + 5, false)).unwrap().unwrap();
    let device = store.device(device_id).unwrap().unwrap();
    let volumes = vec!["sda2 (sda)".to_owned()];
    let sha256 = Some(store.latest_inventory(device_id).unwrap().unwrap().sha256);
    let kept = crate::store::InventoryVerdict {
        received_at_ms: NOW + 5,
        encryption: Compliance::NonCompliant { volumes },
        seq: 2,
        sha256,
    };
    assert_eq!(device.inventory_verdict.as_ref(), Some(&kept));
    assert_eq!(listed(&store, &device), ("noncompliant".to_owned(), vec!["sda2 (sda)".to_owned()], NOW + 5));
}

#[test]
fn a_record_from_before_the_kept_verdict_reads_it_from_the_inventory() {
    use crate::grpc::test_support::{self, NOW};
    let (_dir, store) = test_support::temp_store();
    let device_id = test_support::enroll(&store, "ward-pc");
    store.commit_report(&test_support::inventory_report(device_id, 1, NOW, true)).unwrap().unwrap();
    store.commit_report(&test_support::inventory_report(device_id, 2, NOW + 5, false)).unwrap().unwrap();
    // What an older record decodes to: no verdict, though it has reported.
    let old = DeviceRecord { inventory_verdict: None, ..store.device(device_id).unwrap().unwrap() };
    assert_eq!(old.last_seq, 2);
    assert_eq!(listed(&store, &old), ("noncompliant".to_owned(), vec!["sda2 (sda)".to_owned()], NOW + 5));
}
