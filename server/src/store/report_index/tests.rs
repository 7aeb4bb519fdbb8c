//! Tests for the report index: one record per group, each device's reports
//! found through its chain, and stores from before it still read.

use custodian_proto::identity::DeviceId;

use super::*;
use crate::store::test_support::{enroll, envelope, temp_store};
use crate::store::{CommitOutcome, CommitReportError, DeviceKind, IncomingReport, ReportContent, StoredEnvelope};

/// How these reports are accepted: heartbeats from a device that has sent
/// no inventory yet.
const ACCEPTED: Result<CommitOutcome, CommitReportError> = Ok(CommitOutcome::AcceptedWantsInventory);

fn report(device_id: DeviceId, seq: u64, payload: &str) -> IncomingReport {
    IncomingReport {
        device_id,
        seq,
        envelope: envelope(payload.as_bytes().to_vec(), "t", 1000 + i64::try_from(seq).unwrap()),
        hostname: "ward-pc".to_owned(),
        serial: None,
        vendor: None,
        model: None,
        content: ReportContent::Heartbeat { inventory_sha256: [0; 32] },
    }
}

fn payloads(store: &Store, device_id: DeviceId) -> Vec<(u64, String)> {
    let reports = store.reports(device_id).unwrap();
    reports.into_iter().map(|(seq, envelope)| (seq, String::from_utf8(envelope.payload).unwrap())).collect()
}

#[test]
fn an_entry_reads_back_as_written() {
    let device_id = DeviceId::random();
    let pointer = envelopes::Pointer { offset: 1 << 40, len: 2166 };
    for prev in [None, Some(Locator { group: 0, index: 0 }), Some(Locator { group: u64::MAX - 1, index: 7 })] {
        let entry = Entry { device_id, seq: 42, audit_seq: 9, pointer, prev };
        let mut value = vec![GROUP_V1];
        entry.encode_into(&mut value);
        assert_eq!(value.len(), 1 + ENTRY_LEN);
        assert_eq!(entry_in(Locator { group: 5, index: 0 }, &value).unwrap(), entry);
    }
}

#[test]
fn a_damaged_group_record_is_an_error_not_a_panic() {
    let locator = Locator { group: 3, index: 1 };
    let one_entry = {
        let mut value = vec![GROUP_V1];
        let pointer = envelopes::Pointer { offset: 0, len: 1 };
        Entry { device_id: DeviceId::random(), seq: 1, audit_seq: 0, pointer, prev: None }.encode_into(&mut value);
        value
    };
    for (value, expected) in [
        (vec![], "empty"),
        (vec![9], "unknown version 9"),
        (one_entry[..30].to_vec(), "not a whole number of entries"),
        (one_entry, "no entry 1"),
    ] {
        let err = entry_in(locator, &value).unwrap_err().to_string();
        assert!(err.contains(expected) && err.contains("group 3"), "{err}");
    }
}

#[test]
fn each_group_is_one_record_and_each_device_finds_its_own_reports() {
    let (_dir, store) = temp_store();
    let a = enroll(&store, "pc-a", DeviceKind::Workstation);
    let b = enroll(&store, "pc-b", DeviceKind::Workstation);
    // Three groups, the devices interleaved within each.
    for first in [1, 3, 5] {
        let group: Vec<IncomingReport> = (first..first + 2)
            .flat_map(|seq| [report(a, seq, &format!("a{seq}")), report(b, seq, &format!("b{seq}"))])
            .collect();
        let refs: Vec<&IncomingReport> = group.iter().collect();
        let outcomes = store.commit_reports(&refs).unwrap();
        assert!(outcomes.iter().all(|o| o == &ACCEPTED), "{outcomes:?}");
    }
    assert_eq!(store.report_groups.len(), 3, "one record per group, not per report");
    let group_keys: Vec<sled::IVec> = store.report_groups.iter().keys().map(Result::unwrap).collect();
    assert!(store.reports.is_empty(), "nothing is written to the old per-report tree");

    let expected = |name: &str| (1..=6).map(|seq| (seq, format!("{name}{seq}"))).collect::<Vec<_>>();
    assert_eq!(payloads(&store, a), expected("a"));
    assert_eq!(payloads(&store, b), expected("b"));
    assert_eq!(store.report(b, 4).unwrap().unwrap().payload, b"b4");
    assert_eq!(store.report(a, 1).unwrap().unwrap().payload, b"a1");
    assert_eq!(store.report(a, 7).unwrap(), None);
    assert_eq!(store.report(a, 0).unwrap(), None);
    // Every report's event is in the device's history, and only its own.
    let history = store.device_events(a).unwrap();
    assert_eq!(history.len(), 6 + 1, "six reports and the enrolment");
    assert!(history.iter().all(|e| e.bytes.windows(a.to_string().len()).any(|w| w == a.to_string().as_bytes())));

    // A group record gone (a damaged store) breaks the chains through it: an
    // error naming the group, never a silently shorter history.
    let removed = store.report_groups.remove(&group_keys[1]).unwrap().unwrap();
    let err = store.reports(a).unwrap_err().to_string();
    let group = u64::from_be_bytes(group_keys[1].as_ref().try_into().unwrap());
    assert!(err.contains(&format!("group {group}, which is not stored")), "{err}");
    assert!(store.device_events(b).is_err());
    // Reports newer than the gap are still found on their own.
    assert_eq!(store.report(a, 6).unwrap().unwrap().payload, b"a6");
    store.report_groups.insert(&group_keys[1], removed).unwrap();
    assert_eq!(payloads(&store, a), expected("a"));
}

