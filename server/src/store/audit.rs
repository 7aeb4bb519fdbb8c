//! The audit trail's storage: an append-only log of event bytes with the
//! Merkle tree's compact frontier, and the signed checkpoints.
//!
//! Tree `audit` (every key starts with a one-byte tag):
//! - `s`: the [`Frontier`] after the last append: version byte `1`, size
//!   (big-endian u64), then one 32-byte hash per set bit of the size (raw
//!   bytes rather than rmp-serde: this is rewritten on every append);
//! - `e` ‖ seq (big-endian u64): leaf hash (32 bytes) ‖ the exact event bytes;
//! - `d` ‖ device id ‖ seq: empty, an index of each device's events.
//!
//! [`append`] runs inside the caller's transaction, so an event is written
//! together with the change it records, or not at all. Tree
//! `audit_checkpoints`: size ‖ time (both big-endian) → [`StoredCheckpoint`].

use custodian_proto::identity::DeviceId;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::{Store, StoreError, decode, encode};
use crate::audit::event::AuditEvent;
use crate::audit::merkle::{Frontier, Hash, leaf_hash};

const STATE_KEY: &[u8] = b"s";
const EVENT_TAG: u8 = b'e';
const DEVICE_TAG: u8 = b'd';

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

fn entry(seq: u64, value: &[u8]) -> Result<AuditEntry, StoreError> {
    if value.len() < 32 {
        return Err(StoreError::Decode { tree: "audit", error: format!("event {seq} is shorter than its hash") });
    }
    let (hash, bytes) = value.split_at(32);
    Ok(AuditEntry { seq, leaf_hash: hash.try_into().expect("32 bytes"), bytes: bytes.to_vec() })
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
}

impl Appender {
    /// Reads the frontier as the transaction sees it.
    pub(super) fn load(audit: &TransactionalTree) -> Result<Self, ConflictableTransactionError<StoreError>> {
        let frontier = match audit.get(STATE_KEY)? {
            None => Frontier::default(),
            Some(bytes) => decode_state(&bytes).map_err(ConflictableTransactionError::Abort)?,
        };
        Ok(Self { frontier })
    }

    /// Assigns `event` its sequence number, stores its bytes and leaf hash,
    /// indexes it by device and advances the frontier in memory. Returns the
    /// sequence number. Nothing is appended for good until [`Appender::store`].
    pub(super) fn append(
        &mut self,
        audit: &TransactionalTree,
        mut event: AuditEvent,
    ) -> Result<u64, ConflictableTransactionError<StoreError>> {
        let seq = self.frontier.size;
        event.seq = seq;
        let bytes = event.to_bytes();
        let hash = leaf_hash(&bytes);
        let mut value = Vec::with_capacity(32 + bytes.len());
        value.extend_from_slice(&hash);
        value.extend_from_slice(&bytes);
        audit.insert(&event_key(seq), value)?;
        if let Some(device_id) = event.device_id {
            audit.insert(&device_key(device_id, seq), &[])?;
        }
        self.frontier.push(hash);
        Ok(seq)
    }

    /// Writes the frontier, in the same transaction as the events.
    pub(super) fn store(&self, audit: &TransactionalTree) -> Result<(), ConflictableTransactionError<StoreError>> {
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
        let end = [EVENT_TAG + 1];
        self.audit
            .range(event_key(from).as_slice()..end.as_slice())
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                let seq =
                    u64::from_be_bytes(key[1..].try_into().map_err(|_| StoreError::Decode {
                        tree: "audit",
                        error: "event key is not 9 bytes".to_owned(),
                    })?);
                entry(seq, &value)
            })
            .collect()
    }

    /// The event with sequence number `seq`.
    pub fn audit_entry(&self, seq: u64) -> Result<Option<AuditEntry>, StoreError> {
        self.audit.get(event_key(seq))?.map(|value| entry(seq, &value)).transpose()
    }

    /// The recorded leaf hashes of the first `size` events.
    pub fn audit_leaf_hashes(&self, size: u64) -> Result<Vec<Hash>, StoreError> {
        let mut hashes = Vec::with_capacity(size as usize);
        let end = [EVENT_TAG + 1];
        for item in self.audit.range(event_key(0).as_slice()..end.as_slice()).take(size as usize) {
            let (_, value) = item?;
            hashes.push(entry(0, &value)?.leaf_hash);
        }
        Ok(hashes)
    }

    /// One device's events, newest first.
    pub fn device_events(&self, device_id: DeviceId) -> Result<Vec<AuditEntry>, StoreError> {
        let mut prefix = vec![DEVICE_TAG];
        prefix.extend_from_slice(device_id.as_bytes());
        let mut entries = Vec::new();
        for item in self.audit.scan_prefix(&prefix).rev() {
            let (key, _) = item?;
            let seq = u64::from_be_bytes(key[17..].try_into().map_err(|_| StoreError::Decode {
                tree: "audit",
                error: "device index key is not 25 bytes".to_owned(),
            })?);
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
