//! The export directory an outsider verifies (`docs/audit-export.md`):
//!
//! ```text
//! DIR/events.jsonl              one event per line: the exact leaf bytes, then "\n"
//! DIR/leaf-hashes.bin           32 bytes per event: the leaf hash the server recorded on append
//! DIR/checkpoints/NNNNNNNNNNNN-TIME       a checkpoint (size zero-padded to 12 digits, time in ms)
//! DIR/checkpoints/NNNNNNNNNNNN-TIME.sig   its raw Ed25519 signature
//! DIR/server-signing.pub.pem    the server's signing key (SPKI PEM)
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::merkle::Hash;

/// The events file.
pub const EVENTS_FILE: &str = "events.jsonl";
/// The recorded leaf hashes.
pub const LEAF_HASHES_FILE: &str = "leaf-hashes.bin";
/// The checkpoints directory.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// The public key.
pub const PUBLIC_KEY_FILE: &str = "server-signing.pub.pem";

/// The file name of a checkpoint of `size` events signed at `time_ms`.
pub fn checkpoint_file_name(size: u64, time_ms: i64) -> String {
    format!("{size:012}-{time_ms}")
}

/// Writes an export directory, event by event.
pub struct ExportWriter {
    dir: PathBuf,
    events: BufWriter<File>,
    hashes: BufWriter<File>,
    n_events: u64,
}

impl ExportWriter {
    /// Creates `dir` (which must not hold an export already) and its files.
    pub fn create(dir: &Path, public_key_pem: &str) -> anyhow::Result<Self> {
        if dir.join(EVENTS_FILE).exists() {
            anyhow::bail!("{} already holds an export; choose an empty directory", dir.display());
        }
        std::fs::create_dir_all(dir.join(CHECKPOINTS_DIR)).with_context(|| format!("create {}", dir.display()))?;
        std::fs::write(dir.join(PUBLIC_KEY_FILE), public_key_pem).context("write the public key")?;
        let create = |name: &str| -> anyhow::Result<BufWriter<File>> {
            let file = File::create(dir.join(name)).with_context(|| format!("create {name}"))?;
            Ok(BufWriter::with_capacity(1 << 20, file))
        };
        Ok(Self { dir: dir.to_owned(), events: create(EVENTS_FILE)?, hashes: create(LEAF_HASHES_FILE)?, n_events: 0 })
    }

    /// Appends the next event (they must come in sequence order).
    pub fn push_event(&mut self, leaf_hash: &Hash, bytes: &[u8]) -> anyhow::Result<()> {
        self.events.write_all(bytes).context("write events")?;
        self.events.write_all(b"\n").context("write events")?;
        self.hashes.write_all(leaf_hash).context("write leaf hashes")?;
        self.n_events += 1;
        Ok(())
    }

    /// Writes a checkpoint and its signature.
    pub fn add_checkpoint(&mut self, size: u64, time_ms: i64, text: &[u8], signature: &[u8]) -> anyhow::Result<()> {
        let path = self.dir.join(CHECKPOINTS_DIR).join(checkpoint_file_name(size, time_ms));
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        let mut sig = path.into_os_string();
        sig.push(".sig");
        std::fs::write(&sig, signature).context("write a checkpoint signature")?;
        Ok(())
    }

    /// Flushes everything; returns the number of events written.
    pub fn finish(mut self) -> anyhow::Result<u64> {
        self.events.flush().context("write events")?;
        self.hashes.flush().context("write leaf hashes")?;
        self.events.get_ref().sync_all().context("sync events")?;
        self.hashes.get_ref().sync_all().context("sync leaf hashes")?;
        Ok(self.n_events)
    }
}
