//! The server's storage: typed methods over an embedded sled database. This
//! is the only module that touches sled; everything else sees records.
//!
//! Trees:
//! - `devices`: device id (16 bytes) → [`DeviceRecord`], perhaps behind on
//!   its report-driven fields, which `device_hot` (group key → those fields)
//!   holds until they are settled (see `hot.rs`): read it only through
//!   [`Store::device`] and [`Store::list_devices`], or after `Store::settled`;
//! - `idx_hostname`, `idx_serial`: `lowercase(key) 0x00 device id` → empty,
//!   updated in the same transaction as the device record;
//! - `report_groups`, `report_milestones`: where each stored report is, one
//!   record per committed group, chained per device (see `report_index.rs`);
//!   the envelopes themselves are in the envelope log (`envelopes.rs`);
//! - `reports`: device id ‖ seq (big-endian u64) → a report's record, as
//!   stores before schema version 2 wrote them (read, no longer written):
//!   `0xC2` (a byte MessagePack never uses), the sequence number of its
//!   `report_accepted` audit event (big-endian u64), and a pointer to its
//!   [`StoredEnvelope`]'s encoding in the envelope log; earlier still, the
//!   encoding itself, after `0xC1` and the audit sequence number, or alone;
//! - `tokens`: SHA-256 of the token secret → [`TokenRecord`];
//! - `meta`: the schema version;
//! - `inventory_latest`, `inventory_changes`: inventory history (see [`inventory`]).
//! - `idx_facets`: state byte ‖ device id → site and models, for filtered
//!   lists (see `lifecycle.rs`); `idx_serial` also holds asset tags and MACs;
//! - `audit`, `audit_checkpoints`: the audit trail (see `audit.rs`), appended
//!   in the same transaction as the change each event records.
//!
//! Writes are not durable until [`Store::flush`] returns: sled syncs in the
//! background, so callers flush before they acknowledge anything.

pub mod attestation;
mod audit;
mod commit;
mod custody;
mod disposal;
mod envelopes;
mod hot;
pub mod inventory;
mod lifecycle;
mod records;
mod report_index;
mod rollout;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};

use custodian_proto::identity::DeviceId;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

pub use records::{
    DeviceKind, DeviceRecordV1 as DeviceRecord, InventoryVerdictV1 as InventoryVerdict, RevocationV1 as Revocation,
    StoredEnvelopeV1 as StoredEnvelope, TokenRecordV1 as TokenRecord, TokenUseV1 as TokenUse,
};
use records::{VersionedDevice, VersionedEnvelope, VersionedToken};

pub use audit::{AuditEntry, StoredCheckpointV1 as StoredCheckpoint};
pub use commit::{CommitOutcomes, Prepared};
pub use custody::{ChangeManifestError, ManifestRecordV1 as ManifestRecord};
pub use disposal::{
    AcknowledgeAlertError, CLOCK_SKEW_ALLOWANCE_MS, EvidenceWindow, SanitisationProof,
    StoredCertificateV1 as StoredCertificate, done_since,
};
pub use inventory::{InventoryChangeV1 as InventoryChange, LatestInventoryV1 as LatestInventory, ReportContent};
pub use lifecycle::{
    AddDevicesError, DeviceFacets, ExpectedDevice, FacetKey, FacetScanEnd, NewDevice, TransitionAttributes,
    TransitionOutcome, normalise_mac,
};
pub use rollout::ChangeRolloutError;

use crate::audit::event::{AuditEvent, EventKind, Evidence};
use crate::lifecycle::LifecycleState;

/// The schema version this build reads and writes. A store is marked with
/// it when this build opens it, so that an older build, which would not see
/// what this one writes (and would drop it when rewriting a record), refuses
/// the store instead.
///
/// - 1: everything before `report_groups`.
/// - 2: reports are entries in `report_groups` (decision 010); version-1
///   stores are read as they are, with no migration.
/// - 3: device records' hot fields may be deferred to `device_hot`
///   (decision 011), which an older build would not apply.
const SCHEMA_VERSION: u64 = 3;
const SCHEMA_VERSION_KEY: &[u8] = b"schema_version";

/// The file sled 0.34 keeps everything in, inside the store's directory.
const SLED_FILE: &str = "db";

