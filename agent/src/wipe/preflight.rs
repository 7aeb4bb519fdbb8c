//! Checks made before the first write: a target that is mounted, used as
//! swap, holds the running system, sits under device-mapper or RAID, or
//! backs a loop device is refused, and the refusal names what was found.
//!
//! The parsers take the text of `/proc/self/mountinfo` and `/proc/swaps` so
//! they can be tested on fixed inputs; [`check`] reads the live files under
//! a root.

use std::path::Path;

use super::target::{Target, TargetKind};

/// One reason a target is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A filesystem on the target (or one of its partitions) is mounted.
    Mounted {
        /// The mounted device, e.g. `/dev/loop3p1`.
        source: String,
        /// Where it is mounted.
        mount_point: String,
    },
    /// The target holds the running system (`/` or `/boot` is on it).
    RunningSystem {
        /// The mount point found on it.
        mount_point: String,
    },
    /// The target (or a partition) is active swap.
    Swap {
        /// The swap entry.
        entry: String,
    },
    /// Something is stacked on the target: device-mapper, RAID, or bcache.
    Holder {
        /// The holding device's kernel name (`dm-0`, `md127`).
        holder: String,
        /// What it is, e.g. `device-mapper volume "cryptroot"`.
        what: String,
    },
    /// The target is a member of an md RAID array.
    RaidMember {
        /// The array.
        array: String,
    },
    /// The image file backs a loop device.
    LoopBacking {
        /// The loop device.
        loop_device: String,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Mounted { source, mount_point } => write!(f, "{source} is mounted at {mount_point}"),
            Self::RunningSystem { mount_point } => write!(f, "it holds the running system ({mount_point} is on it)"),
            Self::Swap { entry } => write!(f, "{entry} is in use as swap"),
            Self::Holder { holder, what } => write!(f, "it is in use by {holder} ({what})"),
            Self::RaidMember { array } => write!(f, "it is a member of RAID array {array}"),
            Self::LoopBacking { loop_device } => write!(f, "it is attached to loop device {loop_device}"),
        }
    }
}

/// Why the target was refused: every problem found, not just the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing to wipe {path}: {}", .refusals.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct PreflightError {
    /// The target.
    pub path: String,
    /// What was found.
    pub refusals: Vec<Refusal>,
}

pub use crate::procfs::{Mount, parse_mountinfo};

/// Active swap devices and files from `/proc/swaps`.
pub fn parse_swaps(text: &str) -> Vec<String> {
    crate::procfs::parse_swaps(text).into_iter().map(|swap| swap.path).collect()
}

/// The block device and its partitions: kernel names and device numbers,
/// read from sysfs under `root`.
fn device_and_partitions(root: &Path, name: &str, dev: (u32, u32)) -> Vec<(String, (u32, u32))> {
    let mut out = vec![(name.to_owned(), dev)];
    let sys = root.join("sys/class/block").join(name);
    if let Ok(entries) = std::fs::read_dir(&sys) {
        for entry in entries.flatten() {
            let part = entry.path();
            if !part.join("partition").exists() {
                continue;
            }
            let Some(text) = std::fs::read_to_string(part.join("dev")).ok() else { continue };
            let Some((major, minor)) = text.trim().split_once(':') else { continue };
            if let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) {
                out.push((entry.file_name().to_string_lossy().into_owned(), (major, minor)));
            }
        }
    }
    out
}

/// Checks the target against the live system under `root` (`/` normally).
pub fn check(target: &Target, root: &Path) -> Result<(), PreflightError> {
    let mountinfo = std::fs::read_to_string(root.join("proc/self/mountinfo")).unwrap_or_default();
    let swaps = std::fs::read_to_string(root.join("proc/swaps")).unwrap_or_default();
    let refusals = find_refusals(target, root, &parse_mountinfo(&mountinfo), &parse_swaps(&swaps));
    if refusals.is_empty() { Ok(()) } else { Err(PreflightError { path: target.path.display().to_string(), refusals }) }
}

