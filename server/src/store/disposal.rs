//! Disposal in the store: destruction records, the disposal of each machine
//! that left, and ghost alerts.
//!
//! Trees (opened on first use):
//! - `destructions`: `lowercase(disk serial)` → [`DestructionRecord`],
//!   versioned; a disk is destroyed once;
//! - `disposals`: device id (16 bytes) → [`Disposal`], versioned, written in
//!   the same transaction as the move to `disposed` (see
//!   [`Store::transition_recording`]);
//! - `alerts`: alert id (big-endian u64) → [`Alert`], versioned;
//! - `idx_open_alerts`: device id → alert id of its one open alert;
//! - `certificates`: device id → [`StoredCertificateV1`], versioned, the
//!   certificate of sanitisation issued when it was disposed of.
//!
//! Each change is written in one transaction with its audit event. A ghost
//! that keeps calling bumps its open alert's counter and last-seen time
//! without a further event, so it cannot flood the audit trail.

use std::collections::BTreeSet;

use custodian_proto::identity::DeviceId;
use custodian_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::{Store, StoreError, audit, decode, encode, flatten_tx_error};
use crate::audit::event::{AuditEvent, EventKind, Evidence};
use crate::disposal::{
    AcknowledgementV1, Alert, AlertV1, DestructionRecord, DestructionRecordV1, Disposal, DisposalV1, GHOST_SEVERITY,
    RecordDestructionError,
};
use crate::lifecycle::LifecycleState;
use crate::sanitisation::SanitisationEvidence;

const DESTRUCTIONS: &str = "destructions";
pub(super) const DISPOSALS: &str = "disposals";
const ALERTS: &str = "alerts";
const IDX_OPEN_ALERTS: &str = "idx_open_alerts";
const CERTIFICATES: &str = "certificates";

/// A certificate of sanitisation as issued: the exact signed bytes, the
/// signature and the evidence files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCertificateV1 {
    /// `certificate.json`, exactly as signed.
    #[serde(with = "serde_bytes")]
    pub json: Vec<u8>,
    /// The Ed25519 signature.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// `(file name, bytes)` of each piece of evidence.
    pub evidence: Vec<(String, serde_bytes::ByteBuf)>,
}

#[derive(Serialize, Deserialize)]
enum VersionedCertificate {
    V1(StoredCertificateV1),
}

#[derive(Serialize, Deserialize)]
enum VersionedDestruction {
    V1(DestructionRecordV1),
}

#[derive(Serialize, Deserialize)]
pub(super) enum VersionedDisposal {
    V1(DisposalV1),
}

#[derive(Serialize, Deserialize)]
enum VersionedAlert {
    V1(AlertV1),
}