/// A storage failure: the disk, sled, or a value that does not decode.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error (I/O or corruption). Not marked as the
    /// source: the message already carries it, and error chains would
    /// print it twice.
    #[error("storage error: {0}")]
    Sled(sled::Error),
    /// Another process (usually a running `custodian-server serve`) holds the store.
    #[error("the store at {} is in use by another process (is custodian-server already running?)", .0.display())]
    Locked(std::path::PathBuf),
    /// A stored value did not decode.
    #[error("stored value in {tree} does not decode: {error}")]
    Decode {
        /// The tree it was in.
        tree: &'static str,
        /// The decoder's complaint.
        error: String,
    },
    /// A sync of the store failed earlier. After a failed `fdatasync` the
    /// kernel may have dropped the unwritten pages and a later sync can
    /// report success without them, so no later flush is trusted either.
    #[error(
        "an earlier sync of the store failed ({0}); nothing written since can be trusted to be on disk, so nothing \
         more is acknowledged: restart custodian-server (it recovers from what is on disk, and agents resend \
         whatever was not acknowledged)"
    )]
    SyncFailed(String),
    /// The store was written by a newer version of Custodian.
    #[error("store schema version {found} is newer than this build's {SCHEMA_VERSION}; upgrade custodian-server")]
    TooNew {
        /// The version found.
        found: u64,
    },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Sled(e)
    }
}

/// Why an enrolment could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// No token with that secret exists.
    #[error("unknown enrolment token")]
    UnknownToken,
    /// The token was already used.
    #[error("enrolment token already used (by device {device_id})")]
    TokenUsed {
        /// The device that used it.
        device_id: DeviceId,
    },
    /// The token has expired.
    #[error("enrolment token expired")]
    TokenExpired,
    /// The register entry the machine was matched to changed, or was
    /// enrolled by another machine, while this one enrolled.
    #[error("the register entry for this machine changed during enrolment; try again")]
    RegisterChanged,
    /// The token is bound to an asset tag whose register entry names a
    /// different serial number than the enrolling machine reports.
    #[error(
        "this token is for asset tag {asset_tag} (serial {registered}), but this machine reports serial {reported}"
    )]
    SerialMismatch {
        /// The token's asset tag.
        asset_tag: String,
        /// The serial the register holds for it.
        registered: String,
        /// The serial the machine reports.
        reported: String,
    },
    /// The token is bound to an asset tag that no unenrolled register entry has.
    #[error("this token is for asset tag {0}, which has no unenrolled entry in the register")]
    AssetTagUnavailable(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A verified report on its way into the store.
#[derive(Debug, Clone)]
pub struct IncomingReport {
    /// The reporting device (from its certificate, checked against the payload).
    pub device_id: DeviceId,
    /// The report's sequence number.
    pub seq: u64,
    /// The envelope as received.
    pub envelope: StoredEnvelope,
    /// Hostname in the report.
    pub hostname: String,
    /// System serial in the report, if readable.
    pub serial: Option<String>,
    /// System vendor in the report, if readable.
    pub vendor: Option<String>,
    /// System model in the report, if readable.
    pub model: Option<String>,
    /// The inventory, or a heartbeat's hash. For a heartbeat, hostname,
    /// serial, vendor and model are not taken from the report.
    pub content: ReportContent,
}

/// What committing a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Stored.
    Accepted,
    /// Stored, but it was a heartbeat whose hash does not match the latest
    /// inventory: the agent must send a full inventory next.
    AcceptedWantsInventory,
    /// Byte-identical to the report already stored at that sequence number.
    Duplicate,
}

/// Why a report was refused at commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitReportError {
    /// No such device.
    #[error("unknown device {0}")]
    UnknownDevice(DeviceId),
    /// The device is revoked.
    #[error("device {0} is revoked")]
    Revoked(DeviceId),
    /// The device is lost or disposed of; its certificate is refused.
    #[error("device {device_id} is {state}; its certificate is refused")]
    Refused {
        /// The device.
        device_id: DeviceId,
        /// Its lifecycle state.
        state: LifecycleState,
    },
    /// The sequence number is not above the last accepted one and the bytes
    /// differ from what was accepted at that number.
    #[error("replayed or out-of-order report: seq {seq}, last accepted {last_seq}")]
    Replayed {
        /// The report's sequence number.
        seq: u64,
        /// The device's last accepted sequence number.
        last_seq: u64,
    },
}

