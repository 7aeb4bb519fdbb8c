//! Device records' report-driven fields, written to `devices` once per many
//! groups instead of once per report (decision 011).
//!
//! Every accepted report changes its device's record: `last_seq`,
//! `n_reports`, `last_seen_ms`, `last_report`, and, for an unchanged
//! inventory, the verdict's `seq` and `received_at_ms`. Those are the
//! record's *hot fields*. Reading, decoding, encoding and rewriting the whole
//! record for them was about 10 µs of the server's CPU per report.
//!
//! So the committer keeps the records it has touched in memory
//! ([`HotDevices`]). When a group changes a device's hot fields only, the
//! group's transaction writes them, for all such devices at once, as one
//! record in tree `device_hot` (group key → [`HotFieldsV1`] per device), and
//! leaves the device record as it was. Any other change (hostname, serial,
//! MACs, a changed inventory verdict) writes the whole record in that
//! transaction, as before. Every [`SETTLE_EVERY_GROUPS`] groups the
//! committer writes every deferred record and removes the `device_hot`
//! records, in the same transaction as that group, and starts afresh; it
//! does the same when it holds [`MAX_CACHED_DEVICES`] records.
//!
//! Everything else sees settled records: [`Store::settled`] applies the
//! `device_hot` records to the device records and removes them, in one
//! transaction, and is called by every reader of `devices` (before it reads)
//! and every other writer (which holds its guard through its own transaction,
//! so the committer cannot change a device under it). Opening the store does
//! the same, so a crash loses nothing: what the committer had in memory is in
//! `device_hot`, written in the same transaction as the reports.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use custodian_proto::identity::DeviceId;
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::records::{InventoryVerdictV1, ReportLocatorV1};
use super::{DeviceRecord, Store, StoreError, decode, device_in, encode, flatten_tx_error, put_device};

/// The tree's name.
pub(super) const TREE: &str = "device_hot";

/// How many groups may defer device records before the committer writes
/// them all: the most `device_hot` records a reader or a restart applies.
pub(super) const SETTLE_EVERY_GROUPS: usize = 64;

/// How many devices the committer keeps before it settles and starts
/// afresh, which bounds its memory (two records each) in a large fleet.
pub(super) const MAX_CACHED_DEVICES: usize = 16_384;

/// The devices the committer has read or changed since device records were
/// last settled.
#[derive(Default)]
pub(super) struct HotDevices {
    pub(super) devices: HashMap<DeviceId, Cached>,
    /// The keys of the `device_hot` records written since then.
    pub(super) pending: Vec<u64>,
}

/// A device's record as it is in `devices` and as it is now.
pub(super) struct Cached {
    pub(super) durable: DeviceRecord,
    pub(super) current: DeviceRecord,
}

/// A device's hot fields, as a group left them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct HotFieldsV1 {
    pub(super) device_id: DeviceId,
    pub(super) last_seq: u64,
    pub(super) n_reports: u64,
    pub(super) last_seen_ms: Option<i64>,
    pub(super) last_report: Option<ReportLocatorV1>,
    /// The inventory verdict's `seq` and `received_at_ms`, if it has one.
    pub(super) verdict: Option<(u64, i64)>,
}

#[derive(Serialize, Deserialize)]
enum VersionedHot {
    V1(Vec<HotFieldsV1>),
}

impl HotFieldsV1 {
    pub(super) fn of(device: &DeviceRecord) -> Self {
        Self {
            device_id: device.device_id,
            last_seq: device.last_seq,
            n_reports: device.n_reports,
            last_seen_ms: device.last_seen_ms,
            last_report: device.last_report,
            verdict: device.inventory_verdict.as_ref().map(|v| (v.seq, v.received_at_ms)),
        }
    }

    /// Sets `device`'s hot fields to these, unless the record is already
    /// past them (written whole by a later group).
    fn apply_to(&self, device: &mut DeviceRecord) {
        if device.last_seq >= self.last_seq {
            return;
        }
        device.last_seq = self.last_seq;
        device.n_reports = self.n_reports;
        device.last_seen_ms = self.last_seen_ms;
        device.last_report = self.last_report;
        if let (Some(verdict), Some((seq, received_at_ms))) = (&mut device.inventory_verdict, self.verdict) {
            verdict.seq = seq;
            verdict.received_at_ms = received_at_ms;
        }
    }
}

/// Encodes one group's `device_hot` record.
pub(super) fn encode_group(fields: Vec<HotFieldsV1>) -> Vec<u8> {
    encode(&VersionedHot::V1(fields))
}

