//! Wipe attestations in the store.
//!
//! Trees:
//! - `attestations`: signer device id ‖ seq (big-endian u64) →
//!   [`AttestationRecord`] (the envelope verbatim plus the fields the server
//!   matches and lists by);
//! - `idx_attestation_serial`: `lowercase(disk serial) 0x00 signer id ‖ seq` → empty.
//!
//! Attestations share the signer's sequence with its reports: committing one
//! moves `last_seq` on, and one at or below `last_seq` is a duplicate or a
//! replay by the same rule as a report. Nothing here decides which machine a
//! disk belongs to when the attestation is stored: that is read from the
//! latest inventories when asked ([`Store::wipe_coverage`],
//! [`Store::unmatched_attestations`]), so an attestation that arrives before
//! the inventory naming its disk is matched as soon as that inventory does.

use std::collections::HashSet;

use custodian_proto::identity::DeviceId;
use custodian_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use crate::audit::event::{AuditEvent, EventKind, Evidence};

use super::{
    CommitOutcome, CommitReportError, DeviceKind, DeviceRecord, Store, StoreError, StoredEnvelope, decode, device_in,
    encode, flatten_tx_error, index_prefix, put_device, replay_outcome, report_key,
};

pub(super) const ATTESTATIONS_TREE: &str = "attestations";
pub(super) const IDX_SERIAL_TREE: &str = "idx_attestation_serial";

/// A stored wipe attestation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationRecordV1 {
    /// The signing device.
    pub signer: DeviceId,
    /// Its sequence number.
    pub seq: u64,
    /// The envelope as received.
    pub envelope: StoredEnvelope,
    /// The disk's serial (empty when the wiping machine could not read it).
    pub disk_serial: String,
    /// The machine the disk came out of, when the machine wiped its own disk.
    pub source_device: Option<DeviceId>,
    /// Whether the attestation says the wipe passed.
    pub passed: bool,
    /// When the wipe ended, Unix ms.
    pub finished_at_ms: i64,
}

pub use AttestationRecordV1 as AttestationRecord;

#[derive(Serialize, Deserialize)]
enum VersionedAttestation {
    V1(AttestationRecordV1),
}

/// A verified attestation on its way into the store.
#[derive(Debug, Clone)]
pub struct IncomingAttestation {
    /// The signing device (from its certificate, checked against the payload).
    pub signer: DeviceId,
    /// Its sequence number.
    pub seq: u64,
    /// The envelope as received.
    pub envelope: StoredEnvelope,
    /// The disk's serial.
    pub disk_serial: String,
    /// The machine the disk came out of, if named.
    pub source_device: Option<DeviceId>,
    /// Whether the wipe passed.
    pub passed: bool,
    /// When it ended, Unix ms.
    pub finished_at_ms: i64,
}

/// One disk of a machine's latest inventory and its attestations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskCoverage {
    /// Kernel name in the inventory.
    pub name: String,
    /// Serial, if the inventory read one.
    pub serial: Option<String>,
    /// Model, if read.
    pub model: Option<String>,
    /// Capacity, bytes.
    pub size_bytes: u64,
    /// The latest attestation that says the wipe passed.
    pub passed: Option<AttestationRecord>,
    /// The latest attestation of any result.
    pub latest: Option<AttestationRecord>,
}

impl Store {
    /// Stores one verified attestation in the signer's sequence; identical
    /// resends are duplicates, other reuse of a sequence number a replay.
    /// Not durable until [`Store::flush`].
    pub fn commit_attestation(
        &self,
        att: &IncomingAttestation,
    ) -> Result<Result<CommitOutcome, CommitReportError>, StoreError> {
        let key = report_key(att.signer, att.seq);
        let record = AttestationRecord {
            signer: att.signer,
            seq: att.seq,
            envelope: att.envelope.clone(),
            disk_serial: att.disk_serial.clone(),
            source_device: att.source_device,
            passed: att.passed,
            finished_at_ms: att.finished_at_ms,
        };
        let mut event = AuditEvent::new(
            att.envelope.received_at_ms,
            AuditEvent::device_actor(att.signer),
            EventKind::WipeAttested,
            Some(att.source_device.unwrap_or(att.signer)),
        )
        .with_detail("attestation_seq", att.seq.to_string())
        .with_detail("disk_serial", att.disk_serial.clone())
        .with_detail("passed", att.passed.to_string());
        event.evidence.push(Evidence::of("attestation_payload", &att.envelope.payload));
        let trees = (
            &self.devices,
            &self.idx_hostname,
            &self.idx_serial,
            &self.idx_facets,
            &self.attestations,
            &self.idx_attestation_serial,
            &self.audit,
        );
        let _hot = self.settled()?;
        let _gate = self.transaction_gate();
        let res = trees.transaction(
            |(devices, idx_hostname, idx_serial, idx_facets, attestations, idx_att_serial, audit_tree)| {
                let Some(old) = device_in(devices, att.signer)? else {
                    return Ok(Err(CommitReportError::UnknownDevice(att.signer)));
                };
                if old.revocation.is_some() {
                    return Ok(Err(CommitReportError::Revoked(att.signer)));
                }
                if old.state.refuses_device() {
                    return Ok(Err(CommitReportError::Refused { device_id: att.signer, state: old.state }));
                }
                if att.seq <= old.last_seq {
                    let stored = match attestations.get(key)? {
                        Some(bytes) => Some(
                            decode::<VersionedAttestation>(ATTESTATIONS_TREE, &bytes)
                                .map_err(ConflictableTransactionError::Abort)?
                                .into_record()
                                .envelope,
                        ),
                        None => None,
                    };
                    return Ok(replay_outcome(stored.as_ref(), &att.envelope, att.seq, old.last_seq));
                }
                attestations.insert(key.as_slice(), encode(&VersionedAttestation::V1(record.clone())))?;
                if !att.disk_serial.trim().is_empty() {
                    let mut idx = index_prefix(&att.disk_serial);
                    idx.extend_from_slice(&key);
                    idx_att_serial.insert(idx, &[])?;
                }
                let mut device = old.clone();
                device.last_seq = att.seq;
                device.last_seen_ms = Some(att.envelope.received_at_ms);
                put_device(devices, idx_hostname, idx_serial, idx_facets, Some(&old), &device)?;
                super::audit::append(audit_tree, event.clone())?;
                Ok(Ok(CommitOutcome::Accepted))
            },
        );
        res.map_err(flatten_tx_error)
    }