/// The server's store.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// sled's own file, opened again so that a flush can end with an
    /// `fdatasync` (see [`Store::flush_blocking`]).
    db_file: Arc<std::fs::File>,
    /// Stored reports' envelopes (see `envelopes.rs`).
    envelopes: envelopes::EnvelopeLog,
    devices: sled::Tree,
    idx_hostname: sled::Tree,
    idx_serial: sled::Tree,
    idx_facets: sled::Tree,
    /// Report records written before `report_groups` (read, no longer written).
    reports: sled::Tree,
    /// Where stored reports are, one record per committed group (see
    /// `report_index.rs`).
    report_groups: sled::Tree,
    /// Each device's first report in every 64 sequence numbers (see
    /// `report_index.rs`).
    report_milestones: sled::Tree,
    tokens: sled::Tree,
    inventory_latest: sled::Tree,
    inventory_changes: sled::Tree,
    audit: sled::Tree,
    audit_checkpoints: sled::Tree,
    attestations: sled::Tree,
    idx_attestation_serial: sled::Tree,
    /// Devices' hot fields deferred by the committer (see `hot.rs`).
    device_hot: sled::Tree,
    /// Keeps flushes and transactions apart (see [`Store::transaction_gate`]).
    gate: Arc<RwLock<()>>,
    /// Why a flush failed, once one has: every later flush fails too (see
    /// [`StoreError::SyncFailed`]).
    sync_failure: Arc<Mutex<Option<String>>>,
    /// Set once a flush has failed, for [`Store::sync_failed`].
    sync_failed_tx: Arc<tokio::sync::watch::Sender<bool>>,
    /// Makes the next flush fail, as a disk error would (tests only).
    #[cfg(test)]
    fail_next_flush: Arc<std::sync::atomic::AtomicBool>,
    /// The committer's device records (see `hot.rs`).
    hot: Arc<Mutex<hot::HotDevices>>,
}

