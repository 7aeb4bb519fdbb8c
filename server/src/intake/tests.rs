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