    /// The attestation a device sent with sequence number `seq`.
    pub fn attestation(&self, signer: DeviceId, seq: u64) -> Result<Option<AttestationRecord>, StoreError> {
        self.attestations
            .get(report_key(signer, seq))?
            .map(|bytes| {
                decode::<VersionedAttestation>(ATTESTATIONS_TREE, &bytes).map(VersionedAttestation::into_record)
            })
            .transpose()
    }

    /// Every attestation naming the disk `serial` (case-insensitive), oldest
    /// wipe first.
    pub fn attestations_for_serial(&self, serial: &str) -> Result<Vec<AttestationRecord>, StoreError> {
        let mut out = Vec::new();
        for entry in self.idx_attestation_serial.scan_prefix(index_prefix(serial)) {
            let (key, _) = entry?;
            let start = key
                .len()
                .checked_sub(24)
                .ok_or(StoreError::Decode { tree: IDX_SERIAL_TREE, error: "key too short".to_owned() })?;
            if let Some(bytes) = self.attestations.get(&key[start..])? {
                out.push(decode::<VersionedAttestation>(ATTESTATIONS_TREE, &bytes)?.into_record());
            }
        }
        out.sort_by_key(|a| (a.finished_at_ms, a.envelope.received_at_ms));
        Ok(out)
    }

    /// Every attestation, in signer then sequence order.
    pub fn all_attestations(&self) -> Result<Vec<AttestationRecord>, StoreError> {
        self.attestations
            .iter()
            .values()
            .map(|bytes| Ok(decode::<VersionedAttestation>(ATTESTATIONS_TREE, &bytes?)?.into_record()))
            .collect()
    }

    /// The storage devices of the device's latest full inventory (empty when
    /// it has sent none). Heartbeats carry no inventory, so the latest report
    /// is not the place to look.
    pub fn latest_storage(&self, device: &DeviceRecord) -> Result<Vec<pb::StorageDevice>, StoreError> {
        match self.latest_inventory(device.device_id)? {
            Some(latest) => Ok(latest.decode()?.storage),
            None => Ok(Vec::new()),
        }
    }

    /// For each disk in the device's latest inventory: its serial and the
    /// attestations that apply to it. An attestation applies when it names
    /// the disk's serial and either came from a wipe station or from this
    /// machine about its own disk. The `sanitised` guard reads this.
    pub fn wipe_coverage(&self, device_id: DeviceId) -> Result<Vec<DiskCoverage>, StoreError> {
        let Some(device) = self.device(device_id)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for disk in self.latest_storage(&device)? {
            let serial = custodian_proto::readable_value(disk.serial.as_ref()).map(str::to_owned);
            let model = custodian_proto::readable_value(disk.model.as_ref()).map(str::to_owned);
            let mut passed = None;
            let mut latest = None;
            if let Some(serial) = serial.as_deref().filter(|s| !s.trim().is_empty()) {
                for att in self.attestations_for_serial(serial)? {
                    if !self.applies_to(&att, device_id)? {
                        continue;
                    }
                    if att.passed {
                        passed = Some(att.clone());
                    }
                    latest = Some(att);
                }
            }
            out.push(DiskCoverage { name: disk.name, serial, model, size_bytes: disk.size_bytes, passed, latest });
        }
        Ok(out)
    }

    pub(super) fn applies_to(&self, att: &AttestationRecord, device_id: DeviceId) -> Result<bool, StoreError> {
        if att.source_device == Some(device_id) {
            return Ok(true);
        }
        let signer_kind = self.device(att.signer)?.map(|d| d.kind);
        Ok(att.source_device.is_none() && signer_kind == Some(DeviceKind::WipeStation))
    }

    /// Attestations whose disk serial is in no device's latest inventory
    /// (including those with no serial at all): kept, and listed here.
    pub fn unmatched_attestations(&self) -> Result<Vec<AttestationRecord>, StoreError> {
        let mut serials = HashSet::new();
        for device in self.list_devices()? {
            for disk in self.latest_storage(&device)? {
                if let Some(serial) = custodian_proto::readable_value(disk.serial.as_ref()) {
                    serials.insert(serial.trim().to_lowercase());
                }
            }
        }
        let mut out: Vec<AttestationRecord> = self
            .all_attestations()?
            .into_iter()
            .filter(|a| a.disk_serial.trim().is_empty() || !serials.contains(&a.disk_serial.trim().to_lowercase()))
            .collect();
        out.sort_by_key(|a| a.envelope.received_at_ms);
        Ok(out)
    }
}

impl VersionedAttestation {
    fn into_record(self) -> AttestationRecordV1 {
        match self {
            Self::V1(record) => record,
        }
    }
}

#[cfg(test)]
mod tests;
