//! The audit trail's storage: an append-only log of event bytes with the
//! Merkle tree's compact frontier, and the signed checkpoints.
//!
//! Tree `audit` (every key starts with a one-byte tag):
//! - `s`: the [`Frontier`] after the last append: version byte `1`, size
//!   (big-endian u64), then one 32-byte hash per set bit of the size (raw
//!   bytes rather than rmp-serde: this is rewritten on every append);
//! - `g` ‖ first seq (big-endian u64): a group of consecutive events appended
//!   in one transaction, at most [`MAX_EVENTS_PER_GROUP`]: version byte `1`,
//!   then per event its length (big-endian u32), leaf hash (32 bytes) and
//!   exact bytes. One record per group rather than one per event, because
//!   each transactional insert in sled also reads the key's leaf first;
//! - `e` ‖ seq (big-endian u64): leaf hash (32 bytes) ‖ the exact event bytes,
//!   one record per event, as stores written before groups have them (read,
//!   never written; they all precede the groups);
//! - `d` ‖ device id ‖ seq: empty, an index of each device's events.
//!
//! [`append`] runs inside the caller's transaction, so an event is written
//! together with the change it records, or not at all. Tree
//! `audit_checkpoints`: size ‖ time (both big-endian) → [`StoredCheckpoint`].

use custodian_proto::identity::DeviceId;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::{Store, StoreError, decode, encode};
use crate::audit::event::{AuditEvent, EventKind};
use crate::audit::merkle::{Frontier, Hash, leaf_hash};
use crate::lifecycle::LifecycleState;

const STATE_KEY: &[u8] = b"s";
const EVENT_TAG: u8 = b'e';
const GROUP_TAG: u8 = b'g';
const DEVICE_TAG: u8 = b'd';

/// Most events in one group record; a larger append writes several. Small
/// enough that a leaf of sled's (up to 16 records) stays under its 128 KiB
/// blob threshold: with 256, every consolidation of the tree's last leaf
/// wrote a 160 to 320 KB blob file.
pub(super) const MAX_EVENTS_PER_GROUP: usize = 16;

/// The version byte of a group record.
const GROUP_V1: u8 = 1;

/// A signed checkpoint as kept by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCheckpointV1 {
    /// Events covered.
    pub size: u64,
    /// When it was signed, Unix ms.
    pub time_ms: i64,
    /// The exact checkpoint text that was signed.
    pub text: String,
    /// The raw Ed25519 signature.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// The version byte of the stored frontier.
const STATE_V1: u8 = 1;

fn encode_state(frontier: &Frontier) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(9 + 32 * frontier.nodes.len());
    bytes.push(STATE_V1);
    bytes.extend_from_slice(&frontier.size.to_be_bytes());
    for node in &frontier.nodes {
        bytes.extend_from_slice(node);
    }
    bytes
}

fn decode_state(bytes: &[u8]) -> Result<Frontier, StoreError> {
    let bad = |error: &str| StoreError::Decode { tree: "audit", error: format!("audit state: {error}") };
    let (&version, rest) = bytes.split_first().ok_or_else(|| bad("empty"))?;
    if version != STATE_V1 {
        return Err(bad(&format!("unknown version {version}")));
    }
    if rest.len() < 8 {
        return Err(bad("too short"));
    }
    let (size, hashes) = rest.split_at(8);
    let size = u64::from_be_bytes(size.try_into().expect("8 bytes"));
    if hashes.len() != 32 * size.count_ones() as usize {
        return Err(bad("hash count does not match the size"));
    }
    let nodes = hashes.chunks_exact(32).map(|h| h.try_into().expect("32 bytes")).collect();
    Ok(Frontier { size, nodes })
}

#[derive(Serialize, Deserialize)]
enum VersionedCheckpoint {
    V1(StoredCheckpointV1),
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its sequence number.
    pub seq: u64,
    /// The leaf hash recorded when it was appended.
    pub leaf_hash: Hash,
    /// The exact event bytes.
    pub bytes: Vec<u8>,
}

