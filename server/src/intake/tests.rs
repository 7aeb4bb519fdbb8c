//! Tests for the intake's entry from outside the async runtime.

use std::sync::mpsc;

use super::*;
use crate::grpc::test_support::{NOW, enroll, inventory_report, temp_store};

#[test]
fn submit_from_a_plain_thread_answers_on_the_committer_once_stored() {
    let (_dir, store) = temp_store();
    let device_id = enroll(&store, "ward-pc");
    let intake = Intake::start(store.clone());
    let (tx, rx) = mpsc::channel();
    let reports = vec![inventory_report(device_id, 1, NOW, true), inventory_report(device_id, 2, NOW, true)];
    std::thread::spawn(move || {
        intake.submit(reports, move |res| {
            let thread = std::thread::current().name().map(str::to_owned);
            tx.send((thread, res)).unwrap();
        });
    })
    .join()
    .unwrap();
    let (thread, res) = rx.recv().unwrap();
    assert_eq!(thread.as_deref(), Some("report-committer"));
    let outcomes = res.unwrap();
    assert!(matches!(outcomes.as_slice(), [Ok(CommitOutcome::Accepted), Ok(CommitOutcome::Accepted)]), "{outcomes:?}");
    assert_eq!(store.device(device_id).unwrap().unwrap().last_seq, 2);
}

#[test]
fn submit_passes_each_reports_own_outcome_and_nothing_for_no_reports() {
    let (_dir, store) = temp_store();
    let device_id = enroll(&store, "ward-pc");
    let intake = Intake::start(store.clone());
    let (tx, rx) = mpsc::channel();
    let sender = tx.clone();
    intake.submit(Vec::new(), move |res| sender.send(res).unwrap());
    assert!(rx.recv().unwrap().unwrap().is_empty());
    // A replay of an older sequence number is refused on its own.
    let reports = vec![inventory_report(device_id, 2, NOW, true), inventory_report(device_id, 1, NOW, true)];
    intake.submit(reports, move |res| tx.send(res).unwrap());
    let outcomes = rx.recv().unwrap().unwrap();
    assert!(matches!(outcomes[0], Ok(CommitOutcome::Accepted)), "{outcomes:?}");
    assert!(matches!(outcomes[1], Err(CommitReportError::Replayed { .. })), "{outcomes:?}");
    assert_eq!(store.device(device_id).unwrap().unwrap().last_seq, 2);
}

/// After a failed sync nothing more is acknowledged: a later sync could
/// report success for pages the kernel already dropped.
#[test]
fn after_a_failed_sync_no_report_is_acknowledged_until_restart() {
    let (_dir, store) = temp_store();
    let device_id = enroll(&store, "ward-pc");
    let intake = Intake::start(store.clone());
    let submit = |seq: u64| {
        let (tx, rx) = mpsc::channel();
        intake.submit(vec![inventory_report(device_id, seq, NOW, true)], move |res| tx.send(res).unwrap());
        rx.recv().unwrap()
    };
    assert!(submit(1).is_ok());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let wait = |ms| {
        runtime
            .block_on(async { tokio::time::timeout(std::time::Duration::from_millis(ms), store.sync_failed()).await })
    };
    assert!(wait(50).is_err(), "no sync has failed yet");
    store.fail_next_flush();
    let err = submit(2).unwrap_err().to_string();
    assert!(err.contains("injected failure"), "{err}");
    // The disk is fine again, but the earlier failure stands.
    let err = submit(3).unwrap_err().to_string();
    assert!(err.contains("an earlier sync of the store failed") && err.contains("restart custodian-server"), "{err}");
    let err = store.flush_blocking().unwrap_err().to_string();
    assert!(err.contains("an earlier sync of the store failed"), "{err}");
    // What stops the server, so that its supervisor restarts it.
    assert!(wait(1000).is_ok(), "the failure is signalled");
}
