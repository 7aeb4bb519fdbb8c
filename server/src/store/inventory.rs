//! Inventory history in the store: the latest inventory of each device and
//! the list of changes between consecutive ones, written in the same
//! transaction as the report that carried them.
//!
//! Trees:
//! - `inventory_latest`: device id → [`LatestInventory`] (the seq of the
//!   first report that carried it and when that arrived, its SHA-256, and the
//!   inventory's protobuf bytes), rewritten only when the inventory changes:
//!   the device record's verdict keeps the hash and the latest report that
//!   carried it, so a heartbeat or an unchanged inventory touches neither
//!   this tree nor `inventory_changes`;
//! - `inventory_changes`: device id ‖ seq (big-endian u64) ‖ index (big-endian
//!   u32) → [`InventoryChange`], so a device's changes scan in report order.

use custodian_proto::identity::DeviceId;
use custodian_proto::v1 as pb;
use prost::Message;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::{Store, StoreError, decode, encode};
use crate::inventory::{self, Change};

/// What a report carries besides its envelope.
#[derive(Debug, Clone)]
pub enum ReportContent {
    /// A full inventory.
    Inventory {
        /// The inventory, decoded.
        inventory: Box<pb::Inventory>,
        /// SHA-256 of its bytes exactly as they were in the signed payload.
        sha256: [u8; 32],
    },
    /// A heartbeat: the inventory is unchanged from the one with this hash.
    Heartbeat {
        /// The hash the agent says its current inventory has.
        inventory_sha256: [u8; 32],
    },
}

/// A device's latest full inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestInventoryV1 {
    /// The report that carried it: as stored, the first with these bytes;
    /// as [`Store::latest_inventory`] returns it, the latest.
    pub seq: u64,
    /// When that report arrived, Unix ms.
    pub received_at_ms: i64,
    /// SHA-256 of its protobuf bytes as signed.
    pub sha256: [u8; 32],
    /// Its protobuf bytes: prost's encoding of the inventory as decoded.
    /// That is the bytes as signed unless the agent sent fields this server
    /// does not know; the signed bytes themselves are in the report's
    /// envelope, in the envelope log.
    #[serde(with = "serde_bytes")]
    pub inventory: Vec<u8>,
}

impl LatestInventoryV1 {
    /// The inventory, decoded.
    pub fn decode(&self) -> Result<pb::Inventory, StoreError> {
        pb::Inventory::decode(self.inventory.as_slice())
            .map_err(|e| StoreError::Decode { tree: "inventory_latest", error: e.to_string() })
    }
}

/// One recorded change in a device's inventory: ready to become an audit
/// event (actor: the device; time; what changed; the report's seq).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryChangeV1 {
    /// The device.
    pub device_id: DeviceId,
    /// The report that showed the change.
    pub seq: u64,
    /// When the server received that report, Unix ms.
    pub at_ms: i64,
    /// What changed.
    pub change: Change,
}

#[derive(Serialize, Deserialize)]
enum VersionedLatest {
    V1(LatestInventoryV1),
}

#[derive(Serialize, Deserialize)]
enum VersionedChange {
    V1(InventoryChangeV1),
}

/// What applying a report to the inventory history did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Changes recorded (empty for heartbeats and unchanged inventories).
    pub changes: Vec<InventoryChangeV1>,
    /// A heartbeat's hash did not match the latest inventory (or there is
    /// none): the agent must send a full one.
    pub wants_full_inventory: bool,
}

fn change_key(device_id: DeviceId, seq: u64, index: u32) -> [u8; 28] {
    let mut key = [0u8; 28];
    key[..16].copy_from_slice(device_id.as_bytes());
    key[16..24].copy_from_slice(&seq.to_be_bytes());
    key[24..].copy_from_slice(&index.to_be_bytes());
    key
}