fn event_key(seq: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = EVENT_TAG;
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn device_key(device_id: DeviceId, seq: u64) -> [u8; 25] {
    let mut key = [0u8; 25];
    key[0] = DEVICE_TAG;
    key[1..17].copy_from_slice(device_id.as_bytes());
    key[17..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn group_key(first_seq: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = GROUP_TAG;
    key[1..].copy_from_slice(&first_seq.to_be_bytes());
    key
}

/// The event sequence number of a device index key ([`device_key`]).
fn device_key_seq(key: &[u8]) -> Result<u64, StoreError> {
    seq_at(key, 17, "device index key")
}

/// The sequence number of an event or group key ([`event_key`], [`group_key`]).
fn seq_of(key: &[u8]) -> Result<u64, StoreError> {
    seq_at(key, 1, "event key")
}

/// The big-endian sequence number in bytes `start..start + 8` of a `what` key.
fn seq_at(key: &[u8], start: usize, what: &str) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key
        .get(start..start + 8)
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| StoreError::Decode { tree: "audit", error: format!("{what} is not {} bytes", start + 8) })?;
    Ok(u64::from_be_bytes(bytes))
}

/// A single-event record (`e`).
fn entry(seq: u64, value: &[u8]) -> Result<AuditEntry, StoreError> {
    if value.len() < 32 {
        return Err(StoreError::Decode { tree: "audit", error: format!("event {seq} is shorter than its hash") });
    }
    let (hash, bytes) = value.split_at(32);
    Ok(AuditEntry { seq, leaf_hash: hash.try_into().expect("32 bytes"), bytes: bytes.to_vec() })
}

/// Encodes consecutive events (leaf hash and bytes) as one group record.
fn encode_group(events: &[(Hash, Vec<u8>)]) -> Vec<u8> {
    let mut value = Vec::with_capacity(1 + events.iter().map(|(_, bytes)| 36 + bytes.len()).sum::<usize>());
    value.push(GROUP_V1);
    for (hash, bytes) in events {
        let len = u32::try_from(bytes.len()).expect("an event is far smaller than 4 GiB");
        value.extend_from_slice(&len.to_be_bytes());
        value.extend_from_slice(hash);
        value.extend_from_slice(bytes);
    }
    value
}

/// The events of the group record starting at `first_seq`, in order.
fn decode_group(first_seq: u64, value: &[u8]) -> Result<Vec<AuditEntry>, StoreError> {
    let bad = |error: &str| StoreError::Decode { tree: "audit", error: format!("event group {first_seq}: {error}") };
    let (&version, mut rest) = value.split_first().ok_or_else(|| bad("empty"))?;
    if version != GROUP_V1 {
        return Err(bad(&format!("unknown version {version}")));
    }
    let mut entries = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 36 {
            return Err(bad("truncated event header"));
        }
        let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let hash: Hash = rest[4..36].try_into().expect("32 bytes");
        let bytes = rest.get(36..36 + len).ok_or_else(|| bad("truncated event"))?;
        entries.push(AuditEntry { seq: first_seq + entries.len() as u64, leaf_hash: hash, bytes: bytes.to_vec() });
        rest = &rest[36 + len..];
    }
    if entries.is_empty() {
        return Err(bad("no events"));
    }
    Ok(entries)
}

/// Appends `event` to the log inside a transaction: assigns its sequence
/// number, stores its bytes and leaf hash, indexes it by device and advances
/// the frontier. Returns the sequence number.
pub(super) fn append(
    audit: &TransactionalTree,
    event: AuditEvent,
) -> Result<u64, ConflictableTransactionError<StoreError>> {
    let mut log = Appender::load(audit)?;
    let seq = log.append(audit, event)?;
    log.store(audit)?;
    Ok(seq)
}

/// Appends many events in one transaction, reading the frontier once and
/// writing it once (see [`Appender::store`]) rather than once per event.
pub(super) struct Appender {
    frontier: Frontier,
    /// Events appended since the last [`Appender::store`]: leaf hash and
    /// bytes, from sequence number `frontier.size - pending.len()` on.
    pending: Vec<(Hash, Vec<u8>)>,
}

impl Appender {
    /// The sequence number the next appended event gets.
    pub(super) fn next_seq(&self) -> u64 {
        self.frontier.size
    }

