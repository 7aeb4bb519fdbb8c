//! Tests for group commit: a group in one transaction ends exactly as the
//! same reports committed one by one.

use custodian_proto::identity::DeviceId;

use super::super::*;

const NOW: i64 = 1_800_000_000_000;

fn enrolled(store: &Store, device_id: DeviceId, hostname: &str, token: u8) {
    let token_record = TokenRecord {
        created_at_ms: NOW - 1,
        expires_at_ms: NOW + 1000,
        created_by: "alice (engineer)".to_owned(),
        site: None,
        used: None,
        asset_tag: None,
        kind: DeviceKind::Workstation,
    };
    store.create_token(&[token; 32], &token_record).unwrap();
    let device = DeviceRecord::enrolled(device_id, [7; 32], hostname, None, NOW, NOW + 1000);
    store.enroll(&[token; 32], NOW, device, None).unwrap();
}

fn report(device_id: DeviceId, seq: u64, payload: &str, hostname: &str) -> IncomingReport {
    IncomingReport {
        device_id,
        seq,
        envelope: StoredEnvelope {
            payload: payload.as_bytes().to_vec(),
            payload_type: "t".to_owned(),
            signature: vec![1; 64],
            received_at_ms: NOW + seq as i64,
        },
        hostname: hostname.to_owned(),
        serial: Some(format!("SER-{hostname}")),
        vendor: None,
        model: None,
        content: ReportContent::Inventory {
            inventory: Box::new(custodian_proto::v1::Inventory { hostname: hostname.to_owned(), ..Default::default() }),
            sha256: [payload.len() as u8; 32],
        },
    }
}

/// Two stores with the same devices (same ids), one revoked.
fn stores(a: DeviceId, b: DeviceId, revoked: DeviceId) -> [(tempfile::TempDir, Store); 2] {
    [(); 2].map(|()| {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        enrolled(&store, a, "pc-a", 1);
        enrolled(&store, b, "pc-b", 2);
        enrolled(&store, revoked, "pc-r", 3);
        let revocation = Revocation { revoked_at_ms: NOW, revoked_by: "alice".to_owned(), reason: "lost".to_owned() };
        store.revoke(revoked, revocation).unwrap().unwrap();
        (dir, store)
    })
}

#[test]
fn a_group_ends_as_the_same_reports_committed_one_by_one() {
    let (a, b, revoked, stranger) = (DeviceId::random(), DeviceId::random(), DeviceId::random(), DeviceId::random());
    let group = vec![
        report(a, 1, "a one", "pc-a"),
        report(b, 3, "b three", "pc-b"),
        // The same device again: sees its own earlier report in the group.
        report(a, 2, "a two, renamed", "pc-a2"),
        // An identical resend within the group is a duplicate...
        report(a, 2, "a two, renamed", "pc-a2"),
        // ...different bytes at that number are a replay, and so is going back.
        report(a, 2, "forged", "pc-x"),
        report(b, 2, "b two", "pc-b"),
        report(revoked, 1, "r one", "pc-r"),
        report(stranger, 1, "s one", "pc-s"),
        report(a, 7, "a seven, inventory changed", "pc-a3"),
    ];
    let [(_one_dir, one_by_one), (_group_dir, grouped)] = stores(a, b, revoked);
    let expected: Vec<_> = group.iter().map(|r| one_by_one.commit_report(r).unwrap()).collect();
    let got = grouped.commit_reports(&group.iter().collect::<Vec<_>>()).unwrap();
    assert_eq!(got, expected);
    assert_eq!(
        got,
        vec![
            Ok(CommitOutcome::Accepted),
            Ok(CommitOutcome::Accepted),
            Ok(CommitOutcome::Accepted),
            Ok(CommitOutcome::Duplicate),
            Err(CommitReportError::Replayed { seq: 2, last_seq: 2 }),
            Err(CommitReportError::Replayed { seq: 2, last_seq: 3 }),
            Err(CommitReportError::Revoked(revoked)),
            Err(CommitReportError::UnknownDevice(stranger)),
            Ok(CommitOutcome::Accepted),
        ]
    );
    // The same records, but for where the newest report's entry is stored.
    let located_nowhere = |store: &Store, id| {
        store.device(id).unwrap().map(|mut device| {
            assert_eq!(device.last_report.is_some(), device.n_reports > 0);
            device.last_report = None;
            device
        })
    };
    for id in [a, b, revoked] {
        assert_eq!(located_nowhere(&grouped, id), located_nowhere(&one_by_one, id));
        assert_eq!(grouped.reports(id).unwrap(), one_by_one.reports(id).unwrap());
        assert_eq!(grouped.latest_inventory(id).unwrap(), one_by_one.latest_inventory(id).unwrap());
        assert_eq!(grouped.inventory_changes(id, 100).unwrap(), one_by_one.inventory_changes(id, 100).unwrap());
    }
    let device = grouped.device(a).unwrap().unwrap();
    assert_eq!((device.last_seq, device.n_reports, device.hostname.as_str()), (7, 3, "pc-a3"));
    // The indexes moved from the first hostname to the last in one step.
    assert!(grouped.find_devices("pc-a").unwrap().is_empty());
    assert!(grouped.find_devices("pc-a2").unwrap().is_empty());
    assert_eq!(grouped.find_devices("pc-a3").unwrap()[0].device_id, a);
    assert_eq!(grouped.find_devices("SER-pc-a3").unwrap()[0].device_id, a);
    // The same audit trail, event for event, and the same tree head.
    assert_eq!(grouped.audit_head().unwrap(), one_by_one.audit_head().unwrap());
    assert_eq!(grouped.audit_entries(0, 1000).unwrap(), one_by_one.audit_entries(0, 1000).unwrap());
    assert_eq!(grouped.device_events(a).unwrap().len(), one_by_one.device_events(a).unwrap().len());
}

#[test]
fn an_empty_group_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    assert_eq!(store.commit_reports(&[]).unwrap(), Vec::new());
    assert_eq!(store.audit_head().unwrap().size, 0);
}

#[test]
fn the_stored_envelope_encoding_is_unchanged() {
    let envelope = report(DeviceId::random(), 1, "payload", "pc").envelope;
    let by_ref = rmp_serde::to_vec_named(&super::VersionedEnvelopeRef::V1(&envelope)).unwrap();
    assert_eq!(by_ref, encode(&VersionedEnvelope::V1(envelope)));
}
