//! Sanitising a disk and attesting to it.
//!
//! [`prepare`] opens and identifies the target and refuses what must not be
//! wiped (mounted, swap, the running system, under device-mapper or RAID, a
//! hidden area that would stay unwritten, a purge the drive cannot do).
//! [`execute`] writes the in-progress marker through a callback, runs the
//! method, verifies by read-back, and returns the unsigned attestation, whose
//! result is passed, failed (with the reason and first mismatch offset) or
//! interrupted.
//!
//! - [`target`]: open and identify (size, model, serial, WWN, HPA);
//! - [`preflight`]: the refusals;
//! - [`pattern`]: zeros or a seeded ChaCha20 stream;
//! - [`engine`]: the write and read loops;
//! - [`verify`]: full or sampled read-back;
//! - [`methods`]: the methods, LUKS and drive-capability parsers;
//! - [`attestation`]: building, signing, the in-progress marker;
//! - [`progress`]: terminal bar and log lines.

pub mod attestation;
pub mod engine;
pub mod methods;
pub mod pattern;
pub mod preflight;
pub mod progress;
pub mod target;
pub mod verify;

use std::path::{Path, PathBuf};

use custodian_proto::v1 as pb;
use tracing::{info, warn};

use self::engine::{Cancel, Device, EngineError};
use self::methods::{LuksLayout, Method, ParseLuksError, SanitizeRefusal, SanitizeSupport};
use self::pattern::{Pattern, Seed};
use self::preflight::PreflightError;
use self::progress::Progress;
use self::target::{HiddenArea, OpenTargetError, Target, TargetKind};
use self::verify::VerifyMode;

/// What to wipe and how.
#[derive(Debug, Clone)]
pub struct WipeRequest {
    /// The block device or image file.
    pub device: PathBuf,
    /// The method.
    pub method: Method,
    /// How to verify.
    pub verify: VerifyMode,
    /// Who started it.
    pub operator: String,
    /// The machine the disk came out of (this device's id), or empty when a
    /// wipe station wipes a disk pulled from another machine.
    pub source_device_id: String,
    /// The signing device's id.
    pub signer_device_id: String,
    /// Where `/proc` and `/sys` are read from (`/` normally).
    pub root: PathBuf,
    /// Show a progress bar on the terminal.
    pub show_progress: bool,
}

/// Called with the target's path between the write and the verification.
pub type AfterWriteHook = Box<dyn Fn(&Path) -> std::io::Result<()> + Send + Sync>;

/// Test hooks, reachable only through the library API.
#[derive(Default)]
pub struct Hooks {
    /// Runs after the last write pass is synced and before verification
    /// (tests corrupt a block here to prove verification catches it).
    pub after_write: Option<AfterWriteHook>,
}

/// Why a wipe was refused before anything was written.
#[derive(Debug, thiserror::Error)]
pub enum PrepareWipeError {
    /// The target could not be opened.
    #[error(transparent)]
    Open(#[from] OpenTargetError),
    /// The target is in use.
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// The drive hides sectors that an overwrite would leave unwritten.
    #[error(
        "{path}: {what}; remove the host protected area first (hdparm -N p<native sectors>), or the wipe would leave it unwritten"
    )]
    HiddenArea {
        /// The device.
        path: String,
        /// What hdparm reported.
        what: String,
    },
    /// The drive cannot sanitize itself.
    #[error("purge-sanitize refused: {0}")]
    Sanitize(#[from] SanitizeRefusal),
    /// Crypto-erase asked for, but the target is not a LUKS volume.
    #[error("purge-crypto-erase refused: {path}: {error}")]
    NotLuks {
        /// The device.
        path: String,
        /// What the header parser found.
        error: ParseLuksError,
    },
    /// The LUKS header could not be read.
    #[error("read the LUKS header of {path}: {error}")]
    ReadHeader {
        /// The device.
        path: String,
        /// The I/O error.
        error: EngineError,
    },
}

/// What will be done, decided by [`prepare`].
#[derive(Debug, Clone)]
pub enum Plan {
    /// Overwrite with these patterns in turn; verify the last.
    Clear {
        /// One pattern per pass.
        passes: Vec<Pattern>,
        /// The seed of the random passes.
        seed: Option<Seed>,
    },
    /// Destroy the LUKS metadata described.
    CryptoErase(LuksLayout),
    /// Send the drive its own command.
    Sanitize(SanitizeSupport),
}

/// A target ready to be wiped.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The opened target.
    pub target: Target,
    /// What will be done.
    pub plan: Plan,
}

