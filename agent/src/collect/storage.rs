//! Storage devices and their volumes on Linux, read under a root: disks from
//! `sys/block`, partitions from their sysfs subdirectories, the block-device
//! stack from `holders/` and device-mapper `dm/uuid` / `dm/name`, content and
//! LUKS headers from the device nodes in `dev`, mount points from
//! `proc/self/mountinfo`, active swap from `proc/swaps`, and serials and
//! partition types from the udev database in `run/udev/data` where sysfs has
//! none.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use custodian_proto::v1 as pb;

use super::encryption::{self, Content, DmTarget};
use super::{io_reason, read_trimmed};

/// Kernel name prefixes of block devices that are not storage hardware.
const VIRTUAL_PREFIXES: &[&str] = &["loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd", "zd"];

/// GPT partition types that hold firmware, not data: EFI system, BIOS boot,
/// Microsoft reserved.
const FIRMWARE_PARTITION_TYPES: &[&str] = &[
    "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
    "21686148-6449-6e6f-744e-656564454649",
    "e3c9e316-0b5c-4db8-817d-f92df00215ae",
];

/// Mount points that hold boot files only, not data.
const BOOT_MOUNTS: &[&str] = &["/boot", "/boot/efi", "/efi"];

/// Volumes smaller than this (extended-partition containers, alignment gaps) hold no data.
const MIN_DATA_VOLUME: u64 = 1024 * 1024;

/// What the collector reads the block layer from.
pub(crate) struct BlockLayer<'a> {
    root: &'a Path,
    /// `major:minor` → mount points.
    mounts: BTreeMap<String, Vec<String>>,
    /// Kernel names of active swap devices.
    swaps: BTreeSet<String>,
}

impl<'a> BlockLayer<'a> {
    /// Reads the mount table and active swaps under `root`.
    pub(crate) fn new(root: &'a Path) -> Self {
        let mountinfo = std::fs::read_to_string(root.join("proc/self/mountinfo")).unwrap_or_default();
        let mut layer = Self { root, mounts: parse_mountinfo(&mountinfo), swaps: BTreeSet::new() };
        let swaps = std::fs::read_to_string(root.join("proc/swaps")).unwrap_or_default();
        layer.swaps = parse_swaps(&swaps).into_iter().filter_map(|device| layer.kernel_name(&device)).collect();
        layer
    }

