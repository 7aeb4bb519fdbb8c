//! Tests for the store: tokens, enrolment, indexes, and the report commit rules.

use custodian_proto::identity::DeviceId;

use super::*;
use crate::store::test_support::{open_when_unlocked, temp_store};

const NOW: i64 = 1_800_000_000_000;

fn token(expires_at_ms: i64) -> TokenRecord {
    TokenRecord {
        created_at_ms: NOW - 1,
        expires_at_ms,
        created_by: "alice (engineer)".to_owned(),
        site: Some("St Elsewhere".to_owned()),
        used: None,
        asset_tag: None,
        kind: DeviceKind::Workstation,
    }
}

fn device(hostname: &str, serial: Option<&str>) -> DeviceRecord {
    DeviceRecord::enrolled(DeviceId::random(), [7; 32], hostname, serial, NOW, NOW + 1000)
}

fn enrolled(store: &Store, hostname: &str, serial: Option<&str>) -> DeviceRecord {
    let hash = [hostname.len() as u8; 32];
    store.create_token(&hash, &token(NOW + 1000)).unwrap();
    store.enroll(&hash, NOW, device(hostname, serial), None).unwrap()
}

fn report(device_id: DeviceId, seq: u64, payload: &[u8], hostname: &str, serial: Option<&str>) -> IncomingReport {
    IncomingReport {
        device_id,
        seq,
        envelope: StoredEnvelope {
            payload: payload.to_vec(),
            payload_type: "t".to_owned(),
            signature: vec![1; 64],
            received_at_ms: NOW + seq as i64,
        },
        hostname: hostname.to_owned(),
        serial: serial.map(str::to_owned),
        vendor: None,
        model: None,
        content: ReportContent::Inventory {
            inventory: Box::new(custodian_proto::v1::Inventory { hostname: hostname.to_owned(), ..Default::default() }),
            sha256: [seq as u8; 32],
        },
    }
}

#[test]
fn a_token_enrols_once_and_gives_the_device_its_site() {
    let (_dir, store) = temp_store();
    let hash = [1; 32];
    store.create_token(&hash, &token(NOW + 1000)).unwrap();
    let first = store.enroll(&hash, NOW, device("pc1", None), None).unwrap();
    assert_eq!(first.site.as_deref(), Some("St Elsewhere"));
    let err = store.enroll(&hash, NOW, device("pc2", None), None).unwrap_err();
    assert!(matches!(err, EnrollError::TokenUsed { device_id } if device_id == first.device_id), "{err}");
    // Nothing was written for the refused enrolment.
    assert_eq!(store.list_devices().unwrap().len(), 1);
    assert!(store.find_devices("pc2").unwrap().is_empty());
}

#[test]
fn expired_and_unknown_tokens_are_refused() {
    let (_dir, store) = temp_store();
    store.create_token(&[1; 32], &token(NOW)).unwrap();
    assert!(matches!(store.check_token(&[1; 32], NOW), Err(EnrollError::TokenExpired)));
    assert!(matches!(store.enroll(&[1; 32], NOW, device("pc", None), None), Err(EnrollError::TokenExpired)));
    assert!(matches!(store.check_token(&[2; 32], NOW), Err(EnrollError::UnknownToken)));
    assert!(store.list_devices().unwrap().is_empty());
}

#[test]
fn devices_are_found_by_id_hostname_and_serial_case_insensitively() {
    let (_dir, store) = temp_store();
    let pc = enrolled(&store, "Ward7-PC03", Some("ABC123"));
    for query in [pc.device_id.to_string(), "ward7-pc03".to_owned(), "abc123".to_owned(), " ABC123 ".to_owned()] {
        let found = store.find_devices(&query).unwrap();
        assert_eq!(found.iter().map(|d| d.device_id).collect::<Vec<_>>(), vec![pc.device_id], "{query}");
    }
    assert!(store.find_devices("ward7").unwrap().is_empty(), "prefixes are not matches");
}

#[test]
fn reports_move_the_indexes_to_the_new_hostname_and_serial() {
    let (_dir, store) = temp_store();
    let pc = enrolled(&store, "old-name", Some("OLD"));
    let outcome = store.commit_report(&report(pc.device_id, 1, b"r1", "new-name", Some("NEW"))).unwrap();
    assert_eq!(outcome, Ok(CommitOutcome::Accepted));
    assert!(store.find_devices("old-name").unwrap().is_empty());
    assert!(store.find_devices("OLD").unwrap().is_empty());
    assert_eq!(store.find_devices("new-name").unwrap().len(), 1);
    assert_eq!(store.find_devices("NEW").unwrap().len(), 1);
}

#[test]
fn sequence_rules_accept_duplicates_and_refuse_replays() {
    let (_dir, store) = temp_store();
    let pc = enrolled(&store, "pc", None);
    let id = pc.device_id;
    let commit = |seq, payload: &[u8]| store.commit_report(&report(id, seq, payload, "pc", None)).unwrap();
    assert_eq!(commit(1, b"one"), Ok(CommitOutcome::Accepted));
    assert_eq!(commit(2, b"two"), Ok(CommitOutcome::Accepted));
    // An identical resend is a duplicate and writes nothing.
    assert_eq!(commit(2, b"two"), Ok(CommitOutcome::Duplicate));
    assert_eq!(commit(1, b"one"), Ok(CommitOutcome::Duplicate));
    // Different bytes at an old sequence number is a replay.
    assert_eq!(commit(1, b"forged"), Err(CommitReportError::Replayed { seq: 1, last_seq: 2 }));
    // A gap is allowed (a report the server refused is skipped), going back is not.
    assert_eq!(commit(5, b"five"), Ok(CommitOutcome::Accepted));
    assert_eq!(commit(4, b"four"), Err(CommitReportError::Replayed { seq: 4, last_seq: 5 }));
    let device = store.device(id).unwrap().unwrap();
    assert_eq!((device.last_seq, device.n_reports), (5, 3));
    let stored: Vec<(u64, Vec<u8>)> = store.reports(id).unwrap().into_iter().map(|(s, e)| (s, e.payload)).collect();
    assert_eq!(stored, vec![(1, b"one".to_vec()), (2, b"two".to_vec()), (5, b"five".to_vec())]);
}