    /// Reads the frontier as the transaction sees it.
    pub(super) fn load(audit: &TransactionalTree) -> Result<Self, ConflictableTransactionError<StoreError>> {
        let frontier = match audit.get(STATE_KEY)? {
            None => Frontier::default(),
            Some(bytes) => decode_state(&bytes).map_err(ConflictableTransactionError::Abort)?,
        };
        Ok(Self { frontier, pending: Vec::new() })
    }

    /// Assigns `event` its sequence number, indexes it by device and
    /// advances the frontier in memory; its bytes and leaf hash are written
    /// by [`Appender::store`], with the other events of the transaction.
    /// Returns the sequence number.
    pub(super) fn append(
        &mut self,
        audit: &TransactionalTree,
        event: AuditEvent,
    ) -> Result<u64, ConflictableTransactionError<StoreError>> {
        let device_id = event.device_id;
        let seq = self.append_unindexed(event);
        if let Some(device_id) = device_id {
            audit.insert(&device_key(device_id, seq), &[])?;
        }
        Ok(seq)
    }

    /// [`Appender::append`] without the device history index entry, for an
    /// event whose sequence number the caller records where
    /// [`Store::device_events`] finds it (a report's record names its
    /// `report_accepted` event).
    pub(super) fn append_unindexed(&mut self, mut event: AuditEvent) -> u64 {
        let seq = self.frontier.size;
        event.seq = seq;
        let bytes = event.to_bytes();
        let hash = leaf_hash(&bytes);
        self.frontier.push(hash);
        self.pending.push((hash, bytes));
        seq
    }

    /// Writes the events appended since the last call, as group records, and
    /// the frontier, in the same transaction as the changes they record.
    pub(super) fn store(&mut self, audit: &TransactionalTree) -> Result<(), ConflictableTransactionError<StoreError>> {
        let mut first_seq = self.frontier.size - self.pending.len() as u64;
        for group in self.pending.chunks(MAX_EVENTS_PER_GROUP) {
            audit.insert(&group_key(first_seq), encode_group(group))?;
            first_seq += group.len() as u64;
        }
        self.pending.clear();
        audit.insert(STATE_KEY, encode_state(&self.frontier))?;
        Ok(())
    }
}

impl Store {
    /// Appends an event that records no other change (a note, an operator
    /// issued). Not durable until [`Store::flush`].
    pub fn record_event(&self, event: AuditEvent) -> Result<u64, StoreError> {
        let _gate = self.transaction_gate();
        self.audit.transaction(|audit| append(audit, event.clone())).map_err(super::flatten_tx_error)
    }

    /// The tree as it stands: size and compact frontier.
    pub fn audit_head(&self) -> Result<Frontier, StoreError> {
        match self.audit.get(STATE_KEY)? {
            None => Ok(Frontier::default()),
            Some(bytes) => decode_state(&bytes),
        }
    }