impl Store {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(path).mode(sled::Mode::HighThroughput).open().map_err(|e| match e {
            // sled wraps the lock failure in an io::Error of its own kind.
            sled::Error::Io(io)
                if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("could not acquire lock") =>
            {
                StoreError::Locked(path.to_owned())
            }
            e => StoreError::Sled(e),
        })?;
        let meta = db.open_tree("meta")?;
        match meta.get(SCHEMA_VERSION_KEY)? {
            None => {
                meta.insert(SCHEMA_VERSION_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                db.flush()?;
            }
            Some(bytes) => {
                let found = u64::from_be_bytes(bytes.as_ref().try_into().map_err(|_| StoreError::Decode {
                    tree: "meta",
                    error: "schema version is not 8 bytes".to_owned(),
                })?);
                if found > SCHEMA_VERSION {
                    return Err(StoreError::TooNew { found });
                }
                // Migrations from older schema versions go here; 1 needs none.
                if found < SCHEMA_VERSION {
                    meta.insert(SCHEMA_VERSION_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                    db.flush()?;
                }
            }
        }
        let store = Self {
            devices: db.open_tree("devices")?,
            idx_hostname: db.open_tree("idx_hostname")?,
            idx_serial: db.open_tree("idx_serial")?,
            reports: db.open_tree("reports")?,
            report_groups: db.open_tree(report_index::TREE)?,
            report_milestones: db.open_tree(report_index::MILESTONES)?,
            tokens: db.open_tree("tokens")?,
            inventory_latest: db.open_tree("inventory_latest")?,
            inventory_changes: db.open_tree("inventory_changes")?,
            audit: db.open_tree("audit")?,
            audit_checkpoints: db.open_tree("audit_checkpoints")?,
            attestations: db.open_tree(attestation::ATTESTATIONS_TREE)?,
            idx_attestation_serial: db.open_tree(attestation::IDX_SERIAL_TREE)?,
            idx_facets: db.open_tree("idx_facets")?,
            device_hot: db.open_tree(hot::TREE)?,
            gate: Arc::default(),
            sync_failure: Arc::default(),
            sync_failed_tx: Arc::new(tokio::sync::watch::channel(false).0),
            #[cfg(test)]
            fail_next_flush: Arc::default(),
            hot: Arc::default(),
            envelopes: envelopes::EnvelopeLog::open(path)?,
            db_file: Arc::new(
                std::fs::File::open(path.join(SLED_FILE))
                    .map_err(|e| envelopes::io_error("open the store's file", &e))?,
            ),
            db,
        };
        // Device records as the last run left them, deferred fields and all.
        drop(store.settled()?);
        store.build_facet_index_if_missing()?;
        Ok(store)
    }

    /// Makes every write so far durable, on the runtime's blocking pool
    /// (not sled's `flush_async`, whose thread pool a burst of flushes can
    /// exhaust while the log writer it waits for needs a thread too).
    pub async fn flush(&self) -> Result<(), StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.flush_blocking())
            .await
            .map_err(|e| StoreError::Sled(sled::Error::Io(std::io::Error::other(e.to_string()))))?
    }

    /// Makes every write so far durable, blocking the calling thread. No
    /// transaction runs while sled flushes.
    ///
    /// sled 0.34's flush writes its buffers and waits with `sync_file_range`,
    /// which neither flushes the disk's volatile write cache nor writes the
    /// file's metadata (spacejam/sled#1452), so what it has written could
    /// still be lost to a power cut; sled itself calls `fsync` only every
    /// half second. The `fdatasync` here, on the same file, closes that gap
    /// before anything is acknowledged. It runs after the gate is released,
    /// so transactions may go on meanwhile (anything they add is synced too,
    /// which does no harm).
    ///
    /// Once a flush has failed, every later one fails too, saying why
    /// ([`StoreError::SyncFailed`]): the server then acknowledges nothing
    /// more until it is restarted and recovers from what is on disk.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        let failed = || self.sync_failure.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(why) = failed().as_ref() {
            return Err(StoreError::SyncFailed(why.clone()));
        }
        // Not under the lock: flushes from the committer and from operator
        // calls overlap their syncs, as they always have.
        let res = self.flush_and_sync();
        let mut failure = failed();
        match (&res, failure.as_ref()) {
            (Err(e), None) => {
                tracing::error!(error = %e, "a sync of the store failed; nothing more will be acknowledged until restart");
                *failure = Some(e.to_string());
                self.sync_failed_tx.send_replace(true);
                res
            }
            (Err(_), Some(_)) => res,
            // Another flush failed while this one ran: what this one wrote
            // may be among the pages lost.
            (Ok(()), Some(why)) => Err(StoreError::SyncFailed(why.clone())),
            (Ok(()), None) => Ok(()),
        }
    }

    /// Completes once a flush has failed (at once if one already has): the
    /// server stops then, so that its supervisor restarts it and it
    /// recovers from what is on disk.
    pub async fn sync_failed(&self) {
        let mut rx = self.sync_failed_tx.subscribe();
        // The sender lives as long as the store, so this only ends on `true`.
        let _ = rx.wait_for(|failed| *failed).await;
    }

    fn flush_and_sync(&self) -> Result<(), StoreError> {
        #[cfg(test)]
        if self.fail_next_flush.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(envelopes::io_error("sync the store's file", &std::io::Error::other("injected failure")));
        }
        {
            let _gate = self.gate.write().unwrap_or_else(PoisonError::into_inner);
            self.db.flush()?;
        }
        self.db_file.sync_data().map_err(|e| envelopes::io_error("sync the store's file", &e))
    }

    /// Makes the next flush fail as a disk error would.
    #[cfg(test)]
    pub(crate) fn fail_next_flush(&self) {
        self.fail_next_flush.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Held (shared) around every transaction, and exclusively by a flush.
    ///
    /// sled 0.34 can deadlock when a transaction queues for its global
    /// concurrency lock while a flush holds that lock shared and waits for the
    /// log: the queued writer blocks the threads that would finish the flush.
    /// Found with concurrent enrolments under the ingest benchmark. With this
    /// gate no transaction is ever waiting inside sled during a flush.
    fn transaction_gate(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a new enrolment token under the hash of its secret, with its
    /// audit event.
    pub fn create_token(&self, token_hash: &[u8; 32], token: &TokenRecord) -> Result<(), StoreError> {
        let mut event = AuditEvent::new(token.created_at_ms, token.created_by.clone(), EventKind::TokenCreated, None)
            .with_detail("expires_at_ms", token.expires_at_ms.to_string());
        event.evidence.push(Evidence { name: "token_secret".to_owned(), sha256: hex::encode(token_hash) });
        if let Some(site) = &token.site {
            event = event.with_detail("site", site.clone());
        }
        if let Some(asset_tag) = &token.asset_tag {
            event = event.with_detail("asset_tag", asset_tag.clone());
        }
        let _gate = self.transaction_gate();
        (&self.tokens, &self.audit)
            .transaction(|(tokens, audit)| {
                tokens.insert(token_hash, encode(&VersionedToken::V1(token.clone())))?;
                audit::append(audit, event.clone())?;
                Ok(())
            })
            .map_err(flatten_tx_error)
    }

    /// Checks that a token can be used at `now_ms`, without using it.
    pub fn check_token(&self, token_hash: &[u8; 32], now_ms: i64) -> Result<TokenRecord, EnrollError> {
        let token = self.tokens.get(token_hash).map_err(StoreError::from)?.ok_or(EnrollError::UnknownToken)?;
        let token: TokenRecord = decode::<VersionedToken>("tokens", &token)?.into();
        check_token(&token, now_ms)?;
        Ok(token)
    }

    /// Uses the token and records the new device, in one transaction with its
    /// audit event. The device's site comes from the token. With
    /// `register_match`, the device takes over that unenrolled register entry
    /// (and its id, which `device.device_id` must already be).
    pub fn enroll(
        &self,
        token_hash: &[u8; 32],
        now_ms: i64,
        device: DeviceRecord,
        register_match: Option<DeviceId>,
    ) -> Result<DeviceRecord, EnrollError> {
        let _hot = self.settled()?;
        let _gate = self.transaction_gate();
        let res = (&self.tokens, &self.devices, &self.idx_hostname, &self.idx_serial, &self.idx_facets, &self.audit)
            .transaction(|(tokens, devices, idx_hostname, idx_serial, idx_facets, audit)| {
                let token =
                    tokens.get(token_hash)?.ok_or(ConflictableTransactionError::Abort(EnrollError::UnknownToken))?;
                let mut token: TokenRecord = decode::<VersionedToken>("tokens", &token)
                    .map_err(|e| ConflictableTransactionError::Abort(e.into()))?
                    .into();
                check_token(&token, now_ms).map_err(ConflictableTransactionError::Abort)?;
                token.used = Some(TokenUse { at_ms: now_ms, device_id: device.device_id });
                tokens.insert(token_hash, encode(&VersionedToken::V1(token.clone())))?;
                let existing = match register_match {
                    None => None,
                    Some(device_id) => {
                        let bytes = devices
                            .get(device_id.as_bytes())?
                            .ok_or(ConflictableTransactionError::Abort(EnrollError::RegisterChanged))?;
                        let existing: DeviceRecord = decode::<VersionedDevice>("devices", &bytes)
                            .map_err(|e| ConflictableTransactionError::Abort(e.into()))?
                            .into();
                        if existing.is_enrolled() || device_id != device.device_id {
                            return Err(ConflictableTransactionError::Abort(EnrollError::RegisterChanged));
                        }
                        Some(existing)
                    }
                };
                let (mut device, from) = lifecycle::enrolled_record(&device, existing.as_ref(), token.site.clone());
                // The token decides what the machine is: a workstation or a wipe station.
                device.kind = token.kind;
                put_device(devices, idx_hostname, idx_serial, idx_facets, existing.as_ref(), &device)?;
                let mut event = AuditEvent::new(
                    now_ms,
                    AuditEvent::device_actor(device.device_id),
                    EventKind::DeviceEnrolled,
                    Some(device.device_id),
                )
                .with_detail("hostname", device.hostname.clone())
                .with_detail("token_created_by", token.created_by.clone());
                event.evidence.push(Evidence::of("device_public_key", &device.public_key));
                if let Some(serial) = &device.serial {
                    event = event.with_detail("serial", serial.clone());
                }
                if existing.is_some() {
                    event = event.with_detail("matched_register_entry", "true");
                }
                event.from = from.map(|s| s.as_str().to_owned());
                event.to = Some(device.state.as_str().to_owned());
                audit::append(audit, event).map_err(|e| match e {
                    ConflictableTransactionError::Abort(e) => ConflictableTransactionError::Abort(e.into()),
                    ConflictableTransactionError::Storage(e) => ConflictableTransactionError::Storage(e),
                    ConflictableTransactionError::Conflict => ConflictableTransactionError::Conflict,
                })?;
                Ok(device)
            });
        res.map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => EnrollError::Store(e.into()),
        })
    }

    /// The device with this id.
    pub fn device(&self, device_id: DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
        drop(self.settled()?);
        self.devices
            .get(device_id.as_bytes())?
            .map(|bytes| decode::<VersionedDevice>("devices", &bytes).map(Into::into))
            .transpose()
    }

    /// Every device whose id, hostname or serial is `query` (case-insensitive
    /// for hostname and serial).
    pub fn find_devices(&self, query: &str) -> Result<Vec<DeviceRecord>, StoreError> {
        let query = query.trim();
        if let Ok(device_id) = query.parse::<DeviceId>() {
            return Ok(self.device(device_id)?.into_iter().collect());
        }
        let mut ids = Vec::new();
        for index in [&self.idx_hostname, &self.idx_serial] {
            for entry in index.scan_prefix(index_prefix(query)) {
                let (key, _) = entry?;
                ids.push(id_from_index_key(&key)?);
            }
        }
        ids.sort();
        ids.dedup();
        let mut devices = Vec::with_capacity(ids.len());
        for device_id in ids {
            devices.extend(self.device(device_id)?);
        }
        Ok(devices)
    }

    /// Every device, ordered by hostname then id.
    pub fn list_devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        drop(self.settled()?);
        let mut devices = self
            .devices
            .iter()
            .values()
            .map(|bytes| decode::<VersionedDevice>("devices", &bytes?).map(Into::into))
            .collect::<Result<Vec<DeviceRecord>, StoreError>>()?;
        devices.sort_by_key(|d| (d.hostname.to_lowercase(), d.device_id));
        Ok(devices)
    }

    /// Marks a device revoked, unless it already is. Returns the record as it
    /// now stands and whether this call revoked it.
    pub fn revoke(
        &self,
        device_id: DeviceId,
        revocation: Revocation,
    ) -> Result<Option<(DeviceRecord, bool)>, StoreError> {
        let event = AuditEvent::new(
            revocation.revoked_at_ms,
            revocation.revoked_by.clone(),
            EventKind::DeviceRevoked,
            Some(device_id),
        )
        .with_reason(revocation.reason.clone());
        self.update_device_audited(
            device_id,
            |device| {
                if device.revocation.is_some() {
                    return false;
                }
                device.revocation = Some(revocation.clone());
                true
            },
            Some(event),
        )
    }

    /// Records a renewed certificate's expiry.
    pub fn set_cert_expiry(&self, device_id: DeviceId, not_after_ms: i64) -> Result<Option<DeviceRecord>, StoreError> {
        Ok(self
            .update_device(device_id, |device| {
                device.cert_not_after_ms = not_after_ms;
                true
            })?
            .map(|(device, _)| device))
    }

    fn update_device(
        &self,
        device_id: DeviceId,
        change: impl Fn(&mut DeviceRecord) -> bool,
    ) -> Result<Option<(DeviceRecord, bool)>, StoreError> {
        self.update_device_audited(device_id, change, None)
    }

    /// Changes a device and, if it changed and `event` is given, appends the
    /// event in the same transaction.
    fn update_device_audited(
        &self,
        device_id: DeviceId,
        change: impl Fn(&mut DeviceRecord) -> bool,
        event: Option<AuditEvent>,
    ) -> Result<Option<(DeviceRecord, bool)>, StoreError> {
        let _hot = self.settled()?;
        let _gate = self.transaction_gate();
        let res = (&self.devices, &self.idx_hostname, &self.idx_serial, &self.idx_facets, &self.audit).transaction(
            |(devices, idx_hostname, idx_serial, idx_facets, audit)| {
                let Some(old) = device_in(devices, device_id)? else {
                    return Ok(None);
                };
                let mut device = old.clone();
                let changed = change(&mut device);
                if changed {
                    put_device(devices, idx_hostname, idx_serial, idx_facets, Some(&old), &device)?;
                    if let Some(event) = &event {
                        audit::append(audit, event.clone())?;
                    }
                }
                Ok(Some((device, changed)))
            },
        );
        res.map_err(flatten_tx_error)
    }

    /// Stores one verified report, refusing replays; identical resends are
    /// reported as duplicates and change nothing. Not durable until
    /// [`Store::flush`]. A group of one for [`Store::commit_reports`].
    pub fn commit_report(
        &self,
        report: &IncomingReport,
    ) -> Result<Result<CommitOutcome, CommitReportError>, StoreError> {
        let mut outcomes = self.commit_reports(&[report])?;
        Ok(outcomes.pop().expect("one outcome per report"))
    }

    /// The report a device sent with sequence number `seq`.
    pub fn report(&self, device_id: DeviceId, seq: u64) -> Result<Option<StoredEnvelope>, StoreError> {
        let Some(device) = self.device(device_id)? else {
            return Ok(None);
        };
        let start = self.report_walk_start(device_id, seq, device.last_seq, device.last_report)?;
        // Newest first, so the walk stops at the first entry at or below `seq`.
        let mut found = None;
        let mut below = false;
        self.visit_report_chain(start, |entry| {
            if entry.seq <= seq {
                below = true;
                if entry.seq == seq {
                    found = Some(entry.pointer);
                }
            }
            !below
        })?;
        if let Some(pointer) = found {
            return self.stored_envelope(pointer).map(Some);
        }
        if below {
            return Ok(None);
        }
        self.reports
            .get(report_key(device_id, seq))?
            .map(|bytes| self.decode_report_record(&bytes).map(|(envelope, _)| envelope))
            .transpose()
    }

    /// Every report a device sent, in sequence order.
    pub fn reports(&self, device_id: DeviceId) -> Result<Vec<(u64, StoredEnvelope)>, StoreError> {
        // Records in `reports` precede every entry in `report_groups`.
        let mut reports: Vec<(u64, StoredEnvelope)> = self
            .reports
            .scan_prefix(device_id.as_bytes())
            .map(|entry| {
                let (key, value) = entry?;
                Ok((report_record_seq(&key)?, self.decode_report_record(&value)?.0))
            })
            .collect::<Result<_, StoreError>>()?;
        let mut chain = Vec::new();
        let last_report = self.device(device_id)?.and_then(|device| device.last_report);
        self.visit_report_chain(last_report, |entry| {
            chain.push((entry.seq, entry.pointer));
            true
        })?;
        for (seq, pointer) in chain.into_iter().rev() {
            reports.push((seq, self.stored_envelope(pointer)?));
        }
        Ok(reports)
    }

    /// The stored envelope `pointer` names in the envelope log.
    fn stored_envelope(&self, pointer: envelopes::Pointer) -> Result<StoredEnvelope, StoreError> {
        Ok(decode::<VersionedEnvelope>("reports", &self.envelopes.read(pointer)?)?.into())
    }
}

