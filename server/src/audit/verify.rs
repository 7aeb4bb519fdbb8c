//! Offline verification of an audit export: recompute the Merkle tree from
//! the event bytes, check every checkpoint's signature and root, check the
//! numbering and the recorded leaf hashes event by event, and check
//! consistency with a checkpoint kept from earlier. No server is involved.
//!
//! How a tampered event is located: each event carries its own `seq`, so a
//! removed, inserted or reordered event breaks the numbering at its
//! position; a changed event no longer hashes to the leaf hash recorded in
//! `leaf-hashes.bin`, and those recorded hashes are themselves committed to
//! by the signed checkpoints (their tree must have each checkpoint's root).
//! If the recorded hashes were rewritten too, the first checkpoint whose
//! root no longer matches bounds the damage to the events since the
//! checkpoint before it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ed25519_dalek::VerifyingKey;
use serde::Deserialize;

use super::checkpoint::{Checkpoint, load_verifying_key, verify_signature};
use super::export::{CHECKPOINTS_DIR, EVENTS_FILE, LEAF_HASHES_FILE, PUBLIC_KEY_FILE};
use super::merkle::{Frontier, Hash, leaf_hash, verify_inclusion};

/// Most problems listed individually.
const MAX_PROBLEMS: usize = 20;

/// One thing wrong with an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The sequence number of the first event concerned, where one can be named.
    pub seq: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "seq {seq}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// What verifying an export found.
#[derive(Debug, Default)]
pub struct VerifyOutcome {
    /// Events read.
    pub n_events: u64,
    /// Checkpoints whose signature and root verified.
    pub n_checkpoints_ok: usize,
    /// The root of the whole recomputed tree.
    pub root: Option<Hash>,
    /// The largest verified checkpoint's size, if any.
    pub latest_checkpoint_size: Option<u64>,
    /// Everything wrong, in order of position (capped; see `n_more_problems`).
    pub problems: Vec<Problem>,
    /// Problems found beyond those listed.
    pub n_more_problems: usize,
}

impl VerifyOutcome {
    /// Whether nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, seq: Option<u64>, message: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem { seq, message });
        } else {
            self.n_more_problems += 1;
        }
    }
}

struct LoadedCheckpoint {
    file: PathBuf,
    checkpoint: Checkpoint,
}

#[derive(Deserialize)]
struct SeqOnly {
    seq: u64,
}

