//! Custody manifests in the store.
//!
//! Tree `custody_manifests` (opened on first use): manifest id (big-endian
//! u64) → [`ManifestRecordV1`], versioned. Each change is written in one
//! transaction with its audit event.

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

use super::{Store, StoreError, audit, decode, encode, flatten_tx_error};
use crate::audit::event::AuditEvent;
use crate::custody::Reconciliation;

const MANIFESTS: &str = "custody_manifests";

/// A stored manifest: the signed bytes, and what has happened to it since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRecordV1 {
    /// `manifest.json`, exactly as signed.
    #[serde(with = "serde_bytes")]
    pub json: Vec<u8>,
    /// Its Ed25519 signature.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// The latest reconciliation, if any.
    pub reconciliation: Option<Reconciliation>,
    /// Who closed it and when (Unix ms), once closed.
    pub closed: Option<(String, i64)>,
}

#[derive(Serialize, Deserialize)]
enum VersionedManifest {
    V1(ManifestRecordV1),
}

/// Why a manifest change was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ChangeManifestError {
    /// No such manifest.
    #[error("no custody manifest {0}")]
    Unknown(u64),
    /// The change is not allowed in its state.
    #[error("{0}")]
    Refused(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// A fresh manifest id.
    pub fn next_manifest_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    /// Stores a new manifest with its audit event; returns the event's seq.
    pub fn put_manifest(&self, id: u64, record: &ManifestRecordV1, event: AuditEvent) -> Result<u64, StoreError> {
        let manifests = self.db.open_tree(MANIFESTS)?;
        let _gate = self.transaction_gate();
        (&manifests, &self.audit)
            .transaction(|(manifests, audit_tree)| {
                manifests.insert(&id.to_be_bytes(), encode(&VersionedManifest::V1(record.clone())))?;
                audit::append(audit_tree, event.clone())
            })
            .map_err(flatten_tx_error)
    }

    /// The manifest `id`.
    pub fn manifest(&self, id: u64) -> Result<Option<ManifestRecordV1>, StoreError> {
        let manifests = self.db.open_tree(MANIFESTS)?;
        manifests
            .get(id.to_be_bytes())?
            .map(|bytes| decode::<VersionedManifest>(MANIFESTS, &bytes).map(|VersionedManifest::V1(m)| m))
            .transpose()
    }

    /// Changes manifest `id` with `change` (which may refuse) and appends
    /// `event`, in one transaction. Returns the record and the event's seq.
    pub fn change_manifest(
        &self,
        id: u64,
        change: impl Fn(&mut ManifestRecordV1) -> Result<(), String>,
        event: AuditEvent,
    ) -> Result<(ManifestRecordV1, u64), ChangeManifestError> {
        let manifests = self.db.open_tree(MANIFESTS).map_err(StoreError::from)?;
        let _gate = self.transaction_gate();
        (&manifests, &self.audit)
            .transaction(|(manifests, audit_tree)| {
                let abort = |e: ChangeManifestError| ConflictableTransactionError::Abort(e);
                let Some(bytes) = manifests.get(id.to_be_bytes())? else {
                    return Err(abort(ChangeManifestError::Unknown(id)));
                };
                let VersionedManifest::V1(mut record) =
                    decode(MANIFESTS, &bytes).map_err(|e| abort(ChangeManifestError::Store(e)))?;
                change(&mut record).map_err(|e| abort(ChangeManifestError::Refused(e)))?;
                manifests.insert(&id.to_be_bytes(), encode(&VersionedManifest::V1(record.clone())))?;
                let seq = audit::append(audit_tree, event.clone()).map_err(|e| match e {
                    ConflictableTransactionError::Abort(e) => abort(ChangeManifestError::Store(e)),
                    ConflictableTransactionError::Conflict => ConflictableTransactionError::Conflict,
                    ConflictableTransactionError::Storage(e) => ConflictableTransactionError::Storage(e),
                })?;
                Ok((record, seq))
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Abort(e) => e,
                sled::transaction::TransactionError::Storage(e) => ChangeManifestError::Store(e.into()),
            })
    }
}
