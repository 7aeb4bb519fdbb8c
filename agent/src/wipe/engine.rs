//! The write loop: large aligned writes with direct I/O where the target
//! supports it, the pattern generated on a second thread while the previous
//! chunk is being written, and a sync to stable storage at the end.
//!
//! Buffers are allocated once and passed round between the generator and
//! the writer over two bounded channels (full / free), so a pass allocates
//! nothing and random generation overlaps the I/O.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;

use super::pattern::Pattern;
use super::progress::Progress;

/// Size of one write (and of one full-verification read).
pub const CHUNK: usize = 8 << 20;
/// Alignment of buffers, offsets and lengths for direct I/O.
pub const ALIGN: usize = 4096;
/// Chunks generated ahead of the writer.
const QUEUE: usize = 3;

/// Why a pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A read, write or sync failed.
    #[error("{op} {path} at byte offset {offset}: {error}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The target.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// The OS error.
        error: std::io::Error,
    },
    /// The operator (or a signal) asked to stop.
    #[error("interrupted at byte offset {at}")]
    Interrupted {
        /// How far the pass had got.
        at: u64,
    },
}

/// A flag set when the wipe must stop (Ctrl-C, SIGTERM).
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the wipe to stop at the next chunk.
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A heap buffer whose usable part starts on an [`ALIGN`] boundary, as
/// direct I/O needs. Safe code only: the allocation is over-sized and the
/// aligned window is found with `align_offset`.
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A zeroed buffer of `len` usable bytes.
    pub fn new(len: usize) -> Self {
        let raw = vec![0u8; len + ALIGN];
        let start = raw.as_ptr().align_offset(ALIGN);
        assert!(start < ALIGN, "a u8 pointer can always be aligned");
        Self { raw, start, len }
    }

    /// The aligned bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }

    /// The aligned bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

/// An open target: a direct-I/O handle where the target supports it and a
/// buffered one for what direct I/O cannot do (unaligned tails, tmpfs).
pub struct Device {
    path: PathBuf,
    direct: Option<File>,
    buffered: File,
    size: u64,
}

impl Device {
    /// Opens `path` (of `size` bytes) for reading and writing.
    pub fn open(path: &Path, size: u64) -> Result<Self, EngineError> {
        let io = |error| EngineError::Io { op: "open", path: path.to_owned(), offset: 0, error };
        let buffered = OpenOptions::new().read(true).write(true).open(path).map_err(io)?;
        let direct = OpenOptions::new().read(true).write(true).custom_flags(libc::O_DIRECT).open(path).ok();
        Ok(Self { path: path.to_owned(), direct, buffered, size })
    }

    /// Opens `path` without trying direct I/O (for tests and comparisons).
    pub fn open_buffered(path: &Path, size: u64) -> Result<Self, EngineError> {
        let io = |error| EngineError::Io { op: "open", path: path.to_owned(), offset: 0, error };
        let buffered = OpenOptions::new().read(true).write(true).open(path).map_err(io)?;
        Ok(Self { path: path.to_owned(), direct: None, buffered, size })
    }

    /// The size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether aligned transfers bypass the page cache.
    pub fn direct_io(&self) -> bool {
        self.direct.is_some()
    }

    fn handle(&self, offset: u64, buf: &[u8]) -> &File {
        let aligned = offset.is_multiple_of(ALIGN as u64)
            && buf.len().is_multiple_of(ALIGN)
            && (buf.as_ptr() as usize).is_multiple_of(ALIGN);
        match &self.direct {
            Some(direct) if aligned => direct,
            _ => &self.buffered,
        }
    }

    /// Writes all of `buf` at `offset`.
    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), EngineError> {
        self.handle(offset, buf).write_all_at(buf, offset).map_err(|error| EngineError::Io {
            op: "write",
            path: self.path.clone(),
            offset,
            error,
        })
    }

    /// Fills `buf` from `offset`.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), EngineError> {
        self.handle(offset, buf).read_exact_at(buf, offset).map_err(|error| EngineError::Io {
            op: "read",
            path: self.path.clone(),
            offset,
            error,
        })
    }

    /// Syncs everything written to stable storage.
    pub fn sync(&self) -> Result<(), EngineError> {
        let io = |error| EngineError::Io { op: "sync", path: self.path.clone(), offset: self.size, error };
        if let Some(direct) = &self.direct {
            direct.sync_all().map_err(io)?;
        }
        self.buffered.sync_all().map_err(io)
    }
}

/// Writes `pattern` over the whole device, then syncs.
pub fn write_pass(dev: &Device, pattern: &Pattern, cancel: &Cancel, progress: &Progress) -> Result<(), EngineError> {
    write_range(dev, pattern, dev.size, cancel, progress)
}