/// Verifies the export in `dir`; `kept` is a checkpoint file held from
/// earlier (its `.sig`, if present next to it, is checked too). Errors are
/// for an export that cannot be read at all; everything else is a
/// [`Problem`] in the outcome.
pub fn verify_export(dir: &Path, kept: Option<&Path>) -> anyhow::Result<VerifyOutcome> {
    let mut outcome = VerifyOutcome::default();
    // A wrong path is not a tampered export: say so, rather than which file is missing.
    if !dir.is_dir() {
        anyhow::bail!("{} is not a directory; give the directory `custodianctl audit export` wrote", dir.display());
    }
    if !dir.join(PUBLIC_KEY_FILE).exists() && !dir.join(EVENTS_FILE).exists() {
        anyhow::bail!(
            "{} is not an audit export (it has neither {PUBLIC_KEY_FILE} nor {EVENTS_FILE}); make one with \
             `custodianctl audit export DIR`",
            dir.display()
        );
    }
    let key_pem = std::fs::read_to_string(dir.join(PUBLIC_KEY_FILE))
        .with_context(|| format!("read {}", dir.join(PUBLIC_KEY_FILE).display()))?;
    let key = load_verifying_key(&key_pem)?;
    let events = std::fs::read(dir.join(EVENTS_FILE)).with_context(|| format!("read {EVENTS_FILE}"))?;
    let recorded = match std::fs::read(dir.join(LEAF_HASHES_FILE)) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).context(format!("read {LEAF_HASHES_FILE}")),
    };
    if let Some(recorded) = &recorded
        && recorded.len() % 32 != 0
    {
        outcome.problem(None, format!("{LEAF_HASHES_FILE} is not a whole number of 32-byte hashes"));
    }
    let recorded: Vec<Hash> = recorded
        .unwrap_or_default()
        .chunks_exact(32)
        .map(|chunk| chunk.try_into().expect("chunks are 32 bytes"))
        .collect();

    let mut checkpoints = load_checkpoints(dir, &key, &mut outcome)?;
    let kept = kept.map(|path| load_kept(path, &key, &mut outcome)).transpose()?.flatten();

    // The sizes at which roots are needed.
    let mut wanted: BTreeMap<u64, (Option<Hash>, Option<Hash>)> = BTreeMap::new();
    for loaded in &checkpoints {
        wanted.insert(loaded.checkpoint.size, (None, None));
    }
    if let Some(kept) = &kept {
        wanted.insert(kept.size, (None, None));
    }
    let mut computed = Frontier::default();
    let mut committed = Frontier::default();
    if let Some(roots) = wanted.get_mut(&0) {
        *roots = (Some(computed.root()), Some(committed.root()));
    }
    let body = events.strip_suffix(b"\n").unwrap_or(&events);
    if !events.is_empty() && !events.ends_with(b"\n") {
        outcome.problem(None, format!("{EVENTS_FILE} does not end with a newline"));
    }
    let lines: Box<dyn Iterator<Item = &[u8]>> =
        if events.is_empty() { Box::new(std::iter::empty()) } else { Box::new(body.split(|b| *b == b'\n')) };
    let mut sequence_broken = false;
    for (line_idx, line) in lines.enumerate() {
        let expected = line_idx as u64;
        let hash = leaf_hash(line);
        match serde_json::from_slice::<SeqOnly>(line) {
            Err(e) => outcome.problem(
                Some(expected),
                format!("line {} is not an audit event ({e}); the event was changed", line_idx + 1),
            ),
            Ok(SeqOnly { seq }) if seq == expected => {
                if let Some(recorded) = recorded.get(line_idx)
                    && *recorded != hash
                {
                    outcome.problem(
                        Some(seq),
                        "the event was changed: it does not hash to the leaf hash recorded for it".to_owned(),
                    );
                }
            }
            Ok(SeqOnly { seq }) => {
                let displaced = recorded.get(seq as usize) == Some(&hash);
                let message = if seq > expected && displaced && !sequence_broken {
                    format!("event {expected} is missing (line {} holds event {seq})", line_idx + 1)
                } else if seq > expected {
                    format!(
                        "line {} holds event {seq} where event {expected} belongs (removed or reordered)",
                        line_idx + 1
                    )
                } else {
                    format!(
                        "line {} holds event {seq} again where event {expected} belongs (inserted or reordered)",
                        line_idx + 1
                    )
                };
                sequence_broken = true;
                outcome.problem(Some(expected), message);
            }
        }
        computed.push(hash);
        if let Some(recorded) = recorded.get(line_idx) {
            committed.push(*recorded);
        }
        if let Some(roots) = wanted.get_mut(&computed.size) {
            roots.0 = Some(computed.root());
            roots.1 = (committed.size == computed.size).then(|| committed.root());
        }
    }
    outcome.n_events = computed.size;
    outcome.root = Some(computed.root());
    if !recorded.is_empty() && recorded.len() as u64 != computed.size {
        outcome.problem(
            Some(recorded.len().min(computed.size as usize) as u64),
            format!("{} events but {} recorded leaf hashes", computed.size, recorded.len()),
        );
    }

    checkpoints.sort_by_key(|c| (c.checkpoint.size, c.checkpoint.time_ms));
    let mut last_good_size = 0;
    let mut reported_root_mismatch = false;
    for loaded in &checkpoints {
        let size = loaded.checkpoint.size;
        let name = loaded.file.display();
        let Some((computed_root, committed_root)) = wanted.get(&size).copied().filter(|r| r.0.is_some()) else {
            outcome.problem(
                Some(computed.size),
                format!(
                    "checkpoint {name} covers {size} events but the export holds only {}: events were removed",
                    computed.size
                ),
            );
            continue;
        };
        if computed_root != Some(loaded.checkpoint.root) {
            if !reported_root_mismatch {
                outcome.problem(
                    Some(last_good_size),
                    format!(
                        "checkpoint {name} (size {size}) does not match the events: an event from seq {last_good_size} \
                         to {} was changed, removed, inserted or reordered",
                        size.saturating_sub(1)
                    ),
                );
                reported_root_mismatch = true;
            }
            if committed_root.is_some() && committed_root != Some(loaded.checkpoint.root) {
                outcome.problem(None, format!("checkpoint {name} does not match {LEAF_HASHES_FILE} either"));
            }
        } else {
            last_good_size = size;
            outcome.n_checkpoints_ok += 1;
            outcome.latest_checkpoint_size = Some(size);
        }
    }

    if let Some(kept) = &kept {
        match wanted.get(&kept.size).and_then(|r| r.0) {
            None => outcome.problem(
                Some(computed.size),
                format!(
                    "the kept checkpoint covers {} events but the export holds only {}: history was truncated",
                    kept.size, computed.size
                ),
            ),
            Some(root) if root != kept.root => outcome.problem(
                None,
                format!(
                    "not consistent with the kept checkpoint (size {}): the history before seq {} was rewritten",
                    kept.size, kept.size
                ),
            ),
            Some(_) => {}
        }
    }
    Ok(outcome)
}

