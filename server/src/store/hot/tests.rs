//! Deferred hot fields: readers, other writers and a restart all see the
//! device records as the committer left them.

use custodian_proto::identity::DeviceId;

use super::super::test_support::{envelope, open_when_unlocked, temp_store};
use super::super::{
    CommitOutcome, CommitReportError, DeviceKind, IncomingReport, ReportContent, Revocation, test_support,
};
use super::*;

/// Report `seq` of `device_id`: the same inventory every time (so that only
/// hot fields change after the first), under `hostname`.
fn report(device_id: DeviceId, seq: u64, hostname: &str) -> IncomingReport {
    let inventory = custodian_proto::v1::Inventory { hostname: hostname.to_owned(), ..Default::default() };
    IncomingReport {
        device_id,
        seq,
        envelope: envelope(format!("report {seq}").into_bytes(), "t", 1_000 + seq as i64),
        hostname: hostname.to_owned(),
        serial: None,
        vendor: None,
        model: None,
        content: ReportContent::Inventory { inventory: Box::new(inventory), sha256: [hostname.len() as u8; 32] },
    }
}

/// `device_id`'s record as `devices` holds it, without settling.
fn raw(store: &Store, device_id: DeviceId) -> DeviceRecord {
    let bytes = store.devices.get(device_id.as_bytes()).unwrap().expect("stored");
    decode::<super::super::records::VersionedDevice>("devices", &bytes).unwrap().into()
}

fn commit(store: &Store, reports: &[IncomingReport]) {
    for outcome in store.commit_reports(&reports.iter().collect::<Vec<_>>()).unwrap() {
        assert_eq!(outcome.unwrap(), CommitOutcome::Accepted);
    }
}

/// Commits reports 1..=n of `device_id`, one group each, and checks that
/// the later ones were deferred.
fn commit_deferred(store: &Store, device_id: DeviceId, n: u64) {
    for seq in 1..=n {
        commit(store, &[report(device_id, seq, "ward-pc")]);
    }
    assert_eq!(
        raw(store, device_id).last_seq,
        1,
        "the first report changed the hostname and verdict; later ones only hot fields"
    );
    assert!(!store.device_hot.is_empty());
}

/// A fresh store with one device, `pc`, whose reports 1..=n were committed
/// and 2..=n deferred.
fn deferred(n: u64) -> (tempfile::TempDir, Store, DeviceId) {
    let (dir, store) = temp_store();
    let device_id = test_support::enroll(&store, "pc", DeviceKind::Workstation);
    commit_deferred(&store, device_id, n);
    (dir, store, device_id)
}

fn check_up_to_date(device: &DeviceRecord, n: u64) {
    assert_eq!(device.last_seq, n);
    assert_eq!(device.n_reports, n);
    assert_eq!(device.last_seen_ms, Some(1_000 + n as i64));
    let verdict = device.inventory_verdict.as_ref().expect("a verdict");
    assert_eq!((verdict.seq, verdict.received_at_ms), (n, 1_000 + n as i64));
    assert!(device.last_report.is_some());
}

#[test]
fn a_reader_sees_deferred_fields_and_writes_them() {
    let (_dir, store, device_id) = deferred(5);

    check_up_to_date(&store.device(device_id).unwrap().unwrap(), 5);
    check_up_to_date(&raw(&store, device_id), 5);
    assert!(store.device_hot.is_empty(), "settled");
    let reports = store.reports(device_id).unwrap();
    assert_eq!(reports.len(), 5, "the report chain starts from the settled last_report");

    // The committer reads the record afresh and goes on deferring.
    commit(&store, &[report(device_id, 6, "ward-pc")]);
    assert_eq!(raw(&store, device_id).last_seq, 5);
    check_up_to_date(&store.list_devices().unwrap()[0], 6);
}

