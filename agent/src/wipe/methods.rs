//! The sanitisation methods, named by the NIST SP 800-88 / IEEE 2883
//! categories: Clear (overwrite, verified by read-back) and Purge
//! (crypto-erase of a LUKS volume; the drive's own sanitize command).
//!
//! The parsers of LUKS headers and of drive capabilities are pure functions
//! so they are tested on fixed bytes and fixed command output.

use std::path::Path;
use std::process::Command;

use custodian_proto::v1 as pb;

/// A sanitisation method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Clear: one pass of zeros.
    ClearZero,
    /// Clear: one pass of a seeded ChaCha20 stream.
    ClearRandom,
    /// Clear: `passes - 1` random passes, then zeros.
    ClearMultipass {
        /// Passes in all (at least 2).
        passes: u32,
    },
    /// Purge: destroy every LUKS keyslot and the header.
    PurgeCryptoErase,
    /// Purge: the drive's own sanitize or secure-erase command.
    PurgeSanitize,
}

/// Why a `--method` (with `--passes`) was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseMethodError {
    /// Not a method name.
    #[error(
        "unknown method {0:?}: use clear-zero, clear-random, clear-multipass, purge-crypto-erase or purge-sanitize"
    )]
    Unknown(String),
    /// `--passes` given to a method that has none, or too few for multipass.
    #[error("{0}")]
    Passes(String),
}

impl Method {
    /// Parses a method name and the optional `--passes`.
    pub fn parse(name: &str, passes: Option<u32>) -> Result<Self, ParseMethodError> {
        let method = match name {
            "clear-zero" => Self::ClearZero,
            "clear-random" => Self::ClearRandom,
            "clear-multipass" => {
                let passes = passes.unwrap_or(3);
                if !(2..=35).contains(&passes) {
                    return Err(ParseMethodError::Passes(format!(
                        "clear-multipass needs 2 to 35 passes, got {passes}"
                    )));
                }
                return Ok(Self::ClearMultipass { passes });
            }
            "purge-crypto-erase" => Self::PurgeCryptoErase,
            "purge-sanitize" => Self::PurgeSanitize,
            other => return Err(ParseMethodError::Unknown(other.to_owned())),
        };
        if passes.is_some() {
            return Err(ParseMethodError::Passes(format!("--passes only applies to clear-multipass, not {name}")));
        }
        Ok(method)
    }

    /// The method's name on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ClearZero => "clear-zero",
            Self::ClearRandom => "clear-random",
            Self::ClearMultipass { .. } => "clear-multipass",
            Self::PurgeCryptoErase => "purge-crypto-erase",
            Self::PurgeSanitize => "purge-sanitize",
        }
    }

    /// The wire enum.
    pub fn to_pb(self) -> pb::WipeMethod {
        match self {
            Self::ClearZero => pb::WipeMethod::ClearZero,
            Self::ClearRandom => pb::WipeMethod::ClearRandom,
            Self::ClearMultipass { .. } => pb::WipeMethod::ClearMultipass,
            Self::PurgeCryptoErase => pb::WipeMethod::PurgeCryptoErase,
            Self::PurgeSanitize => pb::WipeMethod::PurgeSanitize,
        }
    }
}

/// What a LUKS header says about where its metadata ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LuksLayout {
    /// 1 or 2.
    pub version: u16,
    /// Bytes from the start of the device that hold headers and key material.
    pub metadata_end: u64,
}

/// Why a LUKS header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseLuksError {
    /// The magic bytes are not there.
    #[error("no LUKS header (magic not found)")]
    NotLuks,
    /// The version is neither 1 nor 2.
    #[error("unsupported LUKS version {0}")]
    Version(u16),
    /// A size in the header is out of range or the JSON area does not parse.
    #[error("malformed LUKS{version} header: {why}")]
    Malformed {
        /// The version.
        version: u16,
        /// What is wrong.
        why: String,
    },
}

const LUKS_MAGIC: &[u8; 6] = b"LUKS\xba\xbe";

