//! Disposal in the store: destruction records, the evidence the `sanitised`
//! guard rests on, disposals written with their transition, ghost alerts.

use custodian_proto::identity::DeviceId;

use super::*;
use crate::disposal::{DestructionInput, DisposalRoute, check_destruction};
use crate::lifecycle::{GuardError, GuardInputs, check_guard};
use crate::sanitisation::sanitisation_coverage;
use crate::store::attestation::IncomingAttestation;
use crate::store::test_support::{enroll, envelope, report_with_disks, temp_store};
use crate::store::{CommitOutcome, DeviceKind, ExpectedDevice, TransitionAttributes, TransitionOutcome};

const NOW: i64 = 1_790_000_000_000;

fn wiped(store: &Store, pc: DeviceId, seq: u64, serial: &str, passed: bool) {
    wiped_at(store, pc, seq, serial, passed, 1000, 1000);
}

/// A wipe attestation that finished at `finished_at_ms` by its signer's
/// clock and reached the server at `received_at_ms`.
fn wiped_at(
    store: &Store,
    pc: DeviceId,
    seq: u64,
    serial: &str,
    passed: bool,
    finished_at_ms: i64,
    received_at_ms: i64,
) {
    let att = IncomingAttestation {
        signer: pc,
        seq,
        envelope: envelope(
            format!("att {pc} {seq} {serial}").into_bytes(),
            custodian_proto::envelope::WIPE_ATTESTATION_PAYLOAD_TYPE,
            received_at_ms,
        ),
        disk_serial: serial.to_owned(),
        source_device: Some(pc),
        passed,
        finished_at_ms,
    };
    assert_eq!(store.commit_attestation(&att).unwrap(), Ok(CommitOutcome::Accepted));
}

fn destroyed(store: &Store, serial: &str) -> Result<u64, crate::disposal::RecordDestructionError> {
    let input = DestructionInput {
        serial: serial.to_owned(),
        method: "shred".to_owned(),
        contractor: "Shredco".to_owned(),
        certificate_ref: "CD-1".to_owned(),
        date: "2026-01-02".to_owned(),
        witness: "Jo".to_owned(),
    };
    store.record_destruction(&check_destruction(&input, "alice (admin)", NOW).unwrap()).unwrap()
}

fn event_at(store: &Store, seq: u64) -> AuditEvent {
    AuditEvent::from_bytes(&store.audit_entry(seq).unwrap().unwrap().bytes).unwrap()
}

/// What the `sanitised` guard says for `pc` now, had it been retired
/// before any evidence and its latest inventory arrived before too.
fn gate(store: &Store, pc: DeviceId) -> Result<Vec<String>, GuardError> {
    gate_in(store, pc, EvidenceWindow { retired_at_ms: 0, inventory_received_at_ms: 0 })
}

/// What the `sanitised` guard says for `pc` now, with evidence counted in `window`.
fn gate_in(store: &Store, pc: DeviceId, window: EvidenceWindow) -> Result<Vec<String>, GuardError> {
    let inventory = store.latest_inventory(pc).unwrap().unwrap().decode().unwrap();
    let proof = store.sanitisation_proof(pc, &inventory, window).unwrap();
    let coverage = sanitisation_coverage(&inventory, &proof.evidence);
    let inputs = GuardInputs { compliance: None, coverage: Some(coverage) };
    check_guard(LifecycleState::Sanitised, &inputs, false)
        .map(|_| proof.hashes.iter().map(|h| h.name.clone()).collect())
}

#[test]
fn two_disks_one_attestation_is_refused_naming_the_other_disk() {
    let (_dir, store) = temp_store();
    let pc = enroll(&store, "ward-pc", DeviceKind::Workstation);
    store.commit_report(&report_with_disks(pc, 1, &["S1", "S2"])).unwrap().unwrap();
    wiped(&store, pc, 2, "S1", true);
    wiped(&store, pc, 3, "S2", false);
    let err = gate(&store, pc).unwrap_err();
    assert_eq!(err, GuardError::DisksNotCovered(vec!["sdb (serial S2)".to_owned()]));
    assert!(err.to_string().contains("not covered: sdb (serial S2)"), "{err}");
}

