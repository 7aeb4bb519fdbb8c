//! Attestations in the store: the shared sequence, duplicates and replays,
//! matching to disks of the latest inventory, and the unmatched list.

use custodian_proto::identity::DeviceId;

use super::*;
use crate::store::test_support::{enroll, envelope, report_with_disks, temp_store};
use crate::store::{IncomingReport, ReportContent};

fn attestation(
    signer: DeviceId,
    seq: u64,
    serial: &str,
    source: Option<DeviceId>,
    passed: bool,
) -> IncomingAttestation {
    IncomingAttestation {
        signer,
        seq,
        envelope: envelope(
            format!("att {signer} {seq} {serial} {passed}").into_bytes(),
            custodian_proto::envelope::WIPE_ATTESTATION_PAYLOAD_TYPE,
            100 + seq as i64,
        ),
        disk_serial: serial.to_owned(),
        source_device: source,
        passed,
        finished_at_ms: 1000 + seq as i64,
    }
}

#[test]
fn attestations_share_the_report_sequence_and_its_replay_rules() {
    let (_dir, store) = temp_store();
    let pc = enroll(&store, "ward-pc", DeviceKind::Workstation);
    assert_eq!(store.commit_report(&report_with_disks(pc, 1, &["S1"])).unwrap(), Ok(CommitOutcome::Accepted));
    let att = attestation(pc, 2, "S1", Some(pc), true);
    assert_eq!(store.commit_attestation(&att).unwrap(), Ok(CommitOutcome::Accepted));
    assert_eq!(store.device(pc).unwrap().unwrap().last_seq, 2);
    // The same attestation again is a duplicate; anything else at seq 2 is a replay.
    assert_eq!(store.commit_attestation(&att).unwrap(), Ok(CommitOutcome::Duplicate));
    assert_eq!(
        store.commit_report(&report_with_disks(pc, 2, &["S1"])).unwrap(),
        Err(CommitReportError::Replayed { seq: 2, last_seq: 2 })
    );
    let altered = attestation(pc, 2, "S1", Some(pc), false);
    assert_eq!(store.commit_attestation(&altered).unwrap(), Err(CommitReportError::Replayed { seq: 2, last_seq: 2 }));
    assert_eq!(
        store.commit_attestation(&attestation(pc, 1, "S1", Some(pc), true)).unwrap(),
        Err(CommitReportError::Replayed { seq: 1, last_seq: 2 })
    );
    // Reports carry on after the attestation.
    assert_eq!(store.commit_report(&report_with_disks(pc, 3, &["S1"])).unwrap(), Ok(CommitOutcome::Accepted));
    let stored = store.attestation(pc, 2).unwrap().unwrap();
    assert_eq!(stored.envelope, att.envelope, "stored verbatim");
    assert_eq!(store.attestations_for_serial("s1").unwrap().len(), 1, "serial lookup ignores case");
}

