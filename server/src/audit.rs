//! The tamper-evident audit trail: events, the Merkle tree over them, signed
//! checkpoints, and the offline verification of an export.
//!
//! The store ([`crate::store`]) appends each event in the same transaction
//! as the change it records; the leaves of the tree are the exact stored
//! event bytes, so an export is those bytes and anyone can recompute the
//! tree. See `docs/audit-export.md` for the export format.

pub mod checkpoint;
pub mod event;
pub mod export;
pub mod merkle;
pub mod signer;
pub mod verify;