#[test]
fn two_wiped_disks_or_one_wiped_and_one_destroyed_pass() {
    let (_dir, store) = temp_store();
    let pc = enroll(&store, "ward-pc", DeviceKind::Workstation);
    store.commit_report(&report_with_disks(pc, 1, &["S1", "S2"])).unwrap().unwrap();
    wiped(&store, pc, 2, "S1", true);
    wiped(&store, pc, 3, "S2", true);
    assert_eq!(gate(&store, pc).unwrap(), ["wipe_attestation S1", "wipe_attestation S2"]);

    let other = enroll(&store, "ward-pc-2", DeviceKind::Workstation);
    store.commit_report(&report_with_disks(other, 1, &["T1", "T2"])).unwrap().unwrap();
    wiped(&store, other, 2, "T1", true);
    assert!(gate(&store, other).is_err());
    destroyed(&store, "t2").unwrap();
    assert_eq!(gate(&store, other).unwrap(), ["wipe_attestation T1", "destruction_record T2"]);
}

#[test]
fn a_wipe_from_before_the_retirement_does_not_count() {
    let (_dir, store) = temp_store();
    let pc = enroll(&store, "ward-pc", DeviceKind::Workstation);
    store.commit_report(&report_with_disks(pc, 1, &["S1"])).unwrap().unwrap();
    let retired = EvidenceWindow { retired_at_ms: NOW, inventory_received_at_ms: 1 };
    // Wiped, passed, a year before the machine was retired: it was in use since.
    let year = 365 * 24 * 3600 * 1000;
    wiped_at(&store, pc, 2, "S1", true, NOW - year, NOW - year);
    let err = gate_in(&store, pc, retired).unwrap_err();
    assert!(err.to_string().contains("sda (serial S1: its passing wipe (finished"), "{err}");
    assert!(err.to_string().contains("is from before the machine was retired"), "{err}");
    assert!(err.to_string().contains("wipe it again"), "{err}");
    // A wipe done before the retirement but delivered after it does not count either.
    wiped_at(&store, pc, 3, "S1", true, NOW - 2 * CLOCK_SKEW_ALLOWANCE_MS, NOW + 10);
    assert!(gate_in(&store, pc, retired).is_err());
    // After it (the signer's clock may be behind the server's by the allowance): covered.
    wiped_at(&store, pc, 4, "S1", true, NOW - CLOCK_SKEW_ALLOWANCE_MS / 2, NOW + 20);
    assert_eq!(gate_in(&store, pc, retired).unwrap(), ["wipe_attestation S1"]);
}

#[test]
fn a_disk_reported_after_its_destruction_was_recorded_is_not_covered() {
    let (_dir, store) = temp_store();
    let pc = enroll(&store, "ward-pc", DeviceKind::Workstation);
    store.commit_report(&report_with_disks(pc, 1, &["S1"])).unwrap().unwrap();
    destroyed(&store, "S1").unwrap();
    let before = EvidenceWindow { retired_at_ms: 0, inventory_received_at_ms: NOW - 1 };
    assert_eq!(gate_in(&store, pc, before).unwrap(), ["destruction_record S1"]);
    let after = EvidenceWindow { retired_at_ms: 0, inventory_received_at_ms: NOW + 1 };
    let err = gate_in(&store, pc, after).unwrap_err();
    assert!(err.to_string().contains("but the machine's latest inventory, received after that"), "{err}");
    assert!(err.to_string().contains("still lists it; check the serial"), "{err}");
}

#[test]
fn a_disk_is_destroyed_once_and_the_event_carries_the_record_hash() {
    let (_dir, store) = temp_store();
    let seq = destroyed(&store, "D1").unwrap();
    let err = destroyed(&store, "d1").unwrap_err();
    assert!(err.to_string().contains("already has a destruction record (shred by Shredco"), "{err}");
    let record = store.destruction("D1").unwrap().unwrap();
    let event = event_at(&store, seq);
    assert_eq!(event.kind, EventKind::DiskDestroyed);
    assert_eq!(event.evidence[0].sha256, record.sha256_hex());
    assert_eq!(event.details["witness"], "Jo");
}

