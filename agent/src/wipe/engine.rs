//! The write and read-back loops: large aligned transfers with direct I/O
//! where the target supports it, a random pattern generated on the other
//! cores (in order, chunk `i` by thread `i mod n`) while the previous chunk is
//! written or read, and a sync to stable storage at the end of a pass.
//!
//! Buffers are allocated once and passed round between the generators and
//! the writer over bounded channels (full / free), so a pass allocates
//! nothing and random generation overlaps the I/O.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::Scope;

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

/// A run of bytes to write or read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Byte offset.
    pub offset: u64,
    /// Length, at most [`CHUNK`].
    pub len: usize,
}

/// `0..end` cut into [`CHUNK`]-sized spans.
fn chunks(end: u64) -> Vec<Span> {
    (0..end.div_ceil(CHUNK as u64))
        .map(|i| {
            let offset = i * CHUNK as u64;
            Span { offset, len: (end - offset).min(CHUNK as u64) as usize }
        })
        .collect()
}

/// How many threads generate a random stream: every core, since a fast
/// disk outruns one core's ChaCha20.
fn generator_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8)
}

/// The pattern's bytes for each span in order, generated ahead by several
/// threads (span `i` by thread `i mod n`) into recycled buffers. For zeros
/// nothing is generated: one zero buffer serves every span.
struct Stream {
    full: Vec<Receiver<AlignedBuf>>,
    free: Vec<SyncSender<AlignedBuf>>,
    zeros: Option<AlignedBuf>,
    next: usize,
}

impl Stream {
    fn start<'scope>(scope: &'scope Scope<'scope, '_>, pattern: &'scope Pattern, spans: &'scope [Span]) -> Self {
        if pattern.is_zero() {
            return Self { full: Vec::new(), free: Vec::new(), zeros: Some(AlignedBuf::new(CHUNK)), next: 0 };
        }
        let n = generator_threads();
        let mut full = Vec::with_capacity(n);
        let mut free = Vec::with_capacity(n);
        for g in 0..n {
            let (full_tx, full_rx) = sync_channel::<AlignedBuf>(QUEUE);
            let (free_tx, free_rx) = sync_channel::<AlignedBuf>(QUEUE + 2);
            for _ in 0..QUEUE + 2 {
                free_tx.send(AlignedBuf::new(CHUNK)).expect("the channel has room for every buffer");
            }
            scope.spawn(move || {
                for span in spans.iter().skip(g).step_by(n) {
                    let Ok(mut buf) = free_rx.recv() else { return };
                    pattern.fill(span.offset, &mut buf.as_mut_slice()[..span.len]);
                    if full_tx.send(buf).is_err() {
                        return;
                    }
                }
            });
            full.push(full_rx);
            free.push(free_tx);
        }
        Self { full, free, zeros: None, next: 0 }
    }

    /// The next span's bytes, and a token to give the buffer back with.
    fn next(&mut self) -> Option<(usize, AlignedBuf)> {
        if let Some(zeros) = self.zeros.take() {
            return Some((usize::MAX, zeros));
        }
        let idx = self.next % self.full.len();
        self.next += 1;
        self.full[idx].recv().ok().map(|buf| (idx, buf))
    }

    /// Gives a buffer back for reuse.
    fn recycle(&mut self, token: usize, buf: AlignedBuf) {
        if token == usize::MAX {
            self.zeros = Some(buf);
        } else {
            let _ = self.free[token].send(buf);
        }
    }
}

/// Writes `pattern` over bytes `0..end` of the device, then syncs.
pub fn write_range(
    dev: &Device,
    pattern: &Pattern,
    end: u64,
    cancel: &Cancel,
    progress: &Progress,
) -> Result<(), EngineError> {
    let spans = chunks(end.min(dev.size));
    std::thread::scope(|scope| {
        let mut stream = Stream::start(scope, pattern, &spans);
        for span in &spans {
            if cancel.is_set() {
                return Err(EngineError::Interrupted { at: span.offset });
            }
            let Some((token, buf)) = stream.next() else { break };
            dev.write_at(&buf.as_slice()[..span.len], span.offset)?;
            progress.inc(span.len as u64);
            stream.recycle(token, buf);
        }
        Ok(())
    })?;
    dev.sync()
}

/// Reads `spans` back and compares them with `pattern`. The reads run on
/// one thread, the expected bytes are generated on others, and the
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
        if !pattern.is_zero() {
            return check_in_parallel(scope, pattern, read_rx, read_free_tx, cancel, progress);
        }
        let mut expected = Stream::start(scope, pattern, spans);
        for item in read_rx.iter() {
            let (span, buf) = item?;
            if cancel.is_set() {
                return Err(EngineError::Interrupted { at: span.offset });
            }
            let Some((token, want)) = expected.next() else { break };
            let mismatch = first_difference(&buf.as_slice()[..span.len], &want.as_slice()[..span.len]);
            expected.recycle(token, want);
            if let Some(at) = mismatch {
                return Ok(Some(span.offset + at as u64));
            }
            progress.inc(span.len as u64);
            let _ = read_free_tx.send(buf);
        }
        Ok(None)
    })
}

/// What a checker found in one span.
type Checked = (Span, AlignedBuf, Option<usize>);

/// Compares read spans with a random pattern on every core: span `i` goes to
/// checker `i mod n`, which regenerates the stream for it piece by piece and
/// compares; results are taken back in order.
fn check_in_parallel<'scope>(
    scope: &'scope Scope<'scope, '_>,
    pattern: &'scope Pattern,
    read_rx: Receiver<Result<(Span, AlignedBuf), EngineError>>,
    read_free_tx: SyncSender<AlignedBuf>,
    cancel: &Cancel,
    progress: &Progress,
) -> Result<Option<u64>, EngineError> {
    let n = generator_threads();
    let mut to_checkers = Vec::with_capacity(n);
    let mut from_checkers = Vec::with_capacity(n);
    for _ in 0..n {
        let (work_tx, work_rx) = sync_channel::<(Span, AlignedBuf)>(2);
        let (done_tx, done_rx) = sync_channel::<Checked>(2);
        scope.spawn(move || {
            for (span, buf) in work_rx.iter() {
                let mismatch = pattern.first_mismatch(span.offset, &buf.as_slice()[..span.len]);
                if done_tx.send((span, buf, mismatch)).is_err() {
                    return;
                }
            }
        });
        to_checkers.push(work_tx);
        from_checkers.push(done_rx);
    }
    // A dispatcher hands read spans to the checkers in turn.
    let (error_tx, error_rx) = sync_channel::<EngineError>(1);
    scope.spawn(move || {
        for (i, item) in read_rx.iter().enumerate() {
            match item {
                Ok(work) => {
                    if to_checkers[i % n].send(work).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = error_tx.send(e);
                    return;
                }
            }
        }
    });
    let mut i = 0;
    loop {
        match from_checkers[i % n].recv() {
            Ok((span, buf, mismatch)) => {
                if let Some(at) = mismatch {
                    return Ok(Some(span.offset + at as u64));
                }
                if cancel.is_set() {
                    return Err(EngineError::Interrupted { at: span.offset });
                }
                progress.inc(span.len as u64);
                let _ = read_free_tx.send(buf);
                i += 1;
            }
            // The checkers stop once the dispatcher stops: all spans were
            // checked, or a read failed.
            Err(_) => {
                return match error_rx.try_recv() {
                    Ok(e) => Err(e),
                    Err(_) => Ok(None),
                };
            }
        }
    }
}

/// Index of the first byte where `a` and `b` differ.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    a.iter().zip(b).position(|(x, y)| x != y).or(Some(a.len().min(b.len())))
}