/// The sequence number in a `reports` key.
fn report_record_seq(key: &[u8]) -> Result<u64, StoreError> {
    let bytes = key.get(16..).and_then(|seq| <[u8; 8]>::try_from(seq).ok());
    bytes
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Decode { tree: "reports", error: "key is not 24 bytes".to_owned() })
}

/// The audit event for a flagged inventory change.
fn inventory_change_event(change: &InventoryChange) -> AuditEvent {
    let c = &change.change;
    let mut event = AuditEvent::new(
        change.at_ms,
        AuditEvent::device_actor(change.device_id),
        EventKind::InventoryChanged,
        Some(change.device_id),
    )
    .with_detail("report_seq", change.seq.to_string())
    .with_detail("change", format!("{:?}", c.kind).to_lowercase())
    .with_detail("subject", c.subject.clone());
    if let Some(before) = &c.before {
        event = event.with_detail("before", before.clone());
    }
    if let Some(after) = &c.after {
        event = event.with_detail("after", after.clone());
    }
    if let Some(flag) = &c.flag {
        event = event.with_reason(flag.clone());
    }
    event
}

/// The outcome for an envelope whose sequence number is at or below the
/// device's last accepted one: a duplicate when `stored` (what was accepted
/// at that number, in the same tree) is byte-identical, a replay otherwise.
/// Reports and wipe attestations share the sequence and this rule.
fn replay_outcome(
    stored: Option<&StoredEnvelope>,
    incoming: &StoredEnvelope,
    seq: u64,
    last_seq: u64,
) -> Result<CommitOutcome, CommitReportError> {
    let same = stored.is_some_and(|stored| {
        stored.payload == incoming.payload
            && stored.signature == incoming.signature
            && stored.payload_type == incoming.payload_type
    });
    if same { Ok(CommitOutcome::Duplicate) } else { Err(CommitReportError::Replayed { seq, last_seq }) }
}