/// Every reason to refuse `target`, given the mounts and swaps.
pub fn find_refusals(target: &Target, root: &Path, mounts: &[Mount], swaps: &[String]) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    match &target.kind {
        TargetKind::Block { name, major, minor } => {
            let parts = device_and_partitions(root, name, (*major, *minor));
            let dev_paths: Vec<String> = parts.iter().map(|(n, _)| format!("/dev/{n}")).collect();
            for mount in mounts {
                let on_target = parts.iter().any(|(_, dev)| *dev == mount.dev) || dev_paths.contains(&mount.source);
                if !on_target {
                    continue;
                }
                if ["/", "/boot", "/boot/efi", "/usr"].contains(&mount.mount_point.as_str()) {
                    refusals.push(Refusal::RunningSystem { mount_point: mount.mount_point.clone() });
                } else {
                    refusals.push(Refusal::Mounted {
                        source: mount.source.clone(),
                        mount_point: mount.mount_point.clone(),
                    });
                }
            }
            for swap in swaps {
                if dev_paths.contains(swap) || same_file(swap, &target.canonical) {
                    refusals.push(Refusal::Swap { entry: swap.clone() });
                }
            }
            for (part, _) in &parts {
                let sys = root.join("sys/class/block").join(part);
                if let Ok(entries) = std::fs::read_dir(sys.join("holders")) {
                    for entry in entries.flatten() {
                        let holder = entry.file_name().to_string_lossy().into_owned();
                        refusals.push(Refusal::Holder { what: describe_holder(root, &holder), holder });
                    }
                }
            }
            if let Ok(mdstat) = std::fs::read_to_string(root.join("proc/mdstat")) {
                for array in md_arrays_with(&mdstat, &parts.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>()) {
                    if !refusals.iter().any(|r| matches!(r, Refusal::Holder { holder, .. } if *holder == array)) {
                        refusals.push(Refusal::RaidMember { array });
                    }
                }
            }
        }
        TargetKind::File => {
            for mount in mounts {
                if same_file(&mount.source, &target.canonical) {
                    refusals.push(Refusal::Mounted {
                        source: mount.source.clone(),
                        mount_point: mount.mount_point.clone(),
                    });
                }
            }
            for swap in swaps {
                if same_file(swap, &target.canonical) {
                    refusals.push(Refusal::Swap { entry: swap.clone() });
                }
            }
            if let Ok(entries) = std::fs::read_dir(root.join("sys/class/block")) {
                for entry in entries.flatten() {
                    let backing = entry.path().join("loop/backing_file");
                    if let Ok(text) = std::fs::read_to_string(backing)
                        && same_file(text.trim(), &target.canonical)
                    {
                        refusals.push(Refusal::LoopBacking {
                            loop_device: format!("/dev/{}", entry.file_name().to_string_lossy()),
                        });
                    }
                }
            }
        }
    }
    refusals
}

fn same_file(path: &str, canonical: &Path) -> bool {
    std::fs::canonicalize(path).map(|p| p == canonical).unwrap_or(false) || Path::new(path) == canonical
}

fn describe_holder(root: &Path, holder: &str) -> String {
    if holder.starts_with("dm-") {
        let name = std::fs::read_to_string(root.join("sys/class/block").join(holder).join("dm/name"))
            .map(|n| n.trim().to_owned())
            .unwrap_or_default();
        format!("device-mapper volume {name:?}")
    } else if holder.starts_with("md") {
        "md RAID array".to_owned()
    } else {
        "a stacked block device".to_owned()
    }
}

/// The md arrays in `/proc/mdstat` that have one of `names` as a member.
pub fn md_arrays_with(mdstat: &str, names: &[&str]) -> Vec<String> {
    let mut arrays = Vec::new();
    for line in mdstat.lines() {
        let Some((array, rest)) = line.split_once(" : ") else { continue };
        if !array.starts_with("md") {
            continue;
        }
        let members = rest.split_whitespace().filter_map(|w| w.split('[').next());
        if members.into_iter().any(|m| names.contains(&m)) {
            arrays.push(array.trim().to_owned());
        }
    }
    arrays
}