#[test]
fn every_way_of_reading_devices_sees_deferred_fields() {
    type Read = fn(&Store, DeviceId) -> DeviceRecord;
    let reads: [(&str, Read); 4] = [
        ("device", |store, id| store.device(id).unwrap().unwrap()),
        ("find_devices", |store, id| store.find_devices(&id.to_string()).unwrap().remove(0)),
        ("list_devices", |store, _| store.list_devices().unwrap().remove(0)),
        ("list_devices_where", |store, _| store.list_devices_where(|_| true).unwrap().remove(0)),
    ];
    for (name, read) in reads {
        let (_dir, store, device_id) = deferred(3);
        let device = read(&store, device_id);
        assert_eq!(device.last_seq, 3, "{name}");
        check_up_to_date(&device, 3);
    }
}

#[test]
fn a_restart_applies_what_was_deferred() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let device_id;
    {
        let store = Store::open(&path).unwrap();
        device_id = test_support::enroll(&store, "pc", DeviceKind::Workstation);
        commit_deferred(&store, device_id, 7);
        // Durable, as when acknowledged; then the process is gone.
        store.flush_blocking().unwrap();
    }
    let store = open_when_unlocked(&path).unwrap();
    assert!(store.device_hot.is_empty(), "opening applies and removes the deferred records");
    check_up_to_date(&raw(&store, device_id), 7);
    // A resend of an old report is still a duplicate, and the next one is accepted.
    let outcome = store.commit_report(&report(device_id, 7, "ward-pc")).unwrap().unwrap();
    assert_eq!(outcome, CommitOutcome::Duplicate);
    commit(&store, &[report(device_id, 8, "ward-pc")]);
    check_up_to_date(&store.device(device_id).unwrap().unwrap(), 8);
}

#[test]
fn a_revocation_keeps_the_deferred_fields_and_stops_the_next_report() {
    let (_dir, store, device_id) = deferred(4);
    let revocation = Revocation { revoked_at_ms: 5, revoked_by: "alice".to_owned(), reason: "stolen".to_owned() };
    let (device, revoked) = store.revoke(device_id, revocation).unwrap().unwrap();
    assert!(revoked);
    check_up_to_date(&device, 4);

    let refused = store.commit_report(&report(device_id, 5, "ward-pc")).unwrap();
    assert!(matches!(refused, Err(CommitReportError::Revoked(id)) if id == device_id), "{refused:?}");
    let device = store.device(device_id).unwrap().unwrap();
    check_up_to_date(&device, 4);
    assert!(device.revocation.is_some());
}

#[test]
fn other_changes_are_written_at_once() {
    let (_dir, store, device_id) = deferred(3);
    commit(&store, &[report(device_id, 4, "theatre-pc")]);
    let stored = raw(&store, device_id);
    assert_eq!((stored.hostname.as_str(), stored.last_seq), ("theatre-pc", 4), "a new hostname is not deferred");
    assert_eq!(store.find_devices("theatre-pc").unwrap().len(), 1, "and is indexed at once");
}

#[test]
fn the_committer_settles_every_so_many_groups() {
    let (_dir, store) = temp_store();
    let quiet = test_support::enroll(&store, "quiet", DeviceKind::Workstation);
    let busy = test_support::enroll(&store, "busy", DeviceKind::Workstation);
    commit(&store, &[report(quiet, 1, "quiet-pc")]);
    commit(&store, &[report(quiet, 2, "quiet-pc")]);
    assert_eq!(raw(&store, quiet).last_seq, 1, "deferred");
    // The busy device's groups reach the limit (its first report is
    // written whole, the rest deferred); the quiet one's deferred record is
    // written with them although it is in none of them.
    let n = SETTLE_EVERY_GROUPS as u64;
    for seq in 1..n {
        commit(&store, &[report(busy, seq, "busy-pc")]);
    }
    assert_eq!(store.device_hot.len(), SETTLE_EVERY_GROUPS - 1, "one record per group that deferred");
    commit(&store, &[report(busy, n, "busy-pc")]);
    assert!(store.device_hot.is_empty(), "every deferred record was written");
    assert_eq!(raw(&store, quiet).last_seq, 2);
    assert_eq!(raw(&store, busy).last_seq, n);
    assert_eq!(raw(&store, busy).n_reports, n);
}