/// Reads the start of a LUKS1 or LUKS2 device (`head` must hold at least the
/// first binary header and, for LUKS2, its JSON area) and says how many
/// bytes of metadata to destroy: LUKS1, the header and key material up to the
/// payload offset; LUKS2, both binary headers, both JSON areas and the
/// keyslots area (up to the first data segment when that is further).
pub fn parse_luks(head: &[u8]) -> Result<LuksLayout, ParseLuksError> {
    if head.len() < 512 || &head[..6] != LUKS_MAGIC {
        return Err(ParseLuksError::NotLuks);
    }
    let version = u16::from_be_bytes([head[6], head[7]]);
    let malformed = |why: String| ParseLuksError::Malformed { version, why };
    match version {
        1 => {
            let payload_sectors = u32::from_be_bytes(head[104..108].try_into().expect("4 bytes"));
            if payload_sectors == 0 {
                return Err(malformed("payload offset is 0".to_owned()));
            }
            // Key material offsets (in sectors) of each of the 8 keyslots; the
            // payload offset is past all of them, but take the larger anyway.
            let mut end = u64::from(payload_sectors) * 512;
            for slot in 0..8 {
                let base = 208 + slot * 48;
                let km_offset = u32::from_be_bytes(head[base + 40..base + 44].try_into().expect("4 bytes"));
                let stripes = u32::from_be_bytes(head[base + 44..base + 48].try_into().expect("4 bytes"));
                let key_bytes = u32::from_be_bytes(head[108..112].try_into().expect("4 bytes"));
                let km_end = u64::from(km_offset) * 512 + u64::from(key_bytes) * u64::from(stripes);
                end = end.max(km_end.div_ceil(512) * 512);
            }
            Ok(LuksLayout { version, metadata_end: end })
        }
        2 => {
            let hdr_size = u64::from_be_bytes(head[8..16].try_into().expect("8 bytes"));
            if !(16384..=4 << 20).contains(&hdr_size) {
                return Err(malformed(format!("header size {hdr_size} out of range")));
            }
            let json_end = (hdr_size as usize).min(head.len());
            if json_end <= 4096 {
                return Err(malformed("the JSON area was not read".to_owned()));
            }
            let json = &head[4096..json_end];
            let json = &json[..json.iter().position(|b| *b == 0).unwrap_or(json.len())];
            let value: serde_json::Value =
                serde_json::from_slice(json).map_err(|e| malformed(format!("JSON area: {e}")))?;
            let number = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<u64>().ok()).or(v.as_u64());
            let keyslots_size = value
                .pointer("/config/keyslots_size")
                .and_then(number)
                .ok_or_else(|| malformed("no config.keyslots_size".to_owned()))?;
            let mut end = 2 * hdr_size + keyslots_size;
            let segments = value.get("segments").and_then(|s| s.as_object());
            if let Some(data_offset) =
                segments.and_then(|s| s.values().filter_map(|s| s.get("offset").and_then(number)).min())
            {
                end = end.max(data_offset);
            }
            Ok(LuksLayout { version, metadata_end: end })
        }
        other => Err(ParseLuksError::Version(other)),
    }
}

/// What a drive offers for purging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SanitizeSupport {
    /// NVMe sanitize with these actions available.
    Nvme {
        /// Crypto erase.
        crypto: bool,
        /// Block erase.
        block: bool,
        /// Overwrite.
        overwrite: bool,
    },
    /// ATA security erase (enhanced when `enhanced`).
    Ata {
        /// Enhanced erase is supported.
        enhanced: bool,
    },
}

/// Why a drive cannot be purged with its own command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SanitizeRefusal {
    /// The target is neither NVMe nor ATA (an image file, a loop device, virtio...).
    #[error("{0} has no sanitize or secure-erase command (it is neither an NVMe nor an ATA disk); use a clear method")]
    NoCommand(String),
    /// The vendor tool that would send the command is not installed.
    #[error("{tool} is not installed, so {device} cannot be sent a sanitize command")]
    ToolMissing {
        /// `nvme` or `hdparm`.
        tool: &'static str,
        /// The device.
        device: String,
    },
    /// The drive reports no sanitize / erase capability.
    #[error("{device} does not support {what}")]
    Unsupported {
        /// The device.
        device: String,
        /// What it lacks.
        what: String,
    },
    /// ATA security is frozen (the BIOS froze it at boot).
    #[error("{0}: ATA security is frozen; suspend and resume the machine or hot-plug the disk, then retry")]
    Frozen(String),
}

/// Parses the `sanicap` field of `nvme id-ctrl -o json`.
pub fn parse_nvme_sanicap(json: &str) -> Option<SanitizeSupport> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let sanicap = value.get("sanicap")?.as_u64()?;
    Some(SanitizeSupport::Nvme { crypto: sanicap & 1 != 0, block: sanicap & 2 != 0, overwrite: sanicap & 4 != 0 })
}

/// Parses `hdparm -I` output: whether security erase is supported, enhanced
/// erase too, and whether security is frozen.
pub fn parse_hdparm_identify(text: &str) -> Option<(SanitizeSupport, bool)> {
    let security = text.split("Security:").nth(1)?;
    let section: String =
        security.lines().take_while(|l| !l.trim_start().starts_with("Logical")).collect::<Vec<_>>().join("\n");
    let supported = section.lines().any(|l| l.trim() == "supported");
    if !supported {
        return None;
    }
    let enhanced = section.lines().any(|l| l.trim() == "supported: enhanced erase");
    let frozen = section.lines().any(|l| l.trim() == "frozen");
    Some((SanitizeSupport::Ata { enhanced }, frozen))
}