fn load_checkpoints(
    dir: &Path,
    key: &VerifyingKey,
    outcome: &mut VerifyOutcome,
) -> anyhow::Result<Vec<LoadedCheckpoint>> {
    let cp_dir = dir.join(CHECKPOINTS_DIR);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&cp_dir) {
        Ok(entries) => entries
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("list {}", cp_dir.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("list {}", cp_dir.display())),
    };
    files.retain(|path| path.extension().is_none_or(|ext| ext != "sig"));
    files.sort();
    if files.is_empty() {
        outcome.problem(None, "the export holds no checkpoints, so nothing vouches for the events".to_owned());
    }
    let mut loaded = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
        let mut sig_path = file.clone().into_os_string();
        sig_path.push(".sig");
        let Ok(signature) = std::fs::read(&sig_path) else {
            outcome.problem(None, format!("checkpoint {} has no .sig file", file.display()));
            continue;
        };
        if !verify_signature(key, &bytes, &signature) {
            outcome.problem(None, format!("checkpoint {} does not verify against the signing key", file.display()));
            continue;
        }
        match Checkpoint::parse(&bytes) {
            Ok(checkpoint) => loaded.push(LoadedCheckpoint { file, checkpoint }),
            Err(e) => outcome.problem(None, format!("checkpoint {}: {e}", file.display())),
        }
    }
    Ok(loaded)
}

fn load_kept(path: &Path, key: &VerifyingKey, outcome: &mut VerifyOutcome) -> anyhow::Result<Option<Checkpoint>> {
    let bytes = std::fs::read(path).with_context(|| format!("read kept checkpoint {}", path.display()))?;
    let mut sig_path = path.to_owned().into_os_string();
    sig_path.push(".sig");
    if let Ok(signature) = std::fs::read(&sig_path)
        && !verify_signature(key, &bytes, &signature)
    {
        outcome
            .problem(None, format!("the kept checkpoint {} does not verify against the signing key", path.display()));
    }
    match Checkpoint::parse(&bytes) {
        Ok(checkpoint) => Ok(Some(checkpoint)),
        Err(e) => {
            outcome.problem(None, format!("the kept checkpoint {}: {e}", path.display()));
            Ok(None)
        }
    }
}

/// An inclusion proof as `custodianctl audit prove` prints it (JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct InclusionProof {
    /// The event's sequence number (its leaf index).
    pub seq: u64,
    /// The event's exact bytes, as UTF-8 JSON text.
    pub event: String,
    /// The checkpoint text the proof is against.
    pub checkpoint: String,
    /// The checkpoint's signature, base64.
    pub checkpoint_signature: String,
    /// The audit path, leaf to root, hex.
    pub path: Vec<String>,
}

/// Why an inclusion proof failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyProofError {
    /// The checkpoint's signature does not verify.
    #[error("the checkpoint's signature does not verify against the signing key")]
    Signature,
    /// The checkpoint does not parse.
    #[error("the checkpoint: {0}")]
    Checkpoint(#[from] super::checkpoint::ParseCheckpointError),
    /// A hash in the path is not 32 bytes of hex.
    #[error("path element {0} is not 64 hex digits")]
    PathElement(usize),
    /// The event's own seq is not the proof's.
    #[error("the event's seq is not {0}")]
    Seq(u64),
    /// The path does not lead from the event to the checkpoint's root.
    #[error("the event is not included in the checkpoint (the path does not lead to its root)")]
    NotIncluded,
}

impl InclusionProof {
    /// Checks the proof: the checkpoint's signature under `key`, and the
    /// event's inclusion in the checkpoint's tree.
    pub fn verify(&self, key: &VerifyingKey) -> Result<Checkpoint, VerifyProofError> {
        use base64::Engine;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(&self.checkpoint_signature)
            .map_err(|_| VerifyProofError::Signature)?;
        if !verify_signature(key, self.checkpoint.as_bytes(), &signature) {
            return Err(VerifyProofError::Signature);
        }
        let checkpoint = Checkpoint::parse(self.checkpoint.as_bytes())?;
        let path = self
            .path
            .iter()
            .enumerate()
            .map(|(i, h)| {
                hex::decode(h).ok().and_then(|b| Hash::try_from(b).ok()).ok_or(VerifyProofError::PathElement(i))
            })
            .collect::<Result<Vec<Hash>, _>>()?;
        match serde_json::from_str::<SeqOnly>(&self.event) {
            Ok(SeqOnly { seq }) if seq == self.seq => {}
            _ => return Err(VerifyProofError::Seq(self.seq)),
        }
        let leaf = leaf_hash(self.event.as_bytes());
        if !verify_inclusion(self.seq, checkpoint.size, &leaf, &path, &checkpoint.root) {
            return Err(VerifyProofError::NotIncluded);
        }
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests;