/// Opens, identifies and checks the target, and plans the method.
pub fn prepare(req: &WipeRequest) -> Result<Prepared, PrepareWipeError> {
    let target = target::open(&req.device, &req.root)?;
    preflight::check(&target, &req.root)?;
    let path = target.path.display().to_string();
    if let HiddenArea::Enabled { .. } = &target.identity.hidden_area
        && req.method != Method::PurgeSanitize
    {
        return Err(PrepareWipeError::HiddenArea { path, what: target.identity.hidden_area.describe() });
    }
    let plan = match req.method {
        Method::ClearZero => Plan::Clear { passes: vec![Pattern::Zero], seed: None },
        Method::ClearRandom => {
            let seed = pattern::new_seed();
            Plan::Clear { passes: vec![Pattern::ChaCha20 { seed, stream: 0 }], seed: Some(seed) }
        }
        Method::ClearMultipass { passes } => {
            let seed = pattern::new_seed();
            let mut patterns: Vec<Pattern> =
                (0..u64::from(passes - 1)).map(|stream| Pattern::ChaCha20 { seed, stream }).collect();
            patterns.push(Pattern::Zero);
            Plan::Clear { passes: patterns, seed: Some(seed) }
        }
        Method::PurgeCryptoErase => {
            let dev = Device::open_buffered(&target.canonical, target.size)
                .map_err(|error| PrepareWipeError::ReadHeader { path: path.clone(), error })?;
            let mut head = vec![0u8; (4usize << 20).min(target.size as usize)];
            dev.read_at(&mut head, 0).map_err(|error| PrepareWipeError::ReadHeader { path: path.clone(), error })?;
            let layout = methods::parse_luks(&head).map_err(|error| PrepareWipeError::NotLuks { path, error })?;
            Plan::CryptoErase(layout)
        }
        Method::PurgeSanitize => {
            let name = match &target.kind {
                TargetKind::Block { name, .. } => Some(name.as_str()),
                TargetKind::File => None,
            };
            Plan::Sanitize(methods::detect_sanitize(name, &target.path)?)
        }
    };
    Ok(Prepared { target, plan })
}

/// Runs the plan. `on_start` receives the attestation as it would read if
/// the wipe were interrupted, before the first write (the caller stores it
/// durably as the in-progress marker); an error from it stops the wipe before
/// anything is written. Returns the finished, unsigned attestation.
pub fn execute(
    req: &WipeRequest,
    prepared: &Prepared,
    hooks: &Hooks,
    cancel: &Cancel,
    on_start: impl FnOnce(&pb::WipeAttestation) -> anyhow::Result<()>,
) -> anyhow::Result<pb::WipeAttestation> {
    let target = &prepared.target;
    let (passes, pattern_name, seed) = match &prepared.plan {
        Plan::Clear { passes, seed } => (
            passes.len() as u32,
            passes.iter().map(Pattern::name).collect::<Vec<_>>().join(","),
            seed.map(|s| s.to_vec()).unwrap_or_default(),
        ),
        Plan::CryptoErase(layout) => (1, format!("luks{}-metadata-zeroed", layout.version), Vec::new()),
        Plan::Sanitize(SanitizeSupport::Nvme { .. }) => (0, "nvme-sanitize".to_owned(), Vec::new()),
        Plan::Sanitize(SanitizeSupport::Ata { .. }) => (0, "ata-security-erase".to_owned(), Vec::new()),
    };
    let (mode, sample_percent) = match (&prepared.plan, req.verify) {
        (Plan::Sanitize(_), _) => (pb::VerifyMode::None, 0),
        (Plan::CryptoErase(_), _) | (_, VerifyMode::Full) => (pb::VerifyMode::Full, 0),
        (_, VerifyMode::Sample(p)) => (pb::VerifyMode::Sample, p),
    };
    let mut attestation = pb::WipeAttestation {
        device_id: req.signer_device_id.clone(),
        seq: 0,
        disk: Some(attestation::wiped_disk(target)),
        method: req.method.to_pb().into(),
        passes,
        pattern: pattern_name,
        seed,
        verification: Some(pb::WipeVerification {
            mode: mode.into(),
            sample_percent,
            block_size: verify::BLOCK,
            blocks_total: 0,
            blocks_checked: 0,
        }),
        result: Some(attestation::interrupted(attestation::CRASH_REASON)),
        started_at_ms: custodian_proto::now_ms(),
        finished_at_ms: 0,
        tool_version: crate::AGENT_VERSION.to_owned(),
        tool_sha256: attestation::tool_sha256(),
        operator: req.operator.clone(),
        source_device_id: req.source_device_id.clone(),
        device_path: target.path.display().to_string(),
    };
    on_start(&attestation)?;
    info!(device = %target.path.display(), method = req.method.name(), size = target.size, "wipe started");
    let result = run_plan(req, prepared, hooks, cancel, &mut attestation);
    attestation.finished_at_ms = custodian_proto::now_ms().max(attestation.started_at_ms);
    attestation.result = Some(match result {
        Ok(()) => attestation::passed(),
        Err(Stop::Interrupted(at)) => {
            attestation::interrupted(format!("interrupted by the operator or a signal at byte offset {at}"))
        }
        Err(Stop::Failed { reason, offset }) => attestation::failed(reason, offset),
    });
    match &attestation.result {
        Some(r) if r.outcome == i32::from(pb::WipeOutcome::Passed) => {
            info!(device = %target.path.display(), "wipe passed")
        }
        Some(r) => warn!(device = %target.path.display(), reason = %r.reason, "wipe did not pass"),
        None => {}
    }
    Ok(attestation)
}

