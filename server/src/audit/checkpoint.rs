//! Signed checkpoints: the tree size, root hash and time, in the text format
//! of a C2SP signed-note body, signed with the server's Ed25519 signing key
//! over the exact file bytes so that
//! `openssl pkeyutl -verify -pubin -inkey server-signing.pub.pem -rawin -in CHECKPOINT -sigfile CHECKPOINT.sig`
//! verifies it.
//!
//! ```text
//! custodian.audit/<first 16 hex digits of SHA-256 of the raw public key>
//! <tree size, decimal>
//! <root hash, standard base64>
//! time <Unix milliseconds>
//! ```
//! Every line ends with `\n`. The `.sig` file is the raw 64-byte Ed25519
//! signature.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// A checkpoint: what the log held at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Names the log: `custodian.audit/<key id>`.
    pub origin: String,
    /// Number of events covered.
    pub size: u64,
    /// Root hash of the tree of those events.
    pub root: Hash,
    /// When it was signed, Unix milliseconds.
    pub time_ms: i64,
}

/// Why a checkpoint file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseCheckpointError {
    /// Not UTF-8 text, or not four newline-terminated lines.
    #[error("not a checkpoint: expected 4 lines, each ending in a newline")]
    Shape,
    /// The origin line is not `custodian.audit/...`.
    #[error("origin line {0:?} does not name a Custodian audit log")]
    Origin(String),
    /// The size line is not a decimal number.
    #[error("tree size {0:?} is not a number")]
    Size(String),
    /// The root line is not base64 of 32 bytes.
    #[error("root hash {0:?} is not base64 of 32 bytes")]
    Root(String),
    /// The time line is not `time <ms>`.
    #[error("time line {0:?} is not `time <milliseconds>`")]
    Time(String),
}

/// The origin line for a log signed by `key`.
pub fn origin_for(key: &VerifyingKey) -> String {
    let id = hex::encode(Sha256::digest(key.as_bytes()));
    format!("custodian.audit/{}", &id[..16])
}

impl Checkpoint {
    /// The exact bytes that are signed and written to the checkpoint file.
    pub fn to_text(&self) -> String {
        format!("{}\n{}\n{}\ntime {}\n", self.origin, self.size, STANDARD.encode(self.root), self.time_ms)
    }

    /// Reads checkpoint file bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseCheckpointError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ParseCheckpointError::Shape)?;
        let body = text.strip_suffix('\n').ok_or(ParseCheckpointError::Shape)?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, size, root, time] = lines.as_slice() else {
            return Err(ParseCheckpointError::Shape);
        };
        if !origin.starts_with("custodian.audit/") {
            return Err(ParseCheckpointError::Origin((*origin).to_owned()));
        }
        let size_ok = !size.is_empty() && size.bytes().all(|b| b.is_ascii_digit());
        let size: u64 =
            size.parse().ok().filter(|_| size_ok).ok_or_else(|| ParseCheckpointError::Size((*size).to_owned()))?;
        let root: Hash = STANDARD
            .decode(root)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| ParseCheckpointError::Root((*root).to_owned()))?;
        let time_ms = time
            .strip_prefix("time ")
            .and_then(|ms| ms.parse().ok())
            .ok_or_else(|| ParseCheckpointError::Time((*time).to_owned()))?;
        let checkpoint = Self { origin: (*origin).to_owned(), size, root, time_ms };
        if checkpoint.to_text().as_bytes() != bytes {
            // Only the canonical spelling is accepted, so the signed bytes
            // and the parsed values cannot disagree.
            return Err(ParseCheckpointError::Shape);
        }
        Ok(checkpoint)
    }

    /// Signs the checkpoint text: returns the text and its raw signature.
    pub fn sign(&self, key: &SigningKey) -> (String, [u8; 64]) {
        let text = self.to_text();
        let signature = key.sign(text.as_bytes()).to_bytes();
        (text, signature)
    }
}

/// Whether `signature` is `key`'s Ed25519 signature over `bytes`.
pub fn verify_signature(key: &VerifyingKey, bytes: &[u8], signature: &[u8]) -> bool {
    let Ok(signature) = Signature::from_slice(signature) else {
        return false;
    };
    key.verify_strict(bytes, &signature).is_ok()
}

/// Reads the server's signing key (PKCS#8 PEM).
pub fn load_signing_key(pem: &str) -> anyhow::Result<SigningKey> {
    SigningKey::from_pkcs8_pem(pem).map_err(|e| anyhow::anyhow!("parse signing key: {e}"))
}

/// Reads a published verifying key (SPKI PEM).
pub fn load_verifying_key(pem: &str) -> anyhow::Result<VerifyingKey> {
    VerifyingKey::from_public_key_pem(pem).map_err(|e| anyhow::anyhow!("parse public key: {e}"))
}

#[cfg(test)]
mod tests;
