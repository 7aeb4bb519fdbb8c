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
//! Why: every sled insert costs 5 to 8 µs of CPU on the 2-core machine the
//! ingest targets are measured on, and a record per report was one insert in
//! every report's path. One record per group is one insert for the whole
//! group (decision 010).

use custodian_proto::identity::DeviceId;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::records::ReportLocatorV1 as Locator;
use super::{Store, StoreError, envelopes};

/// The tree's name.
pub(super) const TREE: &str = "report_groups";

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
        let (group, index) = self.prev.map_or((u64::MAX, u32::MAX), |prev| (prev.group, prev.index));
        out.extend_from_slice(&group.to_be_bytes());
        out.extend_from_slice(&index.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Self {
        let u64_at = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let group = u64_at(44);
        let index = u32::from_be_bytes(bytes[52..56].try_into().expect("4 bytes"));
        Self {
            device_id: DeviceId::from_bytes(bytes[..16].try_into().expect("16 bytes")),
            seq: u64_at(16),
            audit_seq: u64_at(24),
            pointer: envelopes::Pointer::from_bytes(&bytes[32..44]).expect("12 bytes"),
            prev: (group != u64::MAX || index != u32::MAX).then_some(Locator { group, index }),
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

    /// Follows a device's chain from `from` (its newest entry) inside the
    /// transaction, this group's own entries included, to the entry for
    /// `seq`. `Ok(None)` if the chain has no such entry; then the report,
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

fn missing(locator: Locator) -> StoreError {
    StoreError::Decode {
        tree: TREE,
        error: format!("a device's chain names group {}, which is not stored", locator.group),
    }
}

impl Store {
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