#[test]
fn resends_are_found_in_earlier_groups_and_in_their_own() {
    let (_dir, store) = temp_store();
    let a = enroll(&store, "pc-a", DeviceKind::Workstation);
    store.commit_reports(&[&report(a, 1, "one"), &report(a, 2, "two")]).unwrap();
    let (two, two_changed, three) = (report(a, 2, "two"), report(a, 2, "TWO"), report(a, 3, "three"));
    let outcomes = store.commit_reports(&[&two, &two_changed, &three, &report(a, 3, "three")]).unwrap();
    assert_eq!(
        outcomes,
        [
            Ok(CommitOutcome::Duplicate),
            Err(CommitReportError::Replayed { seq: 2, last_seq: 2 }),
            ACCEPTED,
            Ok(CommitOutcome::Duplicate),
        ]
    );
    assert_eq!(store.commit_report(&report(a, 1, "one")).unwrap(), Ok(CommitOutcome::Duplicate));
    assert_eq!(payloads(&store, a), [(1, "one".to_owned()), (2, "two".to_owned()), (3, "three".to_owned())]);
}

/// Writes reports 1..=n of `device_id` as a store from before
/// `report_groups` did: one `reports` record each, naming its envelope in
/// the log, and the device record without a chain.
fn store_as_before(store: &Store, device_id: DeviceId, n: u64) {
    use crate::audit::event::{AuditEvent, EventKind};
    for seq in 1..=n {
        let stored: StoredEnvelope = envelope(format!("old{seq}").into_bytes(), "t", 500);
        let encoded = crate::store::encode(&crate::store::records::VersionedEnvelope::V1(stored));
        let pointer = store.envelopes.append_durable(&[encoded.as_slice()]).unwrap()[0];
        // Found only through the record that names it, as reports' events were.
        let event = AuditEvent::new(500, AuditEvent::device_actor(device_id), EventKind::ReportAccepted, None);
        let audit_seq = store.record_event(event).unwrap();
        let record = crate::store::report_record(audit_seq, pointer);
        store.reports.insert(crate::store::report_key(device_id, seq), record).unwrap();
    }
    let mut device = store.device(device_id).unwrap().unwrap();
    device.last_seq = n;
    device.n_reports = n;
    assert_eq!(device.last_report, None);
    store
        .devices
        .insert(device_id.as_bytes(), crate::store::encode(&crate::store::records::VersionedDevice::V1(device)))
        .unwrap();
}

#[test]
fn a_store_from_before_report_groups_reads_on_and_its_reports_stay_reports() {
    let (_dir, store) = temp_store();
    let a = enroll(&store, "pc-a", DeviceKind::Workstation);
    store_as_before(&store, a, 3);
    assert_eq!(payloads(&store, a).len(), 3);

    store.commit_reports(&[&report(a, 4, "new4"), &report(a, 5, "new5")]).unwrap();
    let all = payloads(&store, a);
    let seqs: Vec<u64> = all.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!((all[2].1.as_str(), all[3].1.as_str()), ("old3", "new4"));
    assert_eq!(store.report(a, 2).unwrap().unwrap().payload, b"old2");
    assert_eq!(store.report(a, 5).unwrap().unwrap().payload, b"new5");

    // A resend of an old report is checked against its old record.
    let old_resend = IncomingReport { envelope: envelope(b"old2".to_vec(), "t", 500), ..report(a, 2, "") };
    assert_eq!(store.commit_report(&old_resend).unwrap(), Ok(CommitOutcome::Duplicate));
    assert_eq!(
        store.commit_report(&report(a, 2, "forged")).unwrap(),
        Err(CommitReportError::Replayed { seq: 2, last_seq: 5 })
    );
    // The history has the old records' events and the new entries'.
    let history = store.device_events(a).unwrap();
    let reports = history.iter().filter(|e| String::from_utf8_lossy(&e.bytes).contains("report_accepted")).count();
    assert_eq!((history.len(), reports), (1 + 5, 5), "the enrolment and five reports");
}

#[test]
fn a_report_is_found_from_its_nearest_milestone_not_by_walking_the_whole_chain() {
    let (_dir, store) = temp_store();
    let a = enroll(&store, "pc-a", DeviceKind::Workstation);
    // 20 groups of 10 reports: seqs 1 to 200, so milestones (each bucket's
    // first entry) at 64, 128 and 192.
    for first in (1..=200).step_by(10) {
        let group: Vec<IncomingReport> = (first..first + 10).map(|seq| report(a, seq, &format!("a{seq}"))).collect();
        store.commit_reports(&group.iter().collect::<Vec<_>>()).unwrap();
    }
    assert_eq!(store.report_milestones.len(), 200 / MILESTONE_EVERY as usize);
    for seq in 1..=200 {
        assert_eq!(store.report(a, seq).unwrap().unwrap().payload, format!("a{seq}").as_bytes());
    }
    // Take away the group holding seqs 131 to 140. A walk from the newest
    // report down to seq 100 would need it; one from the milestone at 128
    // does not.
    let (gap, _) = store
        .report_groups
        .iter()
        .map(Result::unwrap)
        .find(|(_, value)| (0..10).any(|i| entry_in(Locator { group: 0, index: i }, value).unwrap().seq == 135))
        .unwrap();
    store.report_groups.remove(&gap).unwrap();
    assert_eq!(store.report(a, 100).unwrap().unwrap().payload, b"a100");
    assert_eq!(store.report(a, 195).unwrap().unwrap().payload, b"a195");
    assert!(store.report(a, 135).is_err(), "its own group is gone");
    // The resend check starts from the milestones too.
    assert_eq!(store.commit_report(&report(a, 5, "a5")).unwrap(), Ok(CommitOutcome::Duplicate));
    assert_eq!(
        store.commit_report(&report(a, 100, "forged")).unwrap(),
        Err(CommitReportError::Replayed { seq: 100, last_seq: 200 })
    );
}
