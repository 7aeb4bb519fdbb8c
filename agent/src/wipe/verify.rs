//! Verification by read-back: `full` reads every block; `sample:P` reads P%
//! of the blocks, chosen at random across the device and always including
//! the first and the last. The first mismatching byte fails the wipe and its
//! offset goes into the attestation.

use rand::seq::index::sample;

use super::engine::{self, CHUNK, Cancel, Device, EngineError, Span};
use super::pattern::Pattern;
use super::progress::Progress;

/// Size of one verification block.
pub const BLOCK: u64 = 1 << 20;

/// How much to read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// Every block.
    Full,
    /// This percentage of blocks (1–100), plus the first and the last.
    Sample(u32),
}

/// Why a `--verify` value was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown verification {0:?}: use `full` or `sample:PERCENT` (1-100)")]
pub struct ParseVerifyModeError(String);

impl std::str::FromStr for VerifyMode {
    type Err = ParseVerifyModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "full" {
            return Ok(Self::Full);
        }
        let percent = s.strip_prefix("sample:").map(|p| p.trim_end_matches('%')).and_then(|p| p.parse::<u32>().ok());
        match percent {
            Some(p @ 1..=100) => Ok(Self::Sample(p)),
            _ => Err(ParseVerifyModeError(s.to_owned())),
        }
    }
}

impl std::fmt::Display for VerifyMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full => f.write_str("full"),
            Self::Sample(p) => write!(f, "sample:{p}"),
        }
    }
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Blocks on the device (the last may be short).
    pub blocks_total: u64,
    /// Blocks read back and compared.
    pub blocks_checked: u64,
    /// Offset of the first mismatching byte, if any.
    pub first_mismatch: Option<u64>,
}

/// The blocks to check, in ascending order.
pub fn choose_blocks(blocks_total: u64, mode: VerifyMode) -> Vec<u64> {
    match mode {
        VerifyMode::Full => (0..blocks_total).collect(),
        VerifyMode::Sample(percent) => {
            let wanted = (blocks_total * u64::from(percent)).div_ceil(100).clamp(1, blocks_total);
            let mut blocks: Vec<u64> = if blocks_total <= 2 {
                (0..blocks_total).collect()
            } else {
                // First and last always; the rest drawn from the middle.
                let middle = blocks_total - 2;
                let extra = wanted.saturating_sub(2).min(middle);
                let mut rng = rand::thread_rng();
                let mut picked: Vec<u64> =
                    sample(&mut rng, middle as usize, extra as usize).into_iter().map(|i| i as u64 + 1).collect();
                picked.push(0);
                picked.push(blocks_total - 1);
                picked
            };
            blocks.sort_unstable();
            blocks.dedup();
            blocks
        }
    }
}

/// Turns sorted block numbers into read spans of at most [`CHUNK`] bytes,
/// merging neighbours.
pub fn spans(blocks: &[u64], size: u64) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    for &block in blocks {
        let offset = block * BLOCK;
        let len = (size - offset).min(BLOCK) as usize;
        match out.last_mut() {
            Some(last) if last.offset + last.len as u64 == offset && last.len + len <= CHUNK => last.len += len,
            _ => out.push(Span { offset, len }),
        }
    }
    out
}

/// Reads back the device according to `mode` and compares it with `pattern`.
pub fn verify(
    dev: &Device,
    pattern: &Pattern,
    mode: VerifyMode,
    cancel: &Cancel,
    progress: &Progress,
) -> Result<Verified, EngineError> {
    let size = dev.size();
    let blocks_total = size.div_ceil(BLOCK);
    let blocks = choose_blocks(blocks_total, mode);
    let spans = spans(&blocks, size);
    let first_mismatch = engine::read_and_compare(dev, pattern, &spans, cancel, progress)?;
    let blocks_checked = match first_mismatch {
        None => blocks.len() as u64,
        Some(at) => blocks.iter().take_while(|b| **b * BLOCK <= at).count() as u64,
    };
    Ok(Verified { blocks_total, blocks_checked, first_mismatch })
}