fn tool_exists(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

/// Finds what the drive at `dev_path` (kernel name `name`, or `None` for an
/// image file) offers, or refuses.
pub fn detect_sanitize(name: Option<&str>, dev_path: &Path) -> Result<SanitizeSupport, SanitizeRefusal> {
    let device = dev_path.display().to_string();
    let Some(name) = name else { return Err(SanitizeRefusal::NoCommand(device)) };
    if name.starts_with("nvme") {
        if !tool_exists("nvme") {
            return Err(SanitizeRefusal::ToolMissing { tool: "nvme", device });
        }
        let out = Command::new("nvme").args(["id-ctrl", &device, "-o", "json"]).output();
        let support = out.ok().and_then(|o| parse_nvme_sanicap(&String::from_utf8_lossy(&o.stdout)));
        return match support {
            Some(s @ SanitizeSupport::Nvme { crypto, block, .. }) if crypto || block => Ok(s),
            _ => Err(SanitizeRefusal::Unsupported {
                device,
                what: "NVMe sanitize (sanicap has no crypto or block erase)".to_owned(),
            }),
        };
    }
    if name.starts_with("sd") || name.starts_with("hd") {
        if !tool_exists("hdparm") {
            return Err(SanitizeRefusal::ToolMissing { tool: "hdparm", device });
        }
        let out = Command::new("hdparm").arg("-I").arg(dev_path).output();
        return match out.ok().and_then(|o| parse_hdparm_identify(&String::from_utf8_lossy(&o.stdout))) {
            Some((_, true)) => Err(SanitizeRefusal::Frozen(device)),
            Some((support, false)) => Ok(support),
            None => Err(SanitizeRefusal::Unsupported { device, what: "ATA security erase".to_owned() }),
        };
    }
    Err(SanitizeRefusal::NoCommand(device))
}

/// Runs the drive's own command and reads back its completion status.
/// Returns a description of what was done.
pub fn run_sanitize(support: &SanitizeSupport, dev_path: &Path) -> Result<String, String> {
    let device = dev_path.display().to_string();
    let run = |cmd: &mut Command| -> Result<String, String> {
        let out = cmd.output().map_err(|e| format!("run {cmd:?}: {e}"))?;
        if !out.status.success() {
            return Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    match support {
        SanitizeSupport::Nvme { crypto, .. } => {
            // sanact 4 = crypto erase, 2 = block erase.
            let sanact = if *crypto { "4" } else { "2" };
            run(Command::new("nvme").args(["sanitize", &device, "--sanact", sanact]))?;
            loop {
                let log = run(Command::new("nvme").args(["sanitize-log", &device, "-o", "json"]))?;
                let value: serde_json::Value = serde_json::from_str(&log).map_err(|e| format!("sanitize-log: {e}"))?;
                let sstat = value
                    .as_object()
                    .and_then(|o| o.values().next())
                    .and_then(|v| v.get("sstat"))
                    .and_then(|v| v.as_u64())
                    .or_else(|| value.get("sstat").and_then(|v| v.as_u64()))
                    .ok_or("sanitize-log has no sstat")?;
                match sstat & 0x7 {
                    1 => return Ok(format!("nvme-sanitize sanact={sanact}, status: completed")),
                    2 => std::thread::sleep(std::time::Duration::from_secs(2)),
                    3 => return Err("the drive reports the sanitize operation failed".to_owned()),
                    other => return Err(format!("unexpected sanitize status {other}")),
                }
            }
        }
        SanitizeSupport::Ata { enhanced } => {
            let password = "custodian";
            run(Command::new("hdparm").args(["--user-master", "u", "--security-set-pass", password, &device]))?;
            let erase = if *enhanced { "--security-erase-enhanced" } else { "--security-erase" };
            run(Command::new("hdparm").args(["--user-master", "u", erase, password, &device]))?;
            let identify = run(Command::new("hdparm").arg("-I").arg(&device))?;
            if identify.contains("\tenabled") && !identify.contains("not\tenabled") {
                return Err("security is still enabled after the erase: the drive did not complete it".to_owned());
            }
            Ok(format!(
                "ata-security-erase{}, status: security disabled after erase",
                if *enhanced { "-enhanced" } else { "" }
            ))
        }
    }
}

/// Whether `cryptsetup isLuks` recognises `path` (`None` when cryptsetup is not installed).
pub fn cryptsetup_is_luks(path: &Path) -> Option<bool> {
    Command::new("cryptsetup").arg("isLuks").arg(path).status().ok().map(|s| s.success())
}

/// Runs `cryptsetup erase` (destroys every keyslot) when cryptsetup is installed.
pub fn cryptsetup_erase(path: &Path) -> Option<Result<(), String>> {
    let out = Command::new("cryptsetup").args(["erase", "--batch-mode"]).arg(path).output().ok()?;
    Some(if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()) })
}
