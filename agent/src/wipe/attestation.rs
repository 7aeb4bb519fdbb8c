//! The wipe attestation: building it, signing it under its own payload type,
//! and the "in progress" marker that makes an interrupted wipe leave a record
//! that says so.
//!
//! Before the first write, the attestation as it would read if the wipe were
//! cut short (result: interrupted) is written durably to
//! `STATE_DIR/wipe-in-progress.pb`. A wipe that ends, however it ends,
//! replaces it with its real result and removes the marker only once that is
//! spooled. If the agent dies first, the next start of the agent (any
//! command) signs and spools the marker's attestation as interrupted.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use custodian_proto::envelope::{self, WIPE_ATTESTATION_PAYLOAD_TYPE};
use custodian_proto::v1 as pb;
use ed25519_dalek::SigningKey;
use prost::Message;
use sha2::{Digest, Sha256};

use super::target::Target;
use crate::state::StateDir;

/// File name of the in-progress marker in the state directory.
pub const MARKER_FILE: &str = "wipe-in-progress.pb";

/// Reason recorded when a marker is found at start-up.
pub const CRASH_REASON: &str =
    "interrupted: the agent stopped (crash, kill or power loss) before the wipe finished; found at the next start";

/// SHA-256 (hex) of the running executable, or why it could not be read.
pub fn tool_sha256() -> String {
    let hash = || -> std::io::Result<String> {
        let mut file = std::fs::File::open(std::env::current_exe()?)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(hex::encode(hasher.finalize()))
    };
    hash().unwrap_or_else(|e| format!("unreadable: {e}"))
}

/// The disk part of an attestation.
pub fn wiped_disk(target: &Target) -> pb::WipedDisk {
    let id = &target.identity;
    pb::WipedDisk {
        model: id.model.clone().unwrap_or_default(),
        serial: id.serial.clone().unwrap_or_default(),
        wwn: id.wwn.clone().unwrap_or_default(),
        apparent_size_bytes: id.apparent_size,
        native_size_bytes: id.native_size,
        hidden_area: id.hidden_area.describe(),
    }
}

/// Signs `attestation` as sequence number `seq` of the device.
pub fn sign(key: &SigningKey, seq: u64, attestation: &pb::WipeAttestation) -> pb::SignedEnvelope {
    let mut attestation = attestation.clone();
    attestation.seq = seq;
    envelope::sign(key, WIPE_ATTESTATION_PAYLOAD_TYPE, attestation.encode_to_vec())
}

/// Where the marker lives.
pub fn marker_path(state: &StateDir) -> PathBuf {
    state.root().join(MARKER_FILE)
}

/// Writes the marker durably (atomic replace, synced).
pub fn write_marker(path: &Path, attestation: &pb::WipeAttestation) -> anyhow::Result<()> {
    custodian_proto::files::replace(path, &attestation.encode_to_vec(), 0o600)
        .with_context(|| format!("write wipe marker {}", path.display()))
}

/// Reads a leftover marker, if there is one.
pub fn read_marker(path: &Path) -> anyhow::Result<Option<pb::WipeAttestation>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(
            pb::WipeAttestation::decode(bytes.as_slice())
                .with_context(|| format!("wipe marker {} is corrupt", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(format!("read wipe marker {}", path.display()))),
    }
}

/// Removes the marker and syncs its directory.
pub fn remove_marker(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("remove wipe marker {}", path.display()))),
    }
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("sync {}", dir.display()))?;
    }
    Ok(())
}

/// A result that says the wipe was interrupted.
pub fn interrupted(reason: impl Into<String>) -> pb::WipeResult {
    pb::WipeResult { outcome: pb::WipeOutcome::Interrupted.into(), reason: reason.into(), first_mismatch_offset: None }
}

/// A result that says the wipe failed.
pub fn failed(reason: impl Into<String>, first_mismatch_offset: Option<u64>) -> pb::WipeResult {
    pb::WipeResult { outcome: pb::WipeOutcome::Failed.into(), reason: reason.into(), first_mismatch_offset }
}

/// A result that says the wipe passed.
pub fn passed() -> pb::WipeResult {
    pb::WipeResult { outcome: pb::WipeOutcome::Passed.into(), reason: String::new(), first_mismatch_offset: None }
}
