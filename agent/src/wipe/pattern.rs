//! What is written: zeros, or a ChaCha20 stream from a recorded seed.
//!
//! The random stream is `rand_chacha`'s ChaCha20 keyed with 32 random bytes
//! from the operating system, one stream number per pass. The seed goes into
//! the attestation, so anyone holding it can regenerate the exact bytes that
//! were written at any offset (the generator seeks by word position), which is
//! how sampled verification checks blocks in any order.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// A ChaCha20 seed.
pub type Seed = [u8; 32];

/// A fresh seed from the operating system's CSPRNG.
pub fn new_seed() -> Seed {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    seed
}

/// The content of one overwrite pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// All zero bytes.
    Zero,
    /// The ChaCha20 stream `stream` under `seed`; byte `n` of the device is
    /// byte `n` of the stream.
    ChaCha20 {
        /// The key.
        seed: Seed,
        /// The stream number (the pass index).
        stream: u64,
    },
}

impl Pattern {
    /// Short name for attestations and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Zero => "zero",
            Self::ChaCha20 { .. } => "chacha20",
        }
    }

    /// Whether every byte is zero.
    pub fn is_zero(&self) -> bool {
        matches!(self, Self::Zero)
    }

    /// Fills `buf` with the pattern's bytes at device offset `offset`, which
    /// must be a multiple of 4.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        match self {
            Self::Zero => buf.fill(0),
            Self::ChaCha20 { seed, stream } => {
                debug_assert_eq!(offset % 4, 0, "pattern offsets are word aligned");
                let mut rng = ChaCha20Rng::from_seed(*seed);
                rng.set_stream(*stream);
                rng.set_word_pos(u128::from(offset / 4));
                rng.fill_bytes(buf);
            }
        }
    }

    /// Index of the first byte of `data` (read from device offset `offset`,
    /// a multiple of 4) that differs from the pattern. The expected bytes are
    /// generated a piece at a time into a small scratch buffer that stays in
    /// cache, rather than a whole chunk at once.
    pub fn first_mismatch(&self, offset: u64, data: &[u8]) -> Option<usize> {
        const PIECE: usize = 64 << 10;
        match self {
            Self::Zero => data.iter().position(|b| *b != 0),
            Self::ChaCha20 { seed, stream } => {
                let mut rng = ChaCha20Rng::from_seed(*seed);
                rng.set_stream(*stream);
                rng.set_word_pos(u128::from(offset / 4));
                let mut scratch = vec![0u8; PIECE];
                for (i, piece) in data.chunks(PIECE).enumerate() {
                    let expected = &mut scratch[..piece.len()];
                    rng.fill_bytes(expected);
                    if piece != &expected[..] {
                        let at = piece.iter().zip(expected.iter()).position(|(a, b)| a != b).unwrap_or(0);
                        return Some(i * PIECE + at);
                    }
                }
                None
            }
        }
    }
}