#[test]
fn a_deferred_record_never_undoes_a_later_whole_one() {
    let (_dir, store, device_id) = deferred(3);
    // Written whole (new hostname) after the deferred records of 2 and 3.
    commit(&store, &[report(device_id, 4, "theatre-pc")]);
    commit(&store, &[report(device_id, 5, "theatre-pc")]);
    let device = store.device(device_id).unwrap().unwrap();
    assert_eq!(device.hostname, "theatre-pc");
    check_up_to_date(&device, 5);
}

#[test]
fn only_hot_fields_may_be_deferred() {
    let before = DeviceRecord::enrolled(DeviceId::random(), [1; 32], "pc", None, 1, 2);
    let mut now = before.clone();
    now.last_seq = 9;
    now.n_reports = 9;
    now.last_seen_ms = Some(5);
    now.last_report = Some(ReportLocatorV1 { group: 3, index: 0 });
    assert!(differs_only_in_hot_fields(&before, &now));
    let mut applied = before.clone();
    HotFieldsV1::of(&now).apply_to(&mut applied);
    assert_eq!(applied, now);

    let mut renamed = now.clone();
    renamed.hostname = "other".to_owned();
    assert!(!differs_only_in_hot_fields(&before, &renamed));
    let mut verdict = now.clone();
    verdict.inventory_verdict = Some(InventoryVerdictV1 {
        received_at_ms: 5,
        encryption: crate::compliance::Compliance::Compliant,
        seq: 9,
        sha256: Some([1; 32]),
    });
    assert!(!differs_only_in_hot_fields(&before, &verdict), "a first verdict is written whole");
    let mut with_verdict = before.clone();
    with_verdict.inventory_verdict = verdict.inventory_verdict.clone();
    let mut newer = verdict.clone();
    newer.inventory_verdict.as_mut().unwrap().seq = 10;
    assert!(differs_only_in_hot_fields(&with_verdict, &newer), "an unchanged inventory's seq is hot");
    newer.inventory_verdict.as_mut().unwrap().sha256 = Some([2; 32]);
    assert!(!differs_only_in_hot_fields(&with_verdict, &newer), "a changed inventory is not");
}

#[test]
fn a_damaged_deferred_record_is_an_error_naming_its_tree() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let store = Store::open(&path).unwrap();
        store.device_hot.insert(7u64.to_be_bytes(), &b"not messagepack"[..]).unwrap();
        store.flush_blocking().unwrap();
    }
    let err = open_when_unlocked(&path).err().expect("refused");
    assert!(matches!(err, StoreError::Decode { tree: TREE, .. }), "{err}");

    let again = open_when_unlocked(&path);
    assert!(matches!(again, Err(StoreError::Decode { tree: TREE, .. })), "still refused: the record was not dropped");
}

#[test]
fn a_deferred_record_naming_an_unknown_device_is_an_error() {
    let (_dir, store) = temp_store();
    let stranger = HotFieldsV1 {
        device_id: DeviceId::random(),
        last_seq: 3,
        n_reports: 3,
        last_seen_ms: Some(1),
        last_report: None,
        verdict: None,
    };
    store.device_hot.insert(9u64.to_be_bytes(), encode_group(vec![stranger.clone()])).unwrap();
    let err = store.device(stranger.device_id).expect_err("refused");
    assert!(err.to_string().contains(&format!("names device {}", stranger.device_id)), "{err}");
    assert_eq!(store.device_hot.len(), 1, "left for an operator to look at");
}