#[test]
fn a_disposal_is_written_with_its_transition() {
    let (_dir, store) = temp_store();
    let pc = enroll(&store, "ward-pc", DeviceKind::Workstation);
    let disposal = Disposal {
        route: DisposalRoute::Recycle,
        contractor: "Recyclers Ltd".to_owned(),
        consignment_ref: "WEEE-9".to_owned(),
        disposed_at_ms: NOW,
        disposed_by: "alice (admin)".to_owned(),
        audit_seq: 0,
    };
    let event = AuditEvent::new(NOW, "alice (admin)", EventKind::DeviceTransitioned, Some(pc));
    let attrs = TransitionAttributes::default();
    // From the wrong state nothing is written.
    let res = store
        .transition_recording(
            pc,
            ExpectedDevice { state: LifecycleState::Sanitised, last_seq: None },
            LifecycleState::Disposed,
            &attrs,
            event.clone(),
            Some(&disposal),
        )
        .unwrap();
    assert!(matches!(res, Some(TransitionOutcome::StateChanged(LifecycleState::Staged))), "{res:?}");
    assert!(store.disposals().unwrap().is_empty());
    let res = store
        .transition_recording(
            pc,
            ExpectedDevice { state: LifecycleState::Staged, last_seq: None },
            LifecycleState::Disposed,
            &attrs,
            event,
            Some(&disposal),
        )
        .unwrap();
    let Some(TransitionOutcome::Moved(device, seq)) = res else { panic!("moved: {res:?}") };
    assert!(device.revocation.is_some(), "disposal revokes");
    let stored = store.disposal(pc).unwrap().unwrap();
    assert_eq!(stored, Disposal { audit_seq: seq, ..disposal });
    assert_eq!(store.disposals().unwrap(), vec![(pc, stored)]);
}

#[test]
fn a_ghost_has_one_open_alert_until_acknowledged() {
    let (_dir, store) = temp_store();
    let pc = enroll(&store, "ward-pc", DeviceKind::Workstation);
    let before = store.audit_head().unwrap().size;
    let first = store.record_ghost_call(pc, LifecycleState::Disposed, NOW).unwrap();
    let again = store.record_ghost_call(pc, LifecycleState::Disposed, NOW + 5).unwrap();
    assert_eq!((again.id, again.calls, again.last_seen_ms), (first.id, 2, NOW + 5));
    assert_eq!(store.audit_head().unwrap().size, before + 1, "one event, however often it calls");
    let event = event_at(&store, first.audit_seq);
    assert_eq!((event.kind, event.details["severity"].as_str()), (EventKind::GhostCall, "high"));
    assert_eq!(store.alerts(false).unwrap().len(), 1);

    assert!(matches!(
        store.acknowledge_alert(first.id + 999, "bob (admin)", "x", NOW),
        Err(AcknowledgeAlertError::Unknown(_))
    ));
    let (acked, seq) = store.acknowledge_alert(first.id, "bob (admin)", "found in the skip", NOW + 10).unwrap();
    assert_eq!(acked.acknowledgement.unwrap().note, "found in the skip");
    assert_eq!(event_at(&store, seq).kind, EventKind::AlertAcknowledged);
    assert!(store.alerts(false).unwrap().is_empty());
    assert_eq!(store.alerts(true).unwrap().len(), 1);
    let err = store.acknowledge_alert(first.id, "bob (admin)", "again", NOW).unwrap_err();
    assert!(err.to_string().contains("already acknowledged by bob (admin)"), "{err}");
    // A later call opens a new alert.
    let next = store.record_ghost_call(pc, LifecycleState::Disposed, NOW + 20).unwrap();
    assert_ne!(next.id, first.id);
}