    /// Every storage device, by kernel name.
    pub(crate) fn storage(&self) -> Vec<pb::StorageDevice> {
        let Ok(entries) = std::fs::read_dir(self.root.join("sys/block")) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| !VIRTUAL_PREFIXES.iter().any(|p| name.starts_with(p)))
            // eMMC hardware boot and replay-protected areas are not volumes anyone writes data to.
            .filter(|name| !(name.starts_with("mmcblk") && (name.contains("boot") || name.ends_with("rpmb"))))
            .collect();
        names.sort();
        names.iter().filter_map(|name| self.disk(name)).collect()
    }

    fn sys_block(&self, name: &str) -> PathBuf {
        self.root.join("sys/block").join(name)
    }

    fn disk(&self, name: &str) -> Option<pb::StorageDevice> {
        let sys = self.sys_block(name);
        let size_bytes = sectors(&sys);
        if size_bytes == 0 {
            return None; // An empty card reader or a detached device.
        }
        let udev = self.udev(&sys);
        let transport = transport(name, &sys, &udev);
        let removable = read_trimmed(&sys.join("removable")).as_deref() == Some("1") || transport == "usb";
        let mut partitions: Vec<(u64, String)> = std::fs::read_dir(&sys)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("partition").exists())
            .map(|e| {
                let part = e.file_name().to_string_lossy().into_owned();
                (read_trimmed(&e.path().join("partition")).and_then(|n| n.parse().ok()).unwrap_or(u64::MAX), part)
            })
            .collect();
        partitions.sort();
        let volumes = if partitions.is_empty() {
            vec![self.volume(name, &sys, removable)]
        } else {
            partitions.iter().map(|(_, part)| self.volume(part, &sys.join(part), removable)).collect()
        };
        Some(pb::StorageDevice {
            name: name.to_owned(),
            model: Some(first_of(&[sys.join("device/model")], &udev, &["ID_MODEL"], "model")),
            serial: Some(serial(&sys, &udev)),
            wwn: Some(first_of(&[sys.join("wwid"), sys.join("device/wwid")], &udev, &["ID_WWN"], "WWN")),
            size_bytes,
            rotational: read_trimmed(&sys.join("queue/rotational")).as_deref() == Some("1"),
            transport: transport.to_owned(),
            removable,
            volumes,
        })
    }

    /// The udev database entry for the block device whose sysfs directory is `sys`.
    fn udev(&self, sys: &Path) -> BTreeMap<String, String> {
        let Some(dev) = read_trimmed(&sys.join("dev")) else {
            return BTreeMap::new();
        };
        let text = std::fs::read_to_string(self.root.join("run/udev/data").join(format!("b{dev}"))).unwrap_or_default();
        text.lines()
            .filter_map(|line| line.strip_prefix("E:")?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn volume(&self, name: &str, sys: &Path, removable: bool) -> pb::Volume {
        let size_bytes = sectors(sys);
        let udev = self.udev(sys);
        let node = self.root.join("dev").join(name);
        let device_path = format!("/dev/{name}");
        let head = read_head(&node);
        let content = head.as_ref().ok().map(|bytes| encryption::probe(bytes));
        let stack = self.stack(name, sys);
        let mut mount_points = stack.mounts.clone();
        mount_points.sort();
        mount_points.dedup();

        let udev_type = udev.get("ID_FS_TYPE").filter(|t| !t.is_empty());
        let filesystem = match (content.as_ref().and_then(Content::type_name), udev_type, &head) {
            (Some(kind), _, _) => pb::Readable::value(kind),
            (None, Some(kind), _) => pb::Readable::value(kind.clone()),
            (None, None, Ok(_)) => pb::Readable::unknown(format!("absent (no signature recognised in {device_path})")),
            (None, None, Err(e)) => pb::Readable::unknown(format!("{} reading {device_path}", io_reason(e))),
        };

        let encryption = self.decide_encryption(&device_path, content.as_ref(), head.as_ref().err(), &udev, &stack);
        // Firmware and boot partitions hold no data: by GPT type, or because
        // they are mounted only at a boot location.
        let firmware_only = udev
            .get("ID_PART_ENTRY_TYPE")
            .is_some_and(|t| FIRMWARE_PARTITION_TYPES.contains(&t.to_lowercase().as_str()))
            || (!mount_points.is_empty() && mount_points.iter().all(|m| BOOT_MOUNTS.contains(&m.as_str())));
        pb::Volume {
            name: name.to_owned(),
            size_bytes,
            filesystem: Some(filesystem),
            mount_points,
            holds_data: !removable && !firmware_only && size_bytes >= MIN_DATA_VOLUME,
            encryption: Some(encryption),
        }
    }

    fn decide_encryption(
        &self,
        device_path: &str,
        content: Option<&Content>,
        read_error: Option<&std::io::Error>,
        udev: &BTreeMap<String, String>,
        stack: &Stack,
    ) -> pb::Encryption {
        use pb::{EncryptionScheme as Scheme, EncryptionState as State};
        let opened = match &stack.crypt {
            Some(crypt) => format!("; open as {} ({})", crypt.kernel_name, crypt.dm_name),
            None => String::new(),
        };
        match content {
            Some(Content::Luks(header)) => {
                return encryption::from_luks(
                    header,
                    format!("LUKS{} header read from {device_path}{opened}", header.version),
                );
            }
            Some(Content::BadLuks(e)) => {
                let scheme = stack.crypt.as_ref().map_or(Scheme::Unknown, |c| c.target.scheme());
                return encryption::encryption(
                    State::Encrypted,
                    scheme,
                    format!("LUKS magic read from {device_path} but the header does not parse ({e}){opened}"),
                );
            }
            Some(Content::BitLocker) => {
                return encryption::encryption(
                    State::Encrypted,
                    Scheme::Bitlocker,
                    format!("BitLocker signature read from {device_path}"),
                );
            }
            _ => {}
        }
        if let Some(crypt) = stack.crypt.as_ref().filter(|_| stack.all_paths_crypt) {
            return encryption::encryption(
                State::Encrypted,
                crypt.target.scheme(),
                format!(
                    "device-mapper target {} ({}) above {device_path} has uuid {}",
                    crypt.kernel_name, crypt.dm_name, crypt.uuid
                ),
            );
        }
        let known_type =
            content.and_then(Content::type_name).map(|t| format!("{t} read from {device_path}")).or_else(|| {
                udev.get("ID_FS_TYPE").filter(|t| !t.is_empty()).map(|t| format!("{t} according to the udev database"))
            });
        if udev.get("ID_FS_TYPE").map(String::as_str) == Some("crypto_LUKS") {
            let scheme = match udev.get("ID_FS_VERSION").map(String::as_str) {
                Some("1") => Scheme::Luks1,
                Some("2") => Scheme::Luks2,
                _ => Scheme::Unknown,
            };
            let why = read_error.map(io_reason).unwrap_or_else(|| "not recognised".to_owned());
            return encryption::encryption(
                State::Encrypted,
                scheme,
                format!("udev database says crypto_LUKS for {device_path}; header unreadable: {why}"),
            );
        }
        match (known_type, read_error) {
            (Some(kind), _) => {
                let above = if stack.n_holders == 0 {
                    "nothing stacked above it".to_owned()
                } else if stack.crypt.is_some() {
                    "not every device-mapper path above it is dm-crypt".to_owned()
                } else {
                    "no dm-crypt target above it".to_owned()
                };
                encryption::encryption(State::NotEncrypted, Scheme::None, format!("{kind}; {above}"))
            }
            (None, Some(e)) => encryption::encryption(
                State::Unknown,
                Scheme::Unknown,
                format!("{} reading {device_path}, and no dm-crypt target above it", io_reason(e)),
            ),
            (None, None) => encryption::encryption(
                State::Unknown,
                Scheme::Unknown,
                format!("no filesystem or encryption header recognised in {device_path}"),
            ),
        }
    }

    /// Follows `holders/` up from a volume: where it ends up mounted, and
    /// whether every path up passes through dm-crypt.
    fn stack(&self, name: &str, sys: &Path) -> Stack {
        let mut stack = Stack { all_paths_crypt: true, ..Stack::default() };
        self.mounts_of(name, sys, &mut stack.mounts);
        let holders = holders(sys);
        stack.n_holders = holders.len();
        if holders.is_empty() {
            stack.all_paths_crypt = false;
            return stack;
        }
        for holder in holders {
            let holder_sys = self.sys_block(&holder);
            let uuid = read_trimmed(&holder_sys.join("dm/uuid")).unwrap_or_default();
            let target = DmTarget::from_uuid(&uuid);
            let above = self.stack(&holder, &holder_sys);
            stack.mounts.extend(above.mounts);
            if target.is_crypt() {
                stack.crypt.get_or_insert(Crypt {
                    kernel_name: holder.clone(),
                    dm_name: read_trimmed(&holder_sys.join("dm/name")).unwrap_or_else(|| holder.clone()),
                    uuid,
                    target,
                });
            } else {
                if above.crypt.is_some() && stack.crypt.is_none() {
                    stack.crypt = above.crypt;
                }
                stack.all_paths_crypt &= above.all_paths_crypt;
            }
        }
        stack
    }

    fn mounts_of(&self, name: &str, sys: &Path, out: &mut Vec<String>) {
        if let Some(dev) = read_trimmed(&sys.join("dev")) {
            out.extend(self.mounts.get(&dev).into_iter().flatten().cloned());
        }
        if self.swaps.contains(name) {
            out.push("[SWAP]".to_owned());
        }
    }

    /// The kernel name of a device path from `proc/swaps` (`/dev/sda3`,
    /// `/dev/dm-1`, `/dev/mapper/NAME`).
    fn kernel_name(&self, device: &str) -> Option<String> {
        let rest = device.strip_prefix("/dev/")?;
        if let Some(mapper_name) = rest.strip_prefix("mapper/") {
            let entries = std::fs::read_dir(self.root.join("sys/block")).ok()?;
            return entries.filter_map(|e| e.ok()).find_map(|e| {
                let kernel = e.file_name().to_string_lossy().into_owned();
                (read_trimmed(&e.path().join("dm/name")).as_deref() == Some(mapper_name)).then_some(kernel)
            });
        }
        Some(rest.to_owned())
    }
}

/// One block device read as a volume, the way the collector reads each
/// partition: its content, LUKS header, stack and mounts. For devices the
/// inventory leaves out (loop devices) and for checking one device by hand.
pub fn probe_volume(root: &Path, name: &str) -> pb::Volume {
    let layer = BlockLayer::new(root);
    // A whole device is sys/block/NAME; a partition is sys/block/DISK/NAME.
    let disk = layer.sys_block(name);
    let (disk, sys) = if disk.exists() {
        (disk.clone(), disk)
    } else {
        let parent = std::fs::read_dir(root.join("sys/block"))
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.join(name).join("partition").exists());
        match parent {
            Some(parent) => (parent.clone(), parent.join(name)),
            None => (disk.clone(), disk),
        }
    };
    let removable = read_trimmed(&disk.join("removable")).as_deref() == Some("1");
    layer.volume(name, &sys, removable)
}