/// Records a report's inventory (or checks a heartbeat's hash) inside the
/// report's transaction. A changed inventory is encoded here, when it is
/// written, rather than for every report.
///
/// `latest_sha256` is the hash of the device's latest full inventory as its
/// device record has it (`None` if it has none, or the record predates
/// keeping it). A heartbeat is checked against it, and an inventory that
/// matches it is unchanged: neither reads nor writes `inventory_latest`,
/// whose record is rewritten only when the inventory changes. (The device
/// record says which report last carried it; see
/// [`Store::latest_inventory`].)
pub(super) fn apply(
    latest_tree: &TransactionalTree,
    changes_tree: &TransactionalTree,
    latest_sha256: Option<[u8; 32]>,
    device_id: DeviceId,
    seq: u64,
    received_at_ms: i64,
    content: &ReportContent,
) -> Result<Applied, ConflictableTransactionError<StoreError>> {
    if let Some(latest_sha256) = latest_sha256 {
        match content {
            ReportContent::Heartbeat { inventory_sha256 } => {
                return Ok(Applied { changes: Vec::new(), wants_full_inventory: &latest_sha256 != inventory_sha256 });
            }
            ReportContent::Inventory { sha256, .. } if sha256 == &latest_sha256 => return Ok(Applied::default()),
            ReportContent::Inventory { .. } => {}
        }
    }
    let previous: Option<LatestInventoryV1> = match latest_tree.get(device_id.as_bytes())? {
        Some(bytes) => Some(
            match decode::<VersionedLatest>("inventory_latest", &bytes).map_err(ConflictableTransactionError::Abort)? {
                VersionedLatest::V1(latest) => latest,
            },
        ),
        None => None,
    };
    match content {
        ReportContent::Heartbeat { inventory_sha256 } => Ok(Applied {
            changes: Vec::new(),
            wants_full_inventory: previous.is_none_or(|p| &p.sha256 != inventory_sha256),
        }),
        ReportContent::Inventory { inventory, sha256 } => {
            let changes: Vec<Change> = match &previous {
                None => vec![inventory::first(inventory)],
                Some(previous) if &previous.sha256 == sha256 => Vec::new(),
                Some(previous) => {
                    let old = previous.decode().map_err(ConflictableTransactionError::Abort)?;
                    inventory::diff(&old, inventory)
                }
            };
            let changes: Vec<InventoryChangeV1> = changes
                .into_iter()
                .map(|change| InventoryChangeV1 { device_id, seq, at_ms: received_at_ms, change })
                .collect();
            for (index, change) in changes.iter().enumerate() {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                changes_tree
                    .insert(&change_key(device_id, seq, index), encode(&VersionedChange::V1(change.clone())))?;
            }
            let inventory = inventory.encode_to_vec();
            let latest = LatestInventoryV1 { seq, received_at_ms, sha256: *sha256, inventory };
            latest_tree.insert(device_id.as_bytes(), encode(&VersionedLatest::V1(latest)))?;
            Ok(Applied { changes, wants_full_inventory: false })
        }
    }
}

impl Store {
    /// A device's latest full inventory, with the latest report that
    /// carried it.
    pub fn latest_inventory(&self, device_id: DeviceId) -> Result<Option<LatestInventoryV1>, StoreError> {
        let Some(bytes) = self.inventory_latest.get(device_id.as_bytes())? else {
            return Ok(None);
        };
        let VersionedLatest::V1(mut latest) = decode::<VersionedLatest>("inventory_latest", &bytes)?;
        // The record is written when the inventory changes, so its seq is
        // the first report that carried these bytes; later reports with the
        // same bytes are recorded in the device's verdict.
        if let Some(verdict) = self.device(device_id)?.and_then(|device| device.inventory_verdict)
            && verdict.sha256 == Some(latest.sha256)
            && verdict.seq > latest.seq
        {
            latest.seq = verdict.seq;
            latest.received_at_ms = verdict.received_at_ms;
        }
        Ok(Some(latest))
    }

    /// A device's most recent `limit` inventory changes: newest report
    /// first, and within a report in the order they were recorded.
    pub fn inventory_changes(&self, device_id: DeviceId, limit: usize) -> Result<Vec<InventoryChangeV1>, StoreError> {
        let mut entries = self
            .inventory_changes
            .scan_prefix(device_id.as_bytes())
            .rev()
            .take(limit)
            .map(|entry| {
                let (key, value) = entry?;
                let change = decode::<VersionedChange>("inventory_changes", &value).map(|VersionedChange::V1(c)| c)?;
                Ok((key, change))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Keys are device id ‖ seq ‖ index: order by seq descending, index ascending.
        entries.sort_by(|(a, _), (b, _)| b[16..24].cmp(&a[16..24]).then(a[24..].cmp(&b[24..])));
        Ok(entries.into_iter().map(|(_, change)| change).collect())
    }
}

#[cfg(test)]
mod tests;