fn check_token(token: &TokenRecord, now_ms: i64) -> Result<(), EnrollError> {
    if let Some(used) = &token.used {
        return Err(EnrollError::TokenUsed { device_id: used.device_id });
    }
    if now_ms >= token.expires_at_ms {
        return Err(EnrollError::TokenExpired);
    }
    Ok(())
}

/// The device record stored under `device_id`, read inside a transaction.
fn device_in(
    devices: &TransactionalTree,
    device_id: DeviceId,
) -> Result<Option<DeviceRecord>, ConflictableTransactionError<StoreError>> {
    let Some(bytes) = devices.get(device_id.as_bytes())? else {
        return Ok(None);
    };
    let device = decode::<VersionedDevice>("devices", &bytes).map_err(ConflictableTransactionError::Abort)?;
    Ok(Some(device.into()))
}

/// Writes `device` and moves its index entries from `old`'s keys to its own.
fn put_device(
    devices: &TransactionalTree,
    idx_hostname: &TransactionalTree,
    idx_serial: &TransactionalTree,
    idx_facets: &TransactionalTree,
    old: Option<&DeviceRecord>,
    device: &DeviceRecord,
) -> Result<(), sled::transaction::UnabortableTransactionError> {
    let id = device.device_id;
    let new_facet = lifecycle::facet_entry(device);
    let old_facet = old.map(lifecycle::facet_entry);
    if old_facet.as_ref() != Some(&new_facet) {
        if let Some((key, _)) = &old_facet {
            idx_facets.remove(key.as_slice())?;
        }
        idx_facets.insert(new_facet.0.as_slice(), new_facet.1.as_slice())?;
    }
    if let Some(old) = old
        && old.hostname != device.hostname
    {
        idx_hostname.remove(index_key(&old.hostname, id))?;
    }
    // `idx_serial` indexes every identifier but the hostname: the serial,
    // the asset tag and the MAC addresses.
    let new_ids = lifecycle::identifiers(device);
    let old_ids = old.map(lifecycle::identifiers).unwrap_or_default();
    for gone in old_ids.difference(&new_ids) {
        idx_serial.remove(index_key(gone, id))?;
    }
    if old.is_none_or(|old| old.hostname != device.hostname) {
        idx_hostname.insert(index_key(&device.hostname, id), &[])?;
    }
    for added in new_ids.difference(&old_ids) {
        idx_serial.insert(index_key(added, id), &[])?;
    }
    devices.insert(id.as_bytes(), encode(&VersionedDevice::V1(device.clone())))?;
    Ok(())
}