/// What is stacked above a volume.
#[derive(Debug, Default)]
struct Stack {
    /// Mount points of the volume and of everything above it.
    mounts: Vec<String>,
    /// The first dm-crypt target found above it.
    crypt: Option<Crypt>,
    /// Every path from the volume up passes through dm-crypt (false when nothing is above).
    all_paths_crypt: bool,
    /// How many devices sit directly above it.
    n_holders: usize,
}

#[derive(Debug, Clone)]
struct Crypt {
    kernel_name: String,
    dm_name: String,
    uuid: String,
    target: DmTarget,
}

fn holders(sys: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(sys.join("holders"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Size from a sysfs `size` file (512-byte sectors, whatever the device's sector size).
fn sectors(sys: &Path) -> u64 {
    read_trimmed(&sys.join("size")).and_then(|s| s.parse::<u64>().ok()).map_or(0, |n| n.saturating_mul(512))
}

/// The first [`encryption::PROBE_LEN`] bytes of a device node, or more when a
/// LUKS2 header says its metadata is larger.
fn read_head(node: &Path) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(node)?;
    let mut head = Vec::with_capacity(encryption::PROBE_LEN);
    file.take(encryption::PROBE_LEN as u64).read_to_end(&mut head)?;
    if let Some(len) = encryption::luks2_header_len(&head).filter(|&len| len > head.len() as u64) {
        let len = len.min(encryption::MAX_LUKS2_HEADER);
        head.clear();
        std::fs::File::open(node)?.take(len).read_to_end(&mut head)?;
    }
    Ok(head)
}

/// How the disk is attached, from its kernel name, its sysfs path, or udev.
fn transport(name: &str, sys: &Path, udev: &BTreeMap<String, String>) -> &'static str {
    if name.starts_with("nvme") {
        return "nvme";
    }
    if name.starts_with("mmcblk") {
        return "mmc";
    }
    if name.starts_with("vd") {
        return "virtio";
    }
    let link = std::fs::read_link(sys).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    if link.contains("/usb") {
        return "usb";
    }
    if link.contains("/ata") {
        return "sata";
    }
    if link.contains("/virtio") {
        return "virtio";
    }
    match udev.get("ID_BUS").map(String::as_str) {
        Some("usb") => "usb",
        Some("ata") => "sata",
        Some("scsi") => "scsi",
        _ if name.starts_with("sd") => "scsi",
        _ => "unknown",
    }
}

/// The first readable of `files`, then of the udev `keys`, else unknown.
fn first_of(files: &[PathBuf], udev: &BTreeMap<String, String>, keys: &[&str], what: &str) -> pb::Readable {
    files
        .iter()
        .find_map(|f| read_trimmed(f).filter(|v| !v.is_empty()))
        .or_else(|| keys.iter().find_map(|k| udev.get(*k).filter(|v| !v.is_empty()).map(|v| v.replace('_', " "))))
        .map_or_else(
            || pb::Readable::unknown(format!("absent (no {what} in sysfs or the udev database)")),
            pb::Readable::value,
        )
}

/// The disk's serial: sysfs (NVMe, MMC, some SCSI), the udev database
/// (SATA, USB), or SCSI VPD page 0x80.
fn serial(sys: &Path, udev: &BTreeMap<String, String>) -> pb::Readable {
    let from_vpd = || {
        // Qualifier, page code 0x80, big-endian length, then the serial.
        let page = std::fs::read(sys.join("device/vpd_pg80")).ok()?;
        let len = usize::from(u16::from_be_bytes([*page.get(2)?, *page.get(3)?]));
        let serial = String::from_utf8_lossy(page.get(4..(4 + len).min(page.len()))?)
            .trim_matches(|c: char| c == '\0' || c.is_whitespace())
            .to_owned();
        (!serial.is_empty()).then_some(serial)
    };
    read_trimmed(&sys.join("device/serial"))
        .filter(|s| !s.is_empty())
        .or_else(|| udev.get("ID_SERIAL_SHORT").filter(|s| !s.is_empty()).cloned())
        .or_else(from_vpd)
        .map_or_else(
            || pb::Readable::unknown("absent (no serial in sysfs, the udev database or VPD page 0x80)"),
            pb::Readable::value,
        )
}

/// `major:minor` → mount points, from `/proc/self/mountinfo`.
pub(crate) fn parse_mountinfo(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut mounts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for mount in crate::procfs::parse_mountinfo(text) {
        let (major, minor) = mount.dev;
        mounts.entry(format!("{major}:{minor}")).or_default().push(mount.mount_point);
    }
    mounts
}

/// Device paths of active swap partitions from `/proc/swaps` (swap files are left out).
pub(crate) fn parse_swaps(text: &str) -> Vec<String> {
    crate::procfs::parse_swaps(text).into_iter().filter(|swap| swap.partition).map(|swap| swap.path).collect()
}

#[cfg(test)]
mod tests;