/// Writes `pattern` over bytes `0..end` of the device, then syncs.
pub fn write_range(
    dev: &Device,
    pattern: &Pattern,
    end: u64,
    cancel: &Cancel,
    progress: &Progress,
) -> Result<(), EngineError> {
    let size = end.min(dev.size);
    std::thread::scope(|scope| {
        let (full_tx, full_rx) = sync_channel::<(u64, usize, AlignedBuf)>(QUEUE);
        let (free_tx, free_rx) = sync_channel::<AlignedBuf>(QUEUE + 2);
        for _ in 0..QUEUE + 2 {
            free_tx.send(AlignedBuf::new(CHUNK)).expect("the channel has room for every buffer");
        }
        scope.spawn(move || {
            let mut offset = 0u64;
            while offset < size {
                let len = (size - offset).min(CHUNK as u64) as usize;
                let Ok(mut buf) = free_rx.recv() else { return };
                if !pattern.is_zero() {
                    pattern.fill(offset, &mut buf.as_mut_slice()[..len]);
                }
                if full_tx.send((offset, len, buf)).is_err() {
                    return;
                }
                offset += len as u64;
            }
        });
        let mut res = Ok(());
        for (offset, len, buf) in full_rx.iter() {
            if cancel.is_set() {
                res = Err(EngineError::Interrupted { at: offset });
                break;
            }
            if let Err(e) = dev.write_at(&buf.as_slice()[..len], offset) {
                res = Err(e);
                break;
            }
            progress.inc(len as u64);
            let _ = free_tx.send(buf);
        }
        drop(full_rx);
        drop(free_tx);
        res
    })?;
    dev.sync()
}

/// A run of bytes to read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Byte offset.
    pub offset: u64,
    /// Length, at most [`CHUNK`].
    pub len: usize,
}

/// Reads `spans` back and compares them with `pattern`. The reads run on
/// one thread, the expected bytes are generated on another, and the
/// comparison happens here. Returns the byte offset of the first mismatch.
pub fn read_and_compare(
    dev: &Device,
    pattern: &Pattern,
    spans: &[Span],
    cancel: &Cancel,
    progress: &Progress,
) -> Result<Option<u64>, EngineError> {
    std::thread::scope(|scope| {
        let (read_tx, read_rx) = sync_channel::<Result<(Span, AlignedBuf), EngineError>>(QUEUE);
        let (read_free_tx, read_free_rx) = sync_channel::<AlignedBuf>(QUEUE + 2);
        for _ in 0..QUEUE + 2 {
            read_free_tx.send(AlignedBuf::new(CHUNK)).expect("the channel has room for every buffer");
        }
        scope.spawn(move || {
            for span in spans {
                let Ok(mut buf) = read_free_rx.recv() else { return };
                let res = dev.read_at(&mut buf.as_mut_slice()[..span.len], span.offset).map(|()| (*span, buf));
                let failed = res.is_err();
                if read_tx.send(res).is_err() || failed {
                    return;
                }
            }
        });
        // Expected bytes: zeros need no generation; a stream is generated
        // ahead on its own thread.
        let zeros = pattern.is_zero().then(|| vec![0u8; CHUNK]);
        let (gen_tx, gen_rx) = sync_channel::<AlignedBuf>(QUEUE);
        let (gen_free_tx, gen_free_rx) = sync_channel::<AlignedBuf>(QUEUE + 2);
        if zeros.is_none() {
            for _ in 0..QUEUE + 2 {
                gen_free_tx.send(AlignedBuf::new(CHUNK)).expect("the channel has room for every buffer");
            }
            scope.spawn(move || {
                for span in spans {
                    let Ok(mut buf) = gen_free_rx.recv() else { return };
                    pattern.fill(span.offset, &mut buf.as_mut_slice()[..span.len]);
                    if gen_tx.send(buf).is_err() {
                        return;
                    }
                }
            });
        } else {
            drop((gen_tx, gen_free_rx));
        }
        let mut res = Ok(None);
        for item in read_rx.iter() {
            let (span, buf) = match item {
                Ok(item) => item,
                Err(e) => {
                    res = Err(e);
                    break;
                }
            };
            if cancel.is_set() {
                res = Err(EngineError::Interrupted { at: span.offset });
                break;
            }
            let got = &buf.as_slice()[..span.len];
            let mismatch = match &zeros {
                Some(zeros) => first_difference(got, &zeros[..span.len]),
                None => {
                    let Ok(expected) = gen_rx.recv() else { break };
                    let found = first_difference(got, &expected.as_slice()[..span.len]);
                    let _ = gen_free_tx.send(expected);
                    found
                }
            };
            if let Some(at) = mismatch {
                res = Ok(Some(span.offset + at as u64));
                break;
            }
            progress.inc(span.len as u64);
            let _ = read_free_tx.send(buf);
        }
        drop(read_rx);
        drop(read_free_tx);
        drop(gen_free_tx);
        res
    })
}

/// Index of the first byte where `a` and `b` differ.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    a.iter().zip(b).position(|(x, y)| x != y).or(Some(a.len().min(b.len())))
}