fn index_prefix(value: &str) -> Vec<u8> {
    let mut key = value.trim().to_lowercase().into_bytes();
    key.push(0);
    key
}

fn index_key(value: &str, device_id: DeviceId) -> Vec<u8> {
    let mut key = index_prefix(value);
    key.extend_from_slice(device_id.as_bytes());
    key
}

fn id_from_index_key(key: &[u8]) -> Result<DeviceId, StoreError> {
    let start =
        key.len().checked_sub(16).ok_or(StoreError::Decode { tree: "index", error: "key too short".to_owned() })?;
    let bytes: [u8; 16] = key[start..].try_into().expect("slice is 16 bytes long");
    Ok(DeviceId::from_bytes(bytes))
}

/// The first byte of a report record holding its audit event's sequence
/// number and its envelope's encoding: never the first byte of a
/// MessagePack value. Read, no longer written.
const REPORT_WITH_AUDIT_SEQ: u8 = 0xC1;

/// The first byte of a report record holding its audit event's sequence
/// number and a pointer into the envelope log. Read, no longer written.
const REPORT_IN_LOG: u8 = 0xC2;

/// A report's record: its audit event's sequence number and where its
/// envelope's encoding is in the envelope log. Read, no longer written:
/// reports are now entries in `report_groups` (`report_index.rs`); tests
/// write these to check that older stores still read.
#[cfg(test)]
fn report_record(audit_seq: u64, pointer: envelopes::Pointer) -> Vec<u8> {
    let mut value = Vec::with_capacity(21);
    value.push(REPORT_IN_LOG);
    value.extend_from_slice(&audit_seq.to_be_bytes());
    value.extend_from_slice(&pointer.to_bytes());
    value
}

