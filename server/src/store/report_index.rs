//! Where each stored report is: one record per committed group of reports,
//! chained per device, rather than one `reports` record per report.
//!
//! Tree `report_groups`: group key (big-endian u64) → version byte `1`, then
//! one [`ENTRY_LEN`]-byte entry per report the group stored, in commit order:
//! device id (16) ‖ seq (8) ‖ its `report_accepted` event's audit sequence
//! number (8) ‖ envelope pointer (12) ‖ the device's previous report: group
//! key (8) ‖ index (4), all ones for none.
//!
//! The group key is the audit sequence number at which the group's
//! transaction began appending, so keys are unique and increase with commit
//! order. A device record's `last_report` names its newest entry, and each
//! entry names the one before it, so a device's reports are found newest
//! first by following the chain. The chain ends at the device's first report
//! stored this way; reports stored before then are records in the `reports`
//! tree (see `report_record` in `mod.rs`), all with lower sequence numbers.
//!
//! Tree `report_milestones`: device id ‖ bucket (big-endian u64, seq /
//! [`MILESTONE_EVERY`]) → the locator (group key ‖ index) of the device's
//! first entry in that bucket. A report is looked up by seq from the first
//! entry of the next bucket up, so the walk is at most that many entries
//! long however long the device's history, and a replayed old envelope costs
//! a bounded number of reads. (Point reads, not a range: sled runs a
//! transaction's closure holding its global lock, so the resend check
//! inside it can only use the transaction's own `get`.)
//!
//! Why: every sled insert costs 5 to 8 µs of CPU on the 2-core machine the
//! ingest targets are measured on, and a record per report was one insert in
//! every report's path. One record per group is one insert for the whole
//! group, and a milestone one per 64 sequence numbers of a device
//! (decision 010).

use custodian_proto::identity::DeviceId;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::records::ReportLocatorV1 as Locator;
use super::{Store, StoreError, envelopes};

/// The tree's name.
pub(super) const TREE: &str = "report_groups";

/// The milestones tree's name.
pub(super) const MILESTONES: &str = "report_milestones";

/// How many of a device's reports apart its milestones are.
pub(super) const MILESTONE_EVERY: u64 = 64;

/// The version byte of a group record.
const GROUP_V1: u8 = 1;

/// Bytes per entry.
const ENTRY_LEN: usize = 16 + 8 + 8 + 12 + 8 + 4;

/// One stored report's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) device_id: DeviceId,
    pub(super) seq: u64,
    pub(super) audit_seq: u64,
    pub(super) pointer: envelopes::Pointer,
    /// The same device's previous entry, if it has one.
    pub(super) prev: Option<Locator>,
}

impl Entry {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.device_id.as_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.audit_seq.to_be_bytes());
        out.extend_from_slice(&self.pointer.to_bytes());
        out.extend_from_slice(&locator_bytes(self.prev.unwrap_or(NO_PREV)));
    }

    fn decode(bytes: &[u8]) -> Self {
        let u64_at = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let prev = locator_from(bytes[44..56].try_into().expect("12 bytes"));
        Self {
            device_id: DeviceId::from_bytes(bytes[..16].try_into().expect("16 bytes")),
            seq: u64_at(16),
            audit_seq: u64_at(24),
            pointer: envelopes::Pointer::from_bytes(&bytes[32..44]).expect("12 bytes"),
            prev: (prev != NO_PREV).then_some(prev),
        }
    }
}

/// The entry `locator` names, from its group record's bytes.
fn entry_in(locator: Locator, value: &[u8]) -> Result<Entry, StoreError> {
    let bad = |error: String| StoreError::Decode { tree: TREE, error: format!("group {}: {error}", locator.group) };
    match value.first() {
        Some(&GROUP_V1) => {}
        Some(version) => return Err(bad(format!("unknown version {version}"))),
        None => return Err(bad("empty".to_owned())),
    }
    if !(value.len() - 1).is_multiple_of(ENTRY_LEN) {
        return Err(bad(format!("{} bytes of entries is not a whole number of entries", value.len() - 1)));
    }
    let start = 1 + locator.index as usize * ENTRY_LEN;
    let bytes = value.get(start..start + ENTRY_LEN).ok_or_else(|| bad(format!("no entry {}", locator.index)))?;
    Ok(Entry::decode(bytes))
}

/// The group a transaction is building: its entries are written as one
/// record by [`Group::store`], and can be read before that.
pub(super) struct Group {
    key: u64,
    entries: Vec<Entry>,
}

impl Group {
    /// A group whose key is `key` (the first audit sequence number its
    /// transaction appends).
    pub(super) fn new(key: u64) -> Self {
        Self { key, entries: Vec::new() }
    }

    /// Adds `entry` and returns where it will be.
    pub(super) fn push(&mut self, entry: Entry) -> Locator {
        let index = u32::try_from(self.entries.len()).expect("a group holds far fewer than 4 billion reports");
        self.entries.push(entry);
        Locator { group: self.key, index }
    }