/// Why an alert could not be acknowledged. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum AcknowledgeAlertError {
    /// No alert has this id.
    #[error("no alert {0}")]
    Unknown(u64),
    /// It was acknowledged already.
    #[error("alert {id} was already acknowledged by {by}")]
    AlreadyAcknowledged {
        /// The alert.
        id: u64,
        /// Who acknowledged it.
        by: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn destruction_key(serial: &str) -> Vec<u8> {
    serial.trim().to_lowercase().into_bytes()
}

fn abort<E>(e: StoreError) -> ConflictableTransactionError<E>
where
    E: From<StoreError>,
{
    ConflictableTransactionError::Abort(e.into())
}

fn lift(e: ConflictableTransactionError<StoreError>) -> ConflictableTransactionError<AcknowledgeAlertError> {
    match e {
        ConflictableTransactionError::Abort(e) => ConflictableTransactionError::Abort(e.into()),
        ConflictableTransactionError::Conflict => ConflictableTransactionError::Conflict,
        ConflictableTransactionError::Storage(e) => ConflictableTransactionError::Storage(e),
    }
}

/// How far a signer's clock may be behind the server's for its wipe to
/// still count as done after the machine's retirement.
pub const CLOCK_SKEW_ALLOWANCE_MS: i64 = 60 * 60 * 1000;

/// What sanitisation evidence must postdate to count.
#[derive(Debug, Clone, Copy)]
pub struct EvidenceWindow {
    /// When the machine was last retired: a wipe must be done after it.
    pub retired_at_ms: i64,
    /// When the latest inventory arrived: a disk recorded destroyed before
    /// that was still in the machine after it.
    pub inventory_received_at_ms: i64,
}

/// Whether a wipe was done after `since_ms`: it finished then or later by
/// the signer's clock (allowing [`CLOCK_SKEW_ALLOWANCE_MS`]) and reached the
/// server then or later.
pub fn done_since(att: &super::attestation::AttestationRecord, since_ms: i64) -> bool {
    att.envelope.received_at_ms >= since_ms && att.finished_at_ms >= since_ms.saturating_sub(CLOCK_SKEW_ALLOWANCE_MS)
}

/// The evidence behind a machine's sanitisation: which disks are covered
/// (and why other evidence does not count), and the hashes of the
/// attestations and destruction records covering them.
#[derive(Debug, Clone, Default)]
pub struct SanitisationProof {
    /// Serials covered, for [`crate::sanitisation::sanitisation_coverage`].
    pub evidence: SanitisationEvidence,
    /// One entry per attestation or destruction record relied on.
    pub hashes: Vec<Evidence>,
}

impl Store {
    fn disposal_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(name)?)
    }

    /// Records a destruction, with its `disk_destroyed` audit event (the
    /// record's SHA-256 as evidence). Returns the event's sequence number.
    /// Not durable until [`Store::flush`].
    pub fn record_destruction(
        &self,
        record: &DestructionRecord,
    ) -> Result<Result<u64, RecordDestructionError>, StoreError> {
        let destructions = self.disposal_tree(DESTRUCTIONS)?;
        let key = destruction_key(&record.serial);
        let mut event =
            AuditEvent::new(record.recorded_at_ms, record.recorded_by.clone(), EventKind::DiskDestroyed, None)
                .with_detail("disk_serial", record.serial.clone())
                .with_detail("method", record.method.as_str())
                .with_detail("contractor", record.contractor.clone())
                .with_detail("certificate_ref", record.certificate_ref.clone())
                .with_detail("date", record.date.clone())
                .with_detail("witness", record.witness.clone());
        event.evidence.push(Evidence::of("destruction_record", &record.canonical_bytes()));
        let _gate = self.transaction_gate();
        (&destructions, &self.audit)
            .transaction(|(destructions, audit_tree)| {
                if let Some(bytes) = destructions.get(&key)? {
                    let VersionedDestruction::V1(old) = decode(DESTRUCTIONS, &bytes).map_err(abort)?;
                    return Ok(Err(RecordDestructionError::AlreadyRecorded {
                        serial: old.serial,
                        method: old.method,
                        contractor: old.contractor,
                        certificate_ref: old.certificate_ref,
                    }));
                }
                destructions.insert(key.as_slice(), encode(&VersionedDestruction::V1(record.clone())))?;
                Ok(Ok(audit::append(audit_tree, event.clone())?))
            })
            .map_err(flatten_tx_error)
    }

    /// The destruction record of the disk `serial` (case-insensitive).
    pub fn destruction(&self, serial: &str) -> Result<Option<DestructionRecord>, StoreError> {
        let destructions = self.disposal_tree(DESTRUCTIONS)?;
        destructions
            .get(destruction_key(serial))?
            .map(|bytes| decode::<VersionedDestruction>(DESTRUCTIONS, &bytes).map(|VersionedDestruction::V1(r)| r))
            .transpose()
    }

    /// For each fixed disk of `inventory` (a device's latest, received at
    /// `window.inventory_received_at_ms`): whether a verified attestation
    /// that the wipe passed applies to it (see [`Store::wipe_coverage`]) and
    /// counts in `window`, or it has a destruction record that does; with
    /// the hashes of what covers it, and why evidence that exists does not
    /// count.
    pub fn sanitisation_proof(
        &self,
        device_id: DeviceId,
        inventory: &pb::Inventory,
        window: EvidenceWindow,
    ) -> Result<SanitisationProof, StoreError> {
        let mut proof = SanitisationProof::default();
        let mut seen = BTreeSet::new();
        for disk in inventory.storage.iter().filter(|d| !d.removable) {
            let Some(serial) = custodian_proto::readable_value(disk.serial.as_ref()).filter(|s| !s.trim().is_empty())
            else {
                continue;
            };
            if !seen.insert(serial.to_owned()) {
                continue;
            }
            if let Some(att) = self.covering_attestation(device_id, serial, window.retired_at_ms)? {
                proof.evidence.wiped_serials.insert(serial.to_owned());
                proof.hashes.push(Evidence::of(&format!("wipe_attestation {serial}"), &att.envelope.payload));
            } else if let Some(att) = self.covering_attestation(device_id, serial, i64::MIN)? {
                proof.evidence.not_counted.insert(
                    serial.to_owned(),
                    format!(
                        "its passing wipe (finished {}) is from before the machine was retired ({}), and the disk \
                         may have been written since; wipe it again",
                        crate::ctl::format_time(att.finished_at_ms),
                        crate::ctl::format_time(window.retired_at_ms)
                    ),
                );
            }
            if let Some(record) = self.destruction(serial)? {
                if record.recorded_at_ms >= window.inventory_received_at_ms {
                    proof.evidence.destroyed_serials.insert(serial.to_owned());
                    proof.hashes.push(Evidence::of(&format!("destruction_record {serial}"), &record.canonical_bytes()));
                } else {
                    proof.evidence.not_counted.insert(
                        serial.to_owned(),
                        format!(
                            "it was recorded destroyed ({}), but the machine's latest inventory, received after \
                             that ({}), still lists it; check the serial",
                            crate::ctl::format_time(record.recorded_at_ms),
                            crate::ctl::format_time(window.inventory_received_at_ms)
                        ),
                    );
                }
            }
        }
        Ok(proof)
    }

    /// The latest attestation that a wipe of the disk `serial` passed, that
    /// applies to the device (see [`Store::wipe_coverage`]), and that was
    /// done after `since_ms`: it finished then or later (by the signer's
    /// clock, allowing [`CLOCK_SKEW_ALLOWANCE_MS`]) and reached the server
    /// then or later. A wipe from before the machine was retired does not
    /// say that the disk holds no data now.
    pub fn covering_attestation(
        &self,
        device_id: DeviceId,
        serial: &str,
        since_ms: i64,
    ) -> Result<Option<super::attestation::AttestationRecord>, StoreError> {
        let mut passed = None;
        for att in self.attestations_for_serial(serial)? {
            if att.passed && done_since(&att, since_ms) && self.applies_to(&att, device_id)? {
                passed = Some(att);
            }
        }
        Ok(passed)
    }

    /// Stores the certificate issued for a disposed device, with its
    /// `certificate_issued` audit event (the certificate's SHA-256 as
    /// evidence). A device keeps the first certificate issued: returns the
    /// stored one. Not durable until [`Store::flush`].
    pub fn put_certificate(
        &self,
        device_id: DeviceId,
        certificate: &StoredCertificateV1,
        now_ms: i64,
    ) -> Result<StoredCertificateV1, StoreError> {
        let certificates = self.disposal_tree(CERTIFICATES)?;
        let mut event = AuditEvent::new(now_ms, "server", EventKind::CertificateIssued, Some(device_id));
        event.evidence.push(Evidence::of("certificate_json", &certificate.json));
        let _gate = self.transaction_gate();
        (&certificates, &self.audit)
            .transaction(|(certificates, audit_tree)| {
                if let Some(bytes) = certificates.get(device_id.as_bytes())? {
                    let VersionedCertificate::V1(stored) = decode(CERTIFICATES, &bytes).map_err(abort)?;
                    return Ok(stored);
                }
                certificates.insert(device_id.as_bytes(), encode(&VersionedCertificate::V1(certificate.clone())))?;
                audit::append(audit_tree, event.clone())?;
                Ok(certificate.clone())
            })
            .map_err(flatten_tx_error)
    }

    /// The certificate issued for a disposed device.
    pub fn certificate(&self, device_id: DeviceId) -> Result<Option<StoredCertificateV1>, StoreError> {
        let certificates = self.disposal_tree(CERTIFICATES)?;
        certificates
            .get(device_id.as_bytes())?
            .map(|bytes| decode::<VersionedCertificate>(CERTIFICATES, &bytes).map(|VersionedCertificate::V1(c)| c))
            .transpose()
    }

    /// How the device left, if it was disposed of.
    pub fn disposal(&self, device_id: DeviceId) -> Result<Option<Disposal>, StoreError> {
        let disposals = self.disposal_tree(DISPOSALS)?;
        disposals
            .get(device_id.as_bytes())?
            .map(|bytes| decode::<VersionedDisposal>(DISPOSALS, &bytes).map(|VersionedDisposal::V1(d)| d))
            .transpose()
    }

    /// Every disposal, with its device id, oldest first.
    pub fn disposals(&self) -> Result<Vec<(DeviceId, Disposal)>, StoreError> {
        let disposals = self.disposal_tree(DISPOSALS)?;
        let mut out = Vec::new();
        for item in disposals.iter() {
            let (key, bytes) = item?;
            let id: [u8; 16] = key
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::Decode { tree: DISPOSALS, error: "key is not a device id".to_owned() })?;
            let VersionedDisposal::V1(disposal) = decode(DISPOSALS, &bytes)?;
            out.push((DeviceId::from_bytes(id), disposal));
        }
        out.sort_by_key(|(id, d)| (d.disposed_at_ms, *id));
        Ok(out)
    }

    /// Records a call from a machine in `state` (sanitised, disposed or
    /// lost) that was refused: a new open alert with a high-severity
    /// `ghost_call` audit event, or, when the device already has an open
    /// alert, one more call counted on it (no event). Not durable until
    /// [`Store::flush`].
    pub fn record_ghost_call(
        &self,
        device_id: DeviceId,
        state: LifecycleState,
        now_ms: i64,
    ) -> Result<Alert, StoreError> {
        let alerts = self.disposal_tree(ALERTS)?;
        let open = self.disposal_tree(IDX_OPEN_ALERTS)?;
        let new_id = self.db.generate_id()?;
        let event = AuditEvent::new(now_ms, AuditEvent::device_actor(device_id), EventKind::GhostCall, Some(device_id))
            .with_reason(format!("a {state} machine called in; its call was refused"))
            .with_detail("severity", GHOST_SEVERITY)
            .with_detail("state", state.as_str())
            .with_detail("alert_id", new_id.to_string());
        let _gate = self.transaction_gate();
        (&alerts, &open, &self.audit)
            .transaction(|(alerts, open, audit_tree)| {
                if let Some(id) = open.get(device_id.as_bytes())?
                    && let Some(bytes) = alerts.get(&id)?
                {
                    let VersionedAlert::V1(mut alert) = decode(ALERTS, &bytes).map_err(abort)?;
                    alert.calls += 1;
                    alert.last_seen_ms = alert.last_seen_ms.max(now_ms);
                    alerts.insert(&id, encode(&VersionedAlert::V1(alert.clone())))?;
                    return Ok(alert);
                }
                let audit_seq = audit::append(audit_tree, event.clone())?;
                let alert = AlertV1 {
                    id: new_id,
                    device_id,
                    state,
                    first_seen_ms: now_ms,
                    last_seen_ms: now_ms,
                    calls: 1,
                    audit_seq,
                    acknowledgement: None,
                };
                alerts.insert(&new_id.to_be_bytes(), encode(&VersionedAlert::V1(alert.clone())))?;
                open.insert(device_id.as_bytes(), &new_id.to_be_bytes())?;
                Ok(alert)
            })
            .map_err(flatten_tx_error)
    }

    /// Alerts, oldest first: the open ones, or with `all` every one.
    pub fn alerts(&self, all: bool) -> Result<Vec<Alert>, StoreError> {
        let alerts = self.disposal_tree(ALERTS)?;
        let mut out = Vec::new();
        for bytes in alerts.iter().values() {
            let VersionedAlert::V1(alert) = decode(ALERTS, &bytes?)?;
            if all || alert.acknowledgement.is_none() {
                out.push(alert);
            }
        }
        Ok(out)
    }

    /// Acknowledges an open alert, with an `alert_acknowledged` audit event.
    /// Returns the alert and the event's sequence number. Not durable until
    /// [`Store::flush`].
    pub fn acknowledge_alert(
        &self,
        id: u64,
        by: &str,
        note: &str,
        now_ms: i64,
    ) -> Result<(Alert, u64), AcknowledgeAlertError> {
        let alerts = self.disposal_tree(ALERTS)?;
        let open = self.disposal_tree(IDX_OPEN_ALERTS)?;
        let _gate = self.transaction_gate();
        (&alerts, &open, &self.audit)
            .transaction(|(alerts, open, audit_tree)| {
                let key = id.to_be_bytes();
                let Some(bytes) = alerts.get(key)? else {
                    return Err(ConflictableTransactionError::Abort(AcknowledgeAlertError::Unknown(id)));
                };
                let VersionedAlert::V1(mut alert) = decode(ALERTS, &bytes).map_err(abort)?;
                if let Some(ack) = &alert.acknowledgement {
                    return Err(ConflictableTransactionError::Abort(AcknowledgeAlertError::AlreadyAcknowledged {
                        id,
                        by: ack.by.clone(),
                    }));
                }
                alert.acknowledgement =
                    Some(AcknowledgementV1 { by: by.to_owned(), at_ms: now_ms, note: note.to_owned() });
                alerts.insert(&key, encode(&VersionedAlert::V1(alert.clone())))?;
                open.remove(alert.device_id.as_bytes())?;
                let event = AuditEvent::new(now_ms, by, EventKind::AlertAcknowledged, Some(alert.device_id))
                    .with_reason(note)
                    .with_detail("alert_id", id.to_string())
                    .with_detail("calls", alert.calls.to_string())
                    .with_detail("raised_by_event", alert.audit_seq.to_string());
                let seq = audit::append(audit_tree, event).map_err(lift)?;
                Ok((alert, seq))
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Abort(e) => e,
                sled::transaction::TransactionError::Storage(e) => AcknowledgeAlertError::Store(e.into()),
            })
    }
}

#[cfg(test)]
mod tests;