/// Reports committed while other threads read devices, renew certificates
/// and revoke one: nothing is lost, nothing goes back, nothing deadlocks,
/// and a restart finds the same. Every tenth round changes the hostname, so
/// the committer writes whole records too; a record it held from before a
/// renewal or the revocation would undo them.
#[test]
fn concurrent_readers_and_writers_lose_nothing() {
    const DEVICES: usize = 6;
    const ROUNDS: u64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = Store::open(&path).unwrap();
    let ids: Vec<DeviceId> =
        (0..DEVICES).map(|i| test_support::enroll(&store, &format!("pc-{i}"), DeviceKind::Workstation)).collect();
    let revoked = ids[0];
    let done = std::sync::atomic::AtomicBool::new(false);
    let revocation_done = std::sync::atomic::AtomicBool::new(false);
    let (accepted_by_revoked, last_expiry) = std::thread::scope(|scope| {
        let committer = scope.spawn(|| {
            let mut accepted_by_revoked = 0;
            for seq in 1..=ROUNDS {
                if seq == ROUNDS - 10 {
                    // However the threads are scheduled, the last rounds
                    // come after the revocation.
                    while !revocation_done.load(std::sync::atomic::Ordering::SeqCst) {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                }
                let hostname = if (seq / 10) % 2 == 0 { "ward-pc" } else { "ward-pc-b" };
                let reports: Vec<IncomingReport> = ids.iter().map(|id| report(*id, seq, hostname)).collect();
                let outcomes = store.commit_reports(&reports.iter().collect::<Vec<_>>()).unwrap();
                for (report, outcome) in reports.iter().zip(outcomes) {
                    match outcome {
                        Ok(CommitOutcome::Accepted) if report.device_id == revoked => accepted_by_revoked += 1,
                        Ok(CommitOutcome::Accepted) => {}
                        Err(CommitReportError::Revoked(id)) if id == revoked => {}
                        other => panic!("report {seq} of {}: {other:?}", report.device_id),
                    }
                }
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            accepted_by_revoked
        });
        let reader = scope.spawn(|| {
            let mut seen = [0u64; DEVICES];
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                for (i, id) in ids.iter().enumerate() {
                    let device = store.device(*id).unwrap().unwrap();
                    assert!(device.last_seq >= seen[i], "{id}'s last_seq went back");
                    assert_eq!(device.n_reports, device.last_seq, "{id}: one report per seq");
                    seen[i] = device.last_seq;
                }
                assert_eq!(store.list_devices().unwrap().len(), DEVICES);
                // Seldom enough that the committer's copies live a while.
                std::thread::sleep(std::time::Duration::from_millis(15));
            }
        });
        let writer = scope.spawn(|| {
            let mut expiry = 0;
            let mut rounds = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                expiry += 1;
                for id in &ids[1..] {
                    store.set_cert_expiry(*id, expiry).unwrap().unwrap();
                }
                rounds += 1;
                if rounds == 20 {
                    let revocation =
                        Revocation { revoked_at_ms: 5, revoked_by: "alice".to_owned(), reason: "stolen".to_owned() };
                    store.revoke(revoked, revocation).unwrap().unwrap();
                    revocation_done.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                std::thread::sleep(std::time::Duration::from_millis(3));
            }
            expiry
        });
        reader.join().unwrap();
        (committer.join().unwrap(), writer.join().unwrap())
    });
    assert!(accepted_by_revoked <= ROUNDS - 10, "reports after the revocation were refused");

    let check = |store: &Store| {
        for id in &ids {
            let device = store.device(*id).unwrap().unwrap();
            if *id == revoked {
                assert!(device.revocation.is_some());
                assert_eq!((device.last_seq, device.n_reports), (accepted_by_revoked, accepted_by_revoked));
                assert_eq!(store.reports(*id).unwrap().len() as u64, accepted_by_revoked);
            } else {
                check_up_to_date(&device, ROUNDS);
                assert_eq!(device.cert_not_after_ms, last_expiry, "no renewal was undone by a report");
                assert_eq!(store.reports(*id).unwrap().len() as u64, ROUNDS);
            }
        }
    };
    // As a crash would leave it: whatever the last groups deferred is
    // applied when the store is opened again.
    store.flush_blocking().unwrap();
    drop(store);
    let store = open_when_unlocked(&path).unwrap();
    check(&store);
    check(&store);
}

#[test]
fn a_thread_that_panicked_holding_the_committers_devices_loses_nothing() {
    let (_dir, store, device_id) = deferred(3);
    let holder = store.clone();
    let panicked = std::thread::spawn(move || {
        let _devices = holder.hot.lock().unwrap();
        panic!("a committer bug");
    })
    .join();
    assert!(panicked.is_err() && store.hot.is_poisoned());

    // The next commit drops the copies it can no longer trust, settles from
    // `device_hot`, and goes on.
    commit(&store, &[report(device_id, 4, "ward-pc")]);
    assert!(!store.hot.is_poisoned());
    check_up_to_date(&store.device(device_id).unwrap().unwrap(), 4);
}