/// Whether `now` differs from `before` in hot fields only, so that
/// [`HotFieldsV1::of`]`(now)` applied to `before` gives `now`.
pub(super) fn differs_only_in_hot_fields(before: &DeviceRecord, now: &DeviceRecord) -> bool {
    // Every field is named, so that a new one cannot be missed here.
    let DeviceRecord {
        device_id,
        public_key,
        hostname,
        serial,
        vendor,
        model,
        site,
        enrolled_at_ms,
        last_seen_ms: _,
        last_seq: _,
        n_reports: _,
        cert_not_after_ms,
        revocation,
        state,
        asset_tag,
        registered_model,
        supplier,
        order_ref,
        ward,
        assigned_to,
        macs,
        registered_at_ms,
        state_changed_at_ms,
        kind,
        inventory_verdict,
        last_report: _,
    } = now;
    let verdicts_match = match (&before.inventory_verdict, inventory_verdict) {
        (None, None) => true,
        (Some(before), Some(now)) => {
            let InventoryVerdictV1 { received_at_ms: _, encryption, seq: _, sha256 } = now;
            before.encryption == *encryption && before.sha256 == *sha256
        }
        _ => false,
    };
    verdicts_match
        && before.device_id == *device_id
        && before.public_key == *public_key
        && before.hostname == *hostname
        && before.serial == *serial
        && before.vendor == *vendor
        && before.model == *model
        && before.site == *site
        && before.enrolled_at_ms == *enrolled_at_ms
        && before.cert_not_after_ms == *cert_not_after_ms
        && before.revocation == *revocation
        && before.state == *state
        && before.asset_tag == *asset_tag
        && before.registered_model == *registered_model
        && before.supplier == *supplier
        && before.order_ref == *order_ref
        && before.ward == *ward
        && before.assigned_to == *assigned_to
        && before.macs == *macs
        && before.registered_at_ms == *registered_at_ms
        && before.state_changed_at_ms == *state_changed_at_ms
        && before.kind == *kind
}

impl Store {
    /// The committer's devices, to change under this guard. If a thread
    /// panicked holding them they may not match the store, so they are
    /// dropped and the device records settled from `device_hot`.
    pub(super) fn hot_devices(&self) -> Result<std::sync::MutexGuard<'_, HotDevices>, StoreError> {
        match self.hot.lock() {
            Ok(hot) => Ok(hot),
            Err(poisoned) => {
                let mut hot = poisoned.into_inner();
                // Until this succeeds the lock stays poisoned, so the next
                // caller tries again rather than trust the copies.
                self.settle(&mut hot)?;
                self.hot.clear_poison();
                Ok(hot)
            }
        }
    }

    /// Brings every device record up to date (see the module doc), makes the
    /// committer read them afresh, and returns the guard that keeps it from
    /// changing one until it is dropped. Readers of `devices` drop it at
    /// once; other writers hold it through their transaction. Never call it
    /// holding the transaction gate, or holding this guard already.
    pub(super) fn settled(&self) -> Result<std::sync::MutexGuard<'_, HotDevices>, StoreError> {
        let mut hot = self.hot_devices()?;
        if self.device_hot.is_empty() {
            // Nothing deferred; the committer's copies are all as stored,
            // but the caller may be about to change one.
            hot.devices.clear();
        } else {
            self.settle(&mut hot)?;
        }
        Ok(hot)
    }

    /// Applies the `device_hot` records to the device records and removes
    /// them, in one transaction, and forgets the committer's devices (now
    /// all as stored, and about to be changed by the caller, perhaps).
    fn settle(&self, hot: &mut HotDevices) -> Result<(), StoreError> {
        // Read outside the transaction (sled has no range reads inside
        // one); nothing writes `device_hot` without the guard `hot` is.
        let mut groups = Vec::new();
        for entry in self.device_hot.iter() {
            let (key, value) = entry?;
            let VersionedHot::V1(fields) = decode::<VersionedHot>(TREE, &value)?;
            groups.push((key, fields));
        }
        let _gate = self.transaction_gate();
        let trees = (&self.devices, &self.idx_hostname, &self.idx_serial, &self.idx_facets, &self.device_hot);
        trees
            .transaction(|(devices, idx_hostname, idx_serial, idx_facets, device_hot)| {
                let mut changed: HashMap<DeviceId, (DeviceRecord, DeviceRecord)> = HashMap::new();
                for (key, fields) in &groups {
                    for hot_fields in fields {
                        let (_, now) = match changed.entry(hot_fields.device_id) {
                            Entry::Occupied(slot) => slot.into_mut(),
                            Entry::Vacant(slot) => {
                                let stored = stored_device(devices, hot_fields.device_id, key)?;
                                slot.insert((stored.clone(), stored))
                            }
                        };
                        hot_fields.apply_to(now);
                    }
                    device_hot.remove(key)?;
                }
                for (before, now) in changed.values() {
                    if before != now {
                        put_device(devices, idx_hostname, idx_serial, idx_facets, Some(before), now)?;
                    }
                }
                Ok(())
            })
            .map_err(flatten_tx_error)?;
        hot.devices.clear();
        hot.pending.clear();
        Ok(())
    }
}

/// The stored record of a device that `device_hot` record `key` names.
fn stored_device(
    devices: &TransactionalTree,
    device_id: DeviceId,
    key: &[u8],
) -> Result<DeviceRecord, ConflictableTransactionError<StoreError>> {
    device_in(devices, device_id)?.ok_or_else(|| {
        ConflictableTransactionError::Abort(StoreError::Decode {
            tree: TREE,
            error: format!("record {} names device {device_id}, which is not stored", key_u64(key)),
        })
    })
}

fn key_u64(key: &[u8]) -> String {
    key.try_into().map(u64::from_be_bytes).map_or_else(|_| format!("{key:02x?}"), |k| k.to_string())
}

#[cfg(test)]
mod tests;