enum Stop {
    Interrupted(u64),
    Failed { reason: String, offset: Option<u64> },
}

impl From<EngineError> for Stop {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Interrupted { at } => Stop::Interrupted(at),
            e @ EngineError::Io { .. } => Stop::Failed { reason: e.to_string(), offset: None },
        }
    }
}

fn run_plan(
    req: &WipeRequest,
    prepared: &Prepared,
    hooks: &Hooks,
    cancel: &Cancel,
    attestation: &mut pb::WipeAttestation,
) -> Result<(), Stop> {
    let target = &prepared.target;
    match &prepared.plan {
        Plan::Clear { passes, .. } => {
            let dev = Device::open(&target.canonical, target.size)?;
            if !dev.direct_io() {
                warn!(device = %target.path.display(), "direct I/O is not available; using buffered I/O");
            }
            for (i, pattern) in passes.iter().enumerate() {
                let progress =
                    Progress::new(format!("pass {}/{}", i + 1, passes.len()), target.size, req.show_progress);
                engine::write_pass(&dev, pattern, cancel, &progress)?;
                progress.finish();
            }
            run_hook(hooks, &target.canonical)?;
            let last = passes.last().expect("a clear plan has at least one pass");
            verify_into(&dev, last, req.verify, cancel, req.show_progress, attestation)
        }
        Plan::CryptoErase(layout) => {
            match methods::cryptsetup_erase(&target.canonical) {
                Some(Ok(())) => info!(device = %target.path.display(), "cryptsetup erase destroyed the keyslots"),
                Some(Err(e)) => {
                    warn!(device = %target.path.display(), error = %e, "cryptsetup erase failed; overwriting the header anyway")
                }
                None => info!("cryptsetup is not installed; overwriting the LUKS metadata directly"),
            }
            let end = layout.metadata_end.min(target.size);
            let dev = Device::open(&target.canonical, end)?;
            let progress = Progress::new("luks header", end, req.show_progress);
            engine::write_pass(&dev, &Pattern::Zero, cancel, &progress)?;
            progress.finish();
            run_hook(hooks, &target.canonical)?;
            verify_into(&dev, &Pattern::Zero, VerifyMode::Full, cancel, req.show_progress, attestation)?;
            if methods::cryptsetup_is_luks(&target.canonical) == Some(true) {
                return Err(Stop::Failed {
                    reason: "cryptsetup isLuks still recognises the volume".to_owned(),
                    offset: None,
                });
            }
            let mut head = vec![0u8; 4096.min(target.size as usize)];
            dev.read_at(&mut head, 0)?;
            if methods::parse_luks(&head).is_ok() {
                return Err(Stop::Failed { reason: "a LUKS header is still present".to_owned(), offset: Some(0) });
            }
            Ok(())
        }
        Plan::Sanitize(support) => {
            if cancel.is_set() {
                return Err(Stop::Interrupted(0));
            }
            match methods::run_sanitize(support, &target.canonical) {
                Ok(done) => {
                    attestation.pattern = done;
                    Ok(())
                }
                Err(reason) => Err(Stop::Failed { reason, offset: None }),
            }
        }
    }
}

fn run_hook(hooks: &Hooks, path: &Path) -> Result<(), Stop> {
    if let Some(hook) = &hooks.after_write {
        hook(path).map_err(|e| Stop::Failed { reason: format!("test hook failed: {e}"), offset: None })?;
    }
    Ok(())
}

fn verify_into(
    dev: &Device,
    pattern: &Pattern,
    mode: VerifyMode,
    cancel: &Cancel,
    show_progress: bool,
    attestation: &mut pb::WipeAttestation,
) -> Result<(), Stop> {
    let total = match mode {
        VerifyMode::Full => dev.size(),
        VerifyMode::Sample(p) => dev.size() * u64::from(p) / 100,
    };
    let progress = Progress::new(format!("verify {mode}"), total, show_progress);
    let verified = verify::verify(dev, pattern, mode, cancel, &progress)?;
    progress.finish();
    if let Some(v) = attestation.verification.as_mut() {
        v.blocks_total = verified.blocks_total;
        v.blocks_checked = verified.blocks_checked;
    }
    match verified.first_mismatch {
        None => Ok(()),
        Some(offset) => Err(Stop::Failed {
            reason: format!(
                "verification found a byte that differs from the {} pattern at offset {offset}",
                pattern.name()
            ),
            offset: Some(offset),
        }),
    }
}

#[cfg(test)]
mod tests;