#[test]
fn revoked_and_unknown_devices_cannot_commit() {
    let (_dir, store) = temp_store();
    let pc = enrolled(&store, "pc", None);
    let revocation =
        Revocation { revoked_at_ms: NOW, revoked_by: "alice (admin)".to_owned(), reason: "stolen".to_owned() };
    let (device, revoked_now) = store.revoke(pc.device_id, revocation.clone()).unwrap().unwrap();
    assert!(revoked_now);
    assert_eq!(device.revocation, Some(revocation.clone()));
    // Revoking again changes nothing.
    assert!(!store.revoke(pc.device_id, revocation).unwrap().unwrap().1);
    let res = store.commit_report(&report(pc.device_id, 1, b"r", "pc", None)).unwrap();
    assert_eq!(res, Err(CommitReportError::Revoked(pc.device_id)));
    let stranger = DeviceId::random();
    let res = store.commit_report(&report(stranger, 1, b"r", "pc", None)).unwrap();
    assert_eq!(res, Err(CommitReportError::UnknownDevice(stranger)));
    assert!(store.reports(pc.device_id).unwrap().is_empty());
}

#[test]
fn everything_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let id = {
        let store = Store::open(&path).unwrap();
        let pc = enrolled(&store, "pc", Some("SER"));
        store.commit_report(&report(pc.device_id, 1, b"one", "pc", Some("SER"))).unwrap().unwrap();
        store.flush_blocking().unwrap();
        pc.device_id
    };
    let store = open_when_unlocked(&path).unwrap();
    assert_eq!(store.find_devices("SER").unwrap()[0].device_id, id);
    assert_eq!(store.report(id, 1).unwrap().unwrap().payload, b"one");
}

/// `flush_blocking` ends with an `fdatasync` of the file it opened itself,
/// because sled's flush does not make its writes survive a power cut. That
/// is only worth anything if the file is the one sled writes to.
#[test]
fn the_file_a_flush_syncs_is_the_one_sled_writes() {
    let (_dir, store) = temp_store();
    let before = store.db_file.metadata().unwrap().len();
    let tree = store.db.open_tree("test_bulk").unwrap();
    for i in 0u32..64 {
        tree.insert(i.to_be_bytes(), vec![i as u8; 4096]).unwrap();
    }
    store.flush_blocking().unwrap();
    let after = store.db_file.metadata().unwrap().len();
    assert!(after >= before + 64 * 4096, "sled wrote 256 KiB elsewhere: the file went from {before} to {after} bytes");
}

#[test]
fn a_store_from_an_older_version_opens_and_is_marked_with_this_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let db = sled::open(&path).unwrap();
        db.open_tree("meta").unwrap().insert(SCHEMA_VERSION_KEY, &1u64.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let store = open_when_unlocked(&path).unwrap();
    let stored = store.db.open_tree("meta").unwrap().get(SCHEMA_VERSION_KEY).unwrap().unwrap();
    assert_eq!(stored.as_ref(), SCHEMA_VERSION.to_be_bytes(), "an older build now refuses it");
    const { assert!(SCHEMA_VERSION > 1) };
}

#[test]
fn a_store_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let db = sled::open(&path).unwrap();
        db.open_tree("meta").unwrap().insert(SCHEMA_VERSION_KEY, &(SCHEMA_VERSION + 1).to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    assert!(matches!(open_when_unlocked(&path), Err(StoreError::TooNew { found }) if found == SCHEMA_VERSION + 1));
}

/// Regression test for a sled 0.34 deadlock found by the ingest benchmark:
/// an async flush waiting on the log while a transaction queued for sled's
/// global lock blocked the threads that would write it. This is the shape of
/// parallel enrolments: a transaction on a runtime worker, then an awaited
/// flush. Every one must finish.
#[test]
fn concurrent_transactions_and_async_flushes_do_not_deadlock() {
    let (_dir, store) = temp_store();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let tasks = 16u8;
    for task in 0..tasks {
        let store = store.clone();
        let done_tx = done_tx.clone();
        runtime.spawn(async move {
            for i in 0..20u8 {
                let mut hash = [1u8; 32];
                (hash[0], hash[1]) = (task, i);
                store.create_token(&hash, &token(NOW + 1000)).unwrap();
                store.enroll(&hash, NOW, device(&format!("pc-{task}-{i}"), None), None).unwrap();
                store.flush().await.unwrap();
            }
            done_tx.send(()).unwrap();
        });
    }
    for _ in 0..tasks {
        done_rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("every task finishes its enrolments and flushes (no deadlock)");
    }
    assert_eq!(store.list_devices().unwrap().len(), usize::from(tasks) * 20);
    runtime.shutdown_background();
}