    /// Up to `limit` events from `from` on, in order.
    pub fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let mut entries = Vec::new();
        self.visit_entries(from, limit, |entry| entries.push(entry))?;
        Ok(entries)
    }

    /// Calls `visit` with up to `limit` events from `from` on, in order,
    /// without holding them all.
    fn visit_entries(&self, from: u64, limit: usize, mut visit: impl FnMut(AuditEntry)) -> Result<(), StoreError> {
        let mut n = 0;
        // Single-event records (older stores) precede every group record.
        for item in self.audit.range(event_key(from).as_slice()..[EVENT_TAG + 1].as_slice()) {
            if n == limit {
                return Ok(());
            }
            let (key, value) = item?;
            visit(entry(seq_of(&key)?, &value)?);
            n += 1;
        }
        // The group holding `from`, if any, starts at or before it.
        let start = match self.audit.range(group_key(0).as_slice()..=group_key(from).as_slice()).next_back() {
            Some(item) => seq_of(&item?.0)?,
            None => from,
        };
        for item in self.audit.range(group_key(start).as_slice()..[GROUP_TAG + 1].as_slice()) {
            let (key, value) = item?;
            for event in decode_group(seq_of(&key)?, &value)? {
                if n == limit {
                    return Ok(());
                }
                if event.seq >= from {
                    visit(event);
                    n += 1;
                }
            }
        }
        Ok(())
    }

    /// The event with sequence number `seq`.
    pub fn audit_entry(&self, seq: u64) -> Result<Option<AuditEntry>, StoreError> {
        if let Some(value) = self.audit.get(event_key(seq))? {
            return entry(seq, &value).map(Some);
        }
        let Some(item) = self.audit.range(group_key(0).as_slice()..=group_key(seq).as_slice()).next_back() else {
            return Ok(None);
        };
        let (key, value) = item?;
        let first_seq = seq_of(&key)?;
        Ok(decode_group(first_seq, &value)?.into_iter().nth((seq - first_seq) as usize))
    }

    /// The recorded leaf hashes of the first `size` events.
    pub fn audit_leaf_hashes(&self, size: u64) -> Result<Vec<Hash>, StoreError> {
        let mut hashes = Vec::with_capacity(size as usize);
        self.visit_entries(0, size as usize, |entry| hashes.push(entry.leaf_hash))?;
        Ok(hashes)
    }

    /// When the device last moved to `state` (the time of its newest
    /// lifecycle event with that `to`), if it ever did.
    pub fn last_moved_to(&self, device_id: DeviceId, state: LifecycleState) -> Result<Option<i64>, StoreError> {
        let mut prefix = vec![DEVICE_TAG];
        prefix.extend_from_slice(device_id.as_bytes());
        for item in self.audit.scan_prefix(&prefix).rev() {
            let (key, _) = item?;
            let Some(entry) = self.audit_entry(device_key_seq(&key)?)? else {
                continue;
            };
            let event = AuditEvent::from_bytes(&entry.bytes)
                .map_err(|e| StoreError::Decode { tree: "audit", error: e.to_string() })?;
            // Only moves: an enrolment event names the state it left the
            // device in, which is not a move to it.
            if event.kind == EventKind::DeviceTransitioned && event.to.as_deref() == Some(state.as_str()) {
                return Ok(Some(event.time_ms));
            }
        }
        Ok(None)
    }

    /// One device's events, newest first: those in the history index, and
    /// the `report_accepted` events its report records name.
    pub fn device_events(&self, device_id: DeviceId) -> Result<Vec<AuditEntry>, StoreError> {
        let mut prefix = vec![DEVICE_TAG];
        prefix.extend_from_slice(device_id.as_bytes());
        let mut seqs = Vec::new();
        for item in self.audit.scan_prefix(&prefix) {
            let (key, _) = item?;
            seqs.push(device_key_seq(&key)?);
        }
        for item in self.reports.scan_prefix(device_id.as_bytes()) {
            let (_, value) = item?;
            seqs.extend(super::report_record_audit_seq(&value)?);
        }
        let last_report = self.device(device_id)?.and_then(|device| device.last_report);
        self.visit_report_chain(last_report, |entry| {
            seqs.push(entry.audit_seq);
            true
        })?;
        // Reports stored before their records named their events are in the
        // index too.
        seqs.sort_unstable_by(|a, b| b.cmp(a));
        seqs.dedup();
        let mut entries = Vec::with_capacity(seqs.len());
        for seq in seqs {
            entries.extend(self.audit_entry(seq)?);
        }
        Ok(entries)
    }

    /// Keeps a signed checkpoint.
    pub fn put_checkpoint(&self, checkpoint: &StoredCheckpointV1) -> Result<(), StoreError> {
        let mut key = checkpoint.size.to_be_bytes().to_vec();
        key.extend_from_slice(&checkpoint.time_ms.to_be_bytes());
        self.audit_checkpoints.insert(key, encode(&VersionedCheckpoint::V1(checkpoint.clone())))?;
        Ok(())
    }

    /// Every checkpoint, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<StoredCheckpointV1>, StoreError> {
        self.audit_checkpoints
            .iter()
            .values()
            .map(|value| match decode::<VersionedCheckpoint>("audit_checkpoints", &value?)? {
                VersionedCheckpoint::V1(checkpoint) => Ok(checkpoint),
            })
            .collect()
    }

    /// The newest checkpoint (largest size, then latest time).
    pub fn latest_checkpoint(&self) -> Result<Option<StoredCheckpointV1>, StoreError> {
        self.audit_checkpoints
            .last()?
            .map(|(_, value)| match decode::<VersionedCheckpoint>("audit_checkpoints", &value)? {
                VersionedCheckpoint::V1(checkpoint) => Ok(checkpoint),
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests;