/// The audit sequence number a report record carries (none in records
/// written before they did), without reading the envelope.
fn report_record_audit_seq(value: &[u8]) -> Result<Option<u64>, StoreError> {
    match value.split_first() {
        Some((&(REPORT_WITH_AUDIT_SEQ | REPORT_IN_LOG), rest)) => {
            let seq: [u8; 8] = rest.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(|| StoreError::Decode {
                tree: "reports",
                error: "report record shorter than its audit sequence number".to_owned(),
            })?;
            Ok(Some(u64::from_be_bytes(seq)))
        }
        _ => Ok(None),
    }
}

impl Store {
    /// A report record's envelope (read from the envelope log if it is
    /// there) and audit sequence number (if it has one).
    fn decode_report_record(&self, value: &[u8]) -> Result<(StoredEnvelope, Option<u64>), StoreError> {
        let audit_seq = report_record_audit_seq(value)?;
        let envelope = match value.first() {
            Some(&REPORT_IN_LOG) => {
                let pointer = envelopes::Pointer::from_bytes(&value[9..]).ok_or_else(|| StoreError::Decode {
                    tree: "reports",
                    error: "report record's envelope pointer is not 12 bytes".to_owned(),
                })?;
                self.stored_envelope(pointer)?
            }
            Some(&REPORT_WITH_AUDIT_SEQ) => decode::<VersionedEnvelope>("reports", &value[9..])?.into(),
            _ => decode::<VersionedEnvelope>("reports", value)?.into(),
        };
        Ok((envelope, audit_seq))
    }
}

fn report_key(device_id: DeviceId, seq: u64) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..16].copy_from_slice(device_id.as_bytes());
    key[16..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(value).expect("records always serialise")
}

fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    rmp_serde::from_slice(bytes).map_err(|e| StoreError::Decode { tree, error: e.to_string() })
}

fn flatten_tx_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => e.into(),
    }
}

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
