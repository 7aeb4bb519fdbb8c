//! Signing checkpoints: the server signs the tree head every N events and at
//! least every interval (a background task), and on demand before an
//! export or a proof so that every event is covered.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use tracing::{error, info};

use super::checkpoint::{Checkpoint, load_signing_key, origin_for};
use crate::config::DataDir;
use crate::store::{Store, StoreError, StoredCheckpoint};

/// Signs checkpoints with the server's signing key.
pub struct CheckpointSigner {
    key: SigningKey,
    origin: String,
    public_key_pem: String,
    /// Serialises signing so two callers do not sign the same head twice.
    lock: Mutex<()>,
}

/// When the background task signs.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    /// Sign once this many events are not covered by the latest checkpoint.
    pub every_events: u64,
    /// Sign at least this often while the log is not empty.
    pub interval: Duration,
}

impl CheckpointSigner {
    /// Loads `server-signing.key` from the data directory.
    pub fn load(data_dir: &DataDir) -> anyhow::Result<Self> {
        let pem = std::fs::read_to_string(data_dir.signing_key())
            .with_context(|| format!("read {}", data_dir.signing_key().display()))?;
        Ok(Self::new(load_signing_key(&pem)?))
    }

    /// A signer with `key`.
    pub fn new(key: SigningKey) -> Self {
        let public_key_pem =
            key.verifying_key().to_public_key_pem(LineEnding::LF).expect("an Ed25519 public key always encodes");
        Self { origin: origin_for(&key.verifying_key()), key, public_key_pem, lock: Mutex::new(()) }
    }

    /// The public key, SPKI PEM.
    pub fn public_key_pem(&self) -> &str {
        &self.public_key_pem
    }

    /// Signs and stores a checkpoint of the current head if `due` says so
    /// given (events in the log, latest checkpoint). Not durable until the
    /// store is flushed.
    pub fn sign_if(
        &self,
        store: &Store,
        now_ms: i64,
        due: impl FnOnce(u64, Option<&StoredCheckpoint>) -> bool,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let _guard = self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let head = store.audit_head()?;
        let latest = store.latest_checkpoint()?;
        if head.size == 0 || !due(head.size, latest.as_ref()) {
            return Ok(None);
        }
        let checkpoint =
            Checkpoint { origin: self.origin.clone(), size: head.size, root: head.root(), time_ms: now_ms };
        let (text, signature) = checkpoint.sign(&self.key);
        let stored = StoredCheckpoint { size: head.size, time_ms: now_ms, text, signature: signature.to_vec() };
        store.put_checkpoint(&stored)?;
        Ok(Some(stored))
    }

    /// Signs a checkpoint if the latest one does not cover every event.
    pub fn cover_everything(&self, store: &Store, now_ms: i64) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.sign_if(store, now_ms, |size, latest| latest.is_none_or(|l| l.size < size))
    }
}

/// Whether the policy wants a checkpoint now.
pub fn due(policy: CheckpointPolicy, now_ms: i64, size: u64, latest: Option<&StoredCheckpoint>) -> bool {
    let Some(latest) = latest else {
        return true;
    };
    let interval_ms = i64::try_from(policy.interval.as_millis()).unwrap_or(i64::MAX);
    size >= latest.size.saturating_add(policy.every_events) || now_ms.saturating_sub(latest.time_ms) >= interval_ms
}

/// The background task: checks once a second and signs when due.
pub async fn run(store: Store, signer: std::sync::Arc<CheckpointSigner>, policy: CheckpointPolicy) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let now = custodian_proto::now_ms();
        let (store2, signer2) = (store.clone(), signer.clone());
        let res = tokio::task::spawn_blocking(move || {
            signer2.sign_if(&store2, now, |size, latest| due(policy, now, size, latest))
        })
        .await;
        match res {
            Ok(Ok(Some(checkpoint))) => {
                if let Err(e) = store.flush().await {
                    error!(error = %e, "failed to flush a checkpoint");
                } else {
                    info!(size = checkpoint.size, "audit checkpoint signed");
                }
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => error!(error = %e, "failed to sign an audit checkpoint"),
            Err(e) => error!(error = %e, "failed to run the checkpoint signer"),
        }
    }
}

#[cfg(test)]
mod tests;
