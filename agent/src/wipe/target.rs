//! Opening and identifying a wipe target: a block device or an image file.
//!
//! The size comes from seeking to the end (which for a block device is its
//! capacity, the same number `BLKGETSIZE64` gives). Model, serial and WWN
//! come from sysfs (`/sys/class/block/NAME/device/{model,serial,wwid}`)
//! under a configurable root, so fixture trees can stand in for a machine.
//! An ATA disk's host protected area is read with `hdparm -N` where hdparm
//! exists; otherwise the attestation says the check was not made and why.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a target could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenTargetError {
    /// The path does not exist or cannot be opened.
    #[error("open {path}: {error}")]
    Open {
        /// The path.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The path is neither a block device nor a regular file.
    #[error("{0} is neither a block device nor a regular file")]
    NotADisk(PathBuf),
    /// The device or file is empty.
    #[error("{0} is empty (0 bytes)")]
    Empty(PathBuf),
}

/// What kind of thing is wiped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// A block device, with its kernel name (`sda`, `loop3`) and device number.
    Block {
        /// Kernel name.
        name: String,
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
    /// A regular (image) file.
    File,
}

/// Whether the drive hides sectors from the operating system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HiddenArea {
    /// The check was not made; the reason says why.
    NotChecked(String),
    /// hdparm reported no host protected area.
    Disabled {
        /// Native size in 512-byte sectors.
        sectors: u64,
    },
    /// hdparm reported a host protected area: some sectors are hidden.
    Enabled {
        /// Sectors visible to the operating system.
        visible: u64,
        /// Native sectors.
        native: u64,
    },
}

impl HiddenArea {
    /// A one-line description for the attestation.
    pub fn describe(&self) -> String {
        match self {
            Self::NotChecked(why) => format!("not checked: {why}"),
            Self::Disabled { sectors } => format!("HPA disabled ({sectors} native sectors)"),
            Self::Enabled { visible, native } => {
                format!("HPA ENABLED: {visible} of {native} sectors visible, {} hidden", native - visible)
            }
        }
    }
}

/// A disk's identity as read when the wipe started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskIdentity {
    /// Model, if the device reports one.
    pub model: Option<String>,
    /// Serial number, if the device reports one.
    pub serial: Option<String>,
    /// World Wide Name, if the device has one.
    pub wwn: Option<String>,
    /// Size the operating system sees, bytes.
    pub apparent_size: u64,
    /// Native size, bytes (the apparent size unless a hidden area was found).
    pub native_size: u64,
    /// The hidden-area check.
    pub hidden_area: HiddenArea,
}

/// An opened and identified target.
#[derive(Debug, Clone)]
pub struct Target {
    /// The path as given.
    pub path: PathBuf,
    /// The path with symlinks resolved.
    pub canonical: PathBuf,
    /// Block device or file.
    pub kind: TargetKind,
    /// Size in bytes.
    pub size: u64,
    /// Model, serial, WWN, sizes.
    pub identity: DiskIdentity,
}

/// Splits a Linux `dev_t` into major and minor numbers (glibc's encoding).
pub fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// Opens `path` read-only to learn its size and identity; `root` is where
/// sysfs is read from (`/` on a real machine).
pub fn open(path: &Path, root: &Path) -> Result<Target, OpenTargetError> {
    let open_err = |error| OpenTargetError::Open { path: path.to_owned(), error };
    let canonical = std::fs::canonicalize(path).map_err(open_err)?;
    let meta = std::fs::metadata(&canonical).map_err(open_err)?;
    let kind = if meta.file_type().is_block_device() {
        let (major, minor) = split_dev(meta.rdev());
        let name = canonical.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        TargetKind::Block { name, major, minor }
    } else if meta.file_type().is_file() {
        TargetKind::File
    } else {
        return Err(OpenTargetError::NotADisk(path.to_owned()));
    };
    let mut file = File::open(&canonical).map_err(open_err)?;
    let size = file.seek(SeekFrom::End(0)).map_err(open_err)?;
    if size == 0 {
        return Err(OpenTargetError::Empty(path.to_owned()));
    }
    let identity = match &kind {
        TargetKind::Block { name, .. } => identify_block(root, name, &canonical, size),
        TargetKind::File => DiskIdentity {
            model: None,
            serial: None,
            wwn: None,
            apparent_size: size,
            native_size: size,
            hidden_area: HiddenArea::NotChecked("an image file has no hidden area".to_owned()),
        },
    };
    Ok(Target { path: path.to_owned(), canonical, kind, size, identity })
}

fn read_attr(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Reads model, serial and WWN of block device `name` from sysfs under
/// `root`, and checks for a host protected area.
pub fn identify_block(root: &Path, name: &str, dev_path: &Path, size: u64) -> DiskIdentity {
    let sys = root.join("sys/class/block").join(name);
    let device = sys.join("device");
    let model = read_attr(&device.join("model"));
    let serial = read_attr(&device.join("serial")).or_else(|| read_attr(&sys.join("serial")));
    let wwn = read_attr(&device.join("wwid")).or_else(|| read_attr(&sys.join("wwid")));
    let hidden_area = check_hidden_area(name, dev_path);
    let native_size = match &hidden_area {
        HiddenArea::Enabled { native, .. } => native * 512,
        _ => size,
    };
    DiskIdentity { model, serial, wwn, apparent_size: size, native_size, hidden_area }
}

fn check_hidden_area(name: &str, dev_path: &Path) -> HiddenArea {
    if !name.starts_with("sd") && !name.starts_with("hd") {
        return HiddenArea::NotChecked(format!("{name} is not an ATA disk"));
    }
    let out = match Command::new("hdparm").arg("-N").arg(dev_path).output() {
        Ok(out) => out,
        Err(e) => return HiddenArea::NotChecked(format!("hdparm could not be run ({e})")),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    parse_hdparm_n(&text).unwrap_or_else(|| {
        HiddenArea::NotChecked(format!(
            "hdparm -N gave no sector counts: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    })
}

/// Parses `hdparm -N` output (` max sectors   = 1953525168/1953525168, HPA is disabled`).
pub fn parse_hdparm_n(text: &str) -> Option<HiddenArea> {
    let line = text.lines().find(|l| l.trim_start().starts_with("max sectors"))?;
    let (_, counts) = line.split_once('=')?;
    let counts = counts.split(',').next()?.trim();
    let (visible, native) = counts.split_once('/')?;
    let visible: u64 = visible.trim().parse().ok()?;
    let native: u64 = native.trim().parse().ok()?;
    Some(if visible < native {
        HiddenArea::Enabled { visible, native }
    } else {
        HiddenArea::Disabled { sectors: native }
    })
}