    /// Writes the group's record, if it has entries.
    pub(super) fn store(&self, tree: &TransactionalTree) -> Result<(), ConflictableTransactionError<StoreError>> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let mut value = Vec::with_capacity(1 + ENTRY_LEN * self.entries.len());
        value.push(GROUP_V1);
        for entry in &self.entries {
            entry.encode_into(&mut value);
        }
        tree.insert(&self.key.to_be_bytes(), value)?;
        Ok(())
    }

    /// Where to start walking, inside the transaction, to find report `seq`
    /// of a device whose last seq is `last_seq` and newest entry `newest`:
    /// the first entry of the nearest bucket above `seq`'s, at most
    /// [`MILESTONE_EVERY`] entries above it, or else `newest`.
    pub(super) fn start_for(
        milestones: &TransactionalTree,
        device_id: DeviceId,
        seq: u64,
        last_seq: u64,
        newest: Option<Locator>,
    ) -> Result<Option<Locator>, ConflictableTransactionError<StoreError>> {
        for key in probes(device_id, seq, last_seq) {
            if let Some(value) = milestones.get(key)? {
                return milestone_locator(&value).map(Some).map_err(ConflictableTransactionError::Abort);
            }
        }
        Ok(newest)
    }

    /// Follows a device's chain from `from` (see [`Group::start_for`])
    /// inside the transaction, this group's own entries included, to the
    /// entry for `seq`. `Ok(None)` if the chain has no such entry; then the report,
    /// if stored, is a record in the `reports` tree.
    pub(super) fn find(
        &self,
        tree: &TransactionalTree,
        from: Option<Locator>,
        seq: u64,
    ) -> Result<Option<Entry>, ConflictableTransactionError<StoreError>> {
        let mut at = from;
        while let Some(locator) = at {
            let entry = if locator.group == self.key {
                *self.entries.get(locator.index as usize).ok_or_else(|| {
                    ConflictableTransactionError::Abort(StoreError::Decode {
                        tree: TREE,
                        error: format!("the group being written has no entry {}", locator.index),
                    })
                })?
            } else {
                let value = tree
                    .get(locator.group.to_be_bytes())?
                    .ok_or_else(|| ConflictableTransactionError::Abort(missing(locator)))?;
                entry_in(locator, &value).map_err(ConflictableTransactionError::Abort)?
            };
            if entry.seq <= seq {
                return Ok((entry.seq == seq).then_some(entry));
            }
            at = entry.prev;
        }
        Ok(None)
    }
}

/// Records `locator` as a milestone if its report, `seq`, is the device's
/// first in its bucket of [`MILESTONE_EVERY`] sequence numbers
/// (`previous_seq` being the device's last before it).
pub(super) fn record_milestone(
    milestones: &TransactionalTree,
    device_id: DeviceId,
    seq: u64,
    previous_seq: u64,
    locator: Locator,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    if seq / MILESTONE_EVERY != previous_seq / MILESTONE_EVERY {
        milestones.insert(&milestone_key(device_id, seq / MILESTONE_EVERY), &locator_bytes(locator))?;
    }
    Ok(())
}

fn milestone_key(device_id: DeviceId, bucket: u64) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..16].copy_from_slice(device_id.as_bytes());
    key[16..].copy_from_slice(&bucket.to_be_bytes());
    key
}

/// How many buckets above a report's own are tried for a milestone before
/// the walk starts from the device's newest entry instead. Agents number
/// their reports one after another, so the next bucket nearly always has
/// one; only a device that skipped hundreds of numbers walks further.
const MILESTONE_PROBES: u64 = 4;

/// The milestone keys to try, nearest first, for finding report `seq` of a
/// device whose last seq is `last_seq`: the buckets above `seq`'s, up to the
/// last one there can be.
fn probes(device_id: DeviceId, seq: u64, last_seq: u64) -> impl Iterator<Item = [u8; 24]> {
    let (bucket, last_bucket) = (seq / MILESTONE_EVERY, last_seq / MILESTONE_EVERY);
    (bucket + 1..=last_bucket.min(bucket + MILESTONE_PROBES)).map(move |b| milestone_key(device_id, b))
}

fn milestone_locator(value: &[u8]) -> Result<Locator, StoreError> {
    let bytes: &[u8; 12] = value.try_into().map_err(|_| StoreError::Decode {
        tree: MILESTONES,
        error: format!("a milestone is {} bytes, not 12", value.len()),
    })?;
    Ok(locator_from(bytes))
}

/// What an entry stores as `prev` when it has none.
const NO_PREV: Locator = Locator { group: u64::MAX, index: u32::MAX };

/// A locator's stored form, in entries and milestones: group key (big-endian
/// u64) ‖ index (big-endian u32).
fn locator_bytes(locator: Locator) -> [u8; 12] {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&locator.group.to_be_bytes());
    bytes[8..].copy_from_slice(&locator.index.to_be_bytes());
    bytes
}

fn locator_from(bytes: &[u8; 12]) -> Locator {
    Locator {
        group: u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
        index: u32::from_be_bytes(bytes[8..].try_into().expect("4 bytes")),
    }
}

fn missing(locator: Locator) -> StoreError {
    StoreError::Decode {
        tree: TREE,
        error: format!("a device's chain names group {}, which is not stored", locator.group),
    }
}

impl Store {
    /// [`Group::start_for`], outside a transaction.
    pub(super) fn report_walk_start(
        &self,
        device_id: DeviceId,
        seq: u64,
        last_seq: u64,
        newest: Option<Locator>,
    ) -> Result<Option<Locator>, StoreError> {
        for key in probes(device_id, seq, last_seq) {
            if let Some(value) = self.report_milestones.get(key)? {
                return milestone_locator(&value).map(Some);
            }
        }
        Ok(newest)
    }

    /// A device's reports stored in groups, newest first, from its newest
    /// entry `from`; `visit` returns `false` to stop.
    pub(super) fn visit_report_chain(
        &self,
        from: Option<Locator>,
        mut visit: impl FnMut(&Entry) -> bool,
    ) -> Result<(), StoreError> {
        let mut at = from;
        while let Some(locator) = at {
            let value = self.report_groups.get(locator.group.to_be_bytes())?.ok_or_else(|| missing(locator))?;
            let entry = entry_in(locator, &value)?;
            if !visit(&entry) {
                return Ok(());
            }
            at = entry.prev;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