#[test]
fn coverage_attaches_attestations_to_the_disks_of_the_latest_inventory() {
    let (_dir, store) = temp_store();
    let pc = enroll(&store, "ward-pc", DeviceKind::Workstation);
    let other = enroll(&store, "other-pc", DeviceKind::Workstation);
    let station = enroll(&store, "wipe-1", DeviceKind::WipeStation);
    store.commit_report(&report_with_disks(pc, 1, &["DISK-A", "DISK-B"])).unwrap().unwrap();
    store.commit_report(&report_with_disks(other, 1, &["DISK-C"])).unwrap().unwrap();
    // The machine wipes DISK-A itself (a failed try, then a pass).
    store.commit_attestation(&attestation(pc, 2, "DISK-A", Some(pc), false)).unwrap().unwrap();
    store.commit_attestation(&attestation(pc, 3, "DISK-A", Some(pc), true)).unwrap().unwrap();
    // A station wipes DISK-B, pulled from the machine: matched by serial.
    store.commit_attestation(&attestation(station, 1, "disk-b", None, true)).unwrap().unwrap();
    // Another workstation cannot vouch for this machine's disk.
    store.commit_attestation(&attestation(other, 2, "DISK-B", Some(other), true)).unwrap().unwrap();
    // A station's attestation for a disk no machine has.
    store.commit_attestation(&attestation(station, 2, "LOOSE-1", None, true)).unwrap().unwrap();
    store.commit_attestation(&attestation(station, 3, "", None, true)).unwrap().unwrap();

    let coverage = store.wipe_coverage(pc).unwrap();
    assert_eq!(coverage.len(), 2);
    let a = &coverage[0];
    assert_eq!(a.serial.as_deref(), Some("DISK-A"));
    assert_eq!(a.passed.as_ref().map(|r| (r.signer, r.seq)), Some((pc, 3)));
    assert_eq!(a.latest.as_ref().map(|r| r.seq), Some(3));
    let b = &coverage[1];
    assert_eq!(b.passed.as_ref().map(|r| (r.signer, r.seq)), Some((station, 1)));
    let c = store.wipe_coverage(other).unwrap();
    assert!(c[0].passed.is_none() && c[0].latest.is_none(), "DISK-C has no attestation");

    let unmatched: Vec<(DeviceId, u64)> =
        store.unmatched_attestations().unwrap().iter().map(|a| (a.signer, a.seq)).collect();
    assert!(unmatched.contains(&(station, 2)), "{unmatched:?}");
    assert!(unmatched.contains(&(station, 3)), "an attestation without a serial is kept and listed");
    assert!(!unmatched.contains(&(station, 1)));
    // Once a machine reports the loose disk, it is matched.
    store.commit_report(&report_with_disks(other, 3, &["DISK-C", "LOOSE-1"])).unwrap().unwrap();
    let unmatched: Vec<u64> = store.unmatched_attestations().unwrap().iter().map(|a| a.seq).collect();
    assert_eq!(unmatched, vec![3]);
    assert!(store.wipe_coverage(other).unwrap()[1].passed.is_some());
}

#[test]
fn attestations_from_unknown_or_revoked_devices_are_refused() {
    let (_dir, store) = temp_store();
    let ghost = DeviceId::random();
    assert_eq!(
        store.commit_attestation(&attestation(ghost, 1, "S", None, true)).unwrap(),
        Err(CommitReportError::UnknownDevice(ghost))
    );
    let pc = enroll(&store, "pc", DeviceKind::Workstation);
    store
        .revoke(
            pc,
            crate::store::Revocation { revoked_at_ms: 1, revoked_by: "a".to_owned(), reason: "lost".to_owned() },
        )
        .unwrap();
    assert_eq!(
        store.commit_attestation(&attestation(pc, 1, "S", Some(pc), true)).unwrap(),
        Err(CommitReportError::Revoked(pc))
    );
}

#[test]
fn disks_stay_matched_after_a_heartbeat() {
    // An unchanged machine sends heartbeats, which carry no inventory: its
    // disks are those of its latest full inventory, not of its latest report.
    let (_dir, store) = temp_store();
    let pc = enroll(&store, "ward-pc", DeviceKind::Workstation);
    let first = report_with_disks(pc, 1, &["S1"]);
    let ReportContent::Inventory { sha256, .. } = first.content else { unreachable!() };
    store.commit_report(&report_with_disks(pc, 1, &["S1"])).unwrap().unwrap();
    store.commit_attestation(&attestation(pc, 2, "S1", Some(pc), true)).unwrap().unwrap();
    let heartbeat = IncomingReport {
        content: ReportContent::Heartbeat { inventory_sha256: sha256 },
        envelope: envelope(b"heartbeat 3".to_vec(), custodian_proto::envelope::REPORT_PAYLOAD_TYPE, 3),
        ..report_with_disks(pc, 3, &[])
    };
    assert_eq!(store.commit_report(&heartbeat).unwrap(), Ok(CommitOutcome::Accepted));
    let coverage = store.wipe_coverage(pc).unwrap();
    assert_eq!(coverage.len(), 1, "{coverage:?}");
    assert_eq!(coverage[0].serial.as_deref(), Some("S1"));
    assert!(coverage[0].passed.is_some());
    assert!(store.unmatched_attestations().unwrap().is_empty(), "S1 is still this machine's disk");
}
