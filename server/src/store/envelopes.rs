//! The envelope log: stored reports' envelopes, appended to a file beside
//! sled rather than written into its `reports` tree.
//!
//! Each report's record in sled then holds a 16-byte pointer instead of its
//! ~2 KB envelope. sled reads a key's leaf before every transactional insert
//! and copies the leaf it changes, so large values in a hot tree cost on
//! every write; pointers keep the `reports` leaves small.
//!
//! File `envelopes/log` inside the store's directory: records of length
//! (big-endian u32), CRC-32 of the bytes (big-endian u32), bytes. A record is
//! found by its offset only. Appends are made durable (`sync_data`) before
//! the transaction that points at them commits, so a pointer sled has
//! persisted never names bytes that are not on disk. A crash, or an append
//! that failed part-way, can leave bytes no pointer names (a group whose
//! transaction never committed, a torn last record): they are never read, and
//! appends continue after them.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use super::StoreError;

/// Where one envelope's bytes are in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pointer {
    /// Offset of its record.
    pub(super) offset: u64,
    /// Length of the bytes.
    pub(super) len: u32,
}

impl Pointer {
    /// The pointer's stored form.
    pub(super) fn to_bytes(self) -> [u8; 12] {
        let mut bytes = [0u8; 12];
        bytes[..8].copy_from_slice(&self.offset.to_be_bytes());
        bytes[8..].copy_from_slice(&self.len.to_be_bytes());
        bytes
    }

    /// A pointer from its stored form.
    pub(super) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; 12] = bytes.try_into().ok()?;
        Some(Self {
            offset: u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
            len: u32::from_be_bytes(bytes[8..].try_into().expect("4 bytes")),
        })
    }
}

/// Header of a record: length and CRC-32.
const HEADER: u64 = 8;

/// The appending side of the log.
struct Writer {
    /// Opened to append: every write lands at the file's end, wherever an
    /// earlier append that failed part-way left it.
    file: File,
}

/// The envelope log of one store.
#[derive(Clone)]
pub(super) struct EnvelopeLog {
    /// Appends, one writer at a time.
    writer: Arc<Mutex<Writer>>,
    /// Reads, by offset, from any thread.
    reader: Arc<File>,
}

impl EnvelopeLog {
    /// Opens (or creates) the log in `store_dir`.
    pub(super) fn open(store_dir: &Path) -> Result<Self, StoreError> {
        let dir = store_dir.join("envelopes");
        let path = dir.join("log");
        if !path.exists() {
            // A new file survives a crash only once the directories naming it do.
            std::fs::create_dir_all(&dir).map_err(|e| io_error("create the envelope log directory", &e))?;
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|file| file.sync_all())
                .map_err(|e| io_error("create the envelope log", &e))?;
            for parent in [dir.as_path(), store_dir] {
                File::open(parent).and_then(|d| d.sync_all()).map_err(|e| io_error("sync the store directory", &e))?;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_error("open the envelope log", &e))?;
        let reader = File::open(&path).map_err(|e| io_error("open the envelope log for reading", &e))?;
        let writer = Writer { file };
        Ok(Self { writer: Arc::new(Mutex::new(writer)), reader: Arc::new(reader) })
    }

    /// Appends `envelopes` and makes them durable before returning their
    /// pointers, in order.
    pub(super) fn append_durable(&self, envelopes: &[&[u8]]) -> Result<Vec<Pointer>, StoreError> {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let Writer { file } = &mut *writer;
        // Where these records will land: the file's end as it is now, not as
        // the last successful append left it, since one that failed (a full
        // disk, a failed sync) may have left part of its records behind.
        let mut offset = file.metadata().map_err(|e| io_error("read the envelope log's size", &e))?.len();
        let mut buffer = Vec::with_capacity(envelopes.iter().map(|e| e.len() + HEADER as usize).sum());
        let mut pointers = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            let len = u32::try_from(envelope.len()).map_err(|_| StoreError::Decode {
                tree: "envelopes",
                error: format!("an envelope of {} bytes is too large to store", envelope.len()),
            })?;
            buffer.extend_from_slice(&len.to_be_bytes());
            buffer.extend_from_slice(&crc32fast::hash(envelope).to_be_bytes());
            buffer.extend_from_slice(envelope);
            pointers.push(Pointer { offset, len });
            offset += HEADER + u64::from(len);
        }
        file.write_all(&buffer).map_err(|e| io_error("append to the envelope log", &e))?;
        file.sync_data().map_err(|e| io_error("sync the envelope log", &e))?;
        Ok(pointers)
    }

    /// The bytes `pointer` names, checked against their length and CRC-32.
    pub(super) fn read(&self, pointer: Pointer) -> Result<Vec<u8>, StoreError> {
        let bad = |what: &str| StoreError::Decode {
            tree: "envelopes",
            error: format!("record at offset {}: {what}", pointer.offset),
        };
        let mut record = vec![0u8; HEADER as usize + pointer.len as usize];
        self.reader.read_exact_at(&mut record, pointer.offset).map_err(|e| bad(&format!("cannot be read: {e}")))?;
        let (header, bytes) = record.split_at(HEADER as usize);
        if u32::from_be_bytes(header[..4].try_into().expect("4 bytes")) != pointer.len {
            return Err(bad("length differs from the pointer's"));
        }
        if u32::from_be_bytes(header[4..].try_into().expect("4 bytes")) != crc32fast::hash(bytes) {
            return Err(bad("CRC-32 does not match (the log is damaged)"));
        }
        Ok(bytes.to_vec())
    }
}

/// An I/O failure as a store error, saying what was being done.
pub(super) fn io_error(what: &str, e: &std::io::Error) -> StoreError {
    StoreError::Sled(sled::Error::Io(std::io::Error::new(e.kind(), format!("{what}: {e}"))))
}

#[cfg(test)]
mod tests;
