//! Signing checkpoints: the server signs the tree at every multiple of N
//! events and the head at least every interval (a background task), and on
//! demand before an export or a proof so that every event is covered.
//!
//! The task keeps its own [`Frontier`], fed from the recorded leaf hashes of
//! new events, so it can sign the tree at exactly N, 2N, 3N... events even
//! when many more arrived since its last look, at O(log n) per event.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use tracing::{error, info};

use super::checkpoint::{Checkpoint, load_signing_key, origin_for};
use super::merkle::Frontier;
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

    /// Signs and stores a checkpoint of the tree `frontier` describes.
    fn sign_frontier(&self, store: &Store, frontier: &Frontier, now_ms: i64) -> Result<StoredCheckpoint, StoreError> {
        let checkpoint =
            Checkpoint { origin: self.origin.clone(), size: frontier.size, root: frontier.root(), time_ms: now_ms };
        let (text, signature) = checkpoint.sign(&self.key);
        let stored = StoredCheckpoint { size: frontier.size, time_ms: now_ms, text, signature: signature.to_vec() };
        store.put_checkpoint(&stored)?;
        Ok(stored)
    }

    /// Signs `bytes` as they are (Ed25519, no prefix), so that stock tools
    /// verify the file: `openssl pkeyutl -verify -pubin -inkey
    /// server-signing.pub.pem -rawin -in FILE -sigfile FILE.sig`.
    pub fn sign_file_bytes(&self, bytes: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.key.sign(bytes).to_bytes()
    }

    /// Signs a checkpoint if the latest one does not cover every event.
    pub fn cover_everything(&self, store: &Store, now_ms: i64) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.sign_if(store, now_ms, |size, latest| latest.is_none_or(|l| l.size < size))
    }
}

/// The background signer's view of the log: a frontier that follows the
/// store's recorded leaf hashes.
#[derive(Debug, Default)]
pub struct Follower {
    frontier: Frontier,
}

impl Follower {
    /// Reads the events appended since the last call and signs a checkpoint
    /// at every multiple of `every_events` passed that is newer than the
    /// latest checkpoint; then signs the head if `interval` has passed since
    /// the latest checkpoint. Returns the checkpoints signed.
    pub fn step(
        &mut self,
        store: &Store,
        signer: &CheckpointSigner,
        policy: CheckpointPolicy,
        now_ms: i64,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let every = policy.every_events.max(1);
        let mut signed = Vec::new();
        let head = store.audit_head()?;
        let mut latest_size = store.latest_checkpoint()?.map_or(0, |c| c.size);
        while self.frontier.size < head.size {
            let batch = store.audit_entries(self.frontier.size, 10_000)?;
            if batch.is_empty() {
                break;
            }
            for entry in batch {
                if entry.seq != self.frontier.size {
                    return Err(StoreError::Decode {
                        tree: "audit",
                        error: format!("event {} found where {} was due", entry.seq, self.frontier.size),
                    });
                }
                self.frontier.push(entry.leaf_hash);
                if self.frontier.size.is_multiple_of(every) && self.frontier.size > latest_size {
                    let _guard = signer.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    signed.push(signer.sign_frontier(store, &self.frontier, now_ms)?);
                    latest_size = self.frontier.size;
                }
            }
        }
        if let Some(stored) = signer.sign_if(store, now_ms, |size, latest| {
            latest.is_none_or(|l| {
                let interval_ms = i64::try_from(policy.interval.as_millis()).unwrap_or(i64::MAX);
                now_ms.saturating_sub(l.time_ms) >= interval_ms && size > 0
            })
        })? {
            signed.push(stored);
        }
        Ok(signed)
    }
}

/// The background task: once a second, follows the log and signs what is due.
pub async fn run(store: Store, signer: std::sync::Arc<CheckpointSigner>, policy: CheckpointPolicy) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut follower = Some(Follower::default());
    loop {
        tick.tick().await;
        let now = custodian_proto::now_ms();
        let (store2, signer2) = (store.clone(), signer.clone());
        let mut moved = follower.take().unwrap_or_default();
        let res = tokio::task::spawn_blocking(move || {
            let res = moved.step(&store2, &signer2, policy, now);
            (moved, res)
        })
        .await;
        match res {
            Ok((back, res)) => {
                follower = Some(back);
                match res {
                    Ok(signed) if signed.is_empty() => {}
                    Ok(signed) => {
                        if let Err(e) = store.flush().await {
                            error!(error = %e, "failed to flush audit checkpoints");
                        } else {
                            let sizes: Vec<u64> = signed.iter().map(|c| c.size).collect();
                            info!(?sizes, "audit checkpoints signed");
                        }
                    }
                    Err(e) => error!(error = %e, "failed to sign an audit checkpoint"),
                }
            }
            // The follower is lost with the task; the next tick rebuilds it from the store.
            Err(e) => error!(error = %e, "failed to run the checkpoint signer"),
        }
    }
}

#[cfg(test)]
mod tests;
