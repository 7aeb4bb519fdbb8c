//! FileVault status from `fdesetup status` and `diskutil apfs list`: parsers
//! of their output, and on macOS the collector that runs them.

use custodian_proto::v1 as pb;

/// What `fdesetup status` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileVaultStatus {
    /// FileVault is on.
    On,
    /// FileVault is off.
    Off,
    /// Encryption is under way (percent done).
    Encrypting(String),
    /// Decryption is under way (percent done).
    Decrypting(String),
    /// The output was not understood.
    Unrecognised(String),
}

/// Parses `fdesetup status` output.
pub fn parse_fdesetup_status(text: &str) -> FileVaultStatus {
    let percent = |line: &str| line.rsplit('=').next().unwrap_or_default().trim().to_owned();
    let mut status = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with("Encryption in progress") {
            return FileVaultStatus::Encrypting(percent(line));
        }
        if line.starts_with("Decryption in progress") {
            return FileVaultStatus::Decrypting(percent(line));
        }
        if line.starts_with("FileVault is On") {
            status = Some(FileVaultStatus::On);
        } else if line.starts_with("FileVault is Off") {
            status = Some(FileVaultStatus::Off);
        }
    }
    status.unwrap_or_else(|| FileVaultStatus::Unrecognised(text.trim().to_owned()))
}

/// One APFS volume from `diskutil apfs list`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApfsVolume {
    /// The volume's disk (`disk3s5`).
    pub disk: String,
    /// Its role (`Data`, `System`, `Preboot`…), empty when it has none.
    pub role: String,
    /// Its name (`Macintosh HD - Data`).
    pub name: String,
    /// Where it is mounted, empty when not mounted.
    pub mount_point: String,
    /// Bytes it uses.
    pub consumed_bytes: u64,
    /// The `FileVault:` line (`Yes (Unlocked)`, `No`).
    pub filevault: String,
    /// The physical store (`disk0s2`) of its container.
    pub physical_store: String,
}

/// Parses `diskutil apfs list` output into its volumes, in order.
pub fn parse_diskutil_apfs_list(text: &str) -> Vec<ApfsVolume> {
    let mut volumes: Vec<ApfsVolume> = Vec::new();
    let mut store = String::new();
    let mut in_volume = false;
    for line in text.lines() {
        let content = line.trim_start_matches([' ', '|']).trim();
        if content.starts_with("+-- Container") {
            store.clear();
            in_volume = false;
        } else if content.starts_with("+-> Volume") {
            volumes.push(ApfsVolume { physical_store: store.clone(), ..Default::default() });
            in_volume = true;
        } else if content.starts_with("+-<") {
            in_volume = false;
        }
        let Some((key, value)) = content.split_once(':') else { continue };
        let value = value.trim();
        match key.trim() {
            "APFS Physical Store Disk" => {
                store = value.to_owned();
                for volume in volumes.iter_mut().filter(|v| v.physical_store.is_empty()) {
                    volume.physical_store = store.clone();
                }
            }
            "APFS Volume Disk (Role)" if in_volume => {
                if let Some(volume) = volumes.last_mut() {
                    let (disk, role) = value.split_once(' ').unwrap_or((value, ""));
                    volume.disk = disk.to_owned();
                    volume.role = role.trim().trim_matches(|c| c == '(' || c == ')').replace("No specific role", "");
                }
            }
            "Name" if in_volume => {
                if let Some(volume) = volumes.last_mut() {
                    volume.name =
                        value.trim_end_matches(" (Case-insensitive)").trim_end_matches(" (Case-sensitive)").to_owned();
                }
            }
            "Mount Point" if in_volume => {
                if let Some(volume) = volumes.last_mut() {
                    volume.mount_point = if value == "Not Mounted" { String::new() } else { value.to_owned() };
                }
            }
            "Capacity Consumed" if in_volume => {
                if let Some(volume) = volumes.last_mut() {
                    volume.consumed_bytes = value.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
                }
            }
            "FileVault" if in_volume => {
                if let Some(volume) = volumes.last_mut() {
                    volume.filevault = value.to_owned();
                }
            }
            _ => {}
        }
    }
    volumes
}

/// Roles of APFS volumes that hold no user data (the sealed system and its helpers).
const NON_DATA_ROLES: &[&str] = &["System", "Preboot", "Recovery", "VM", "Update", "xART", "Hardware", "Baseband"];

/// A volume's encryption from its `FileVault:` line, and whether it holds data.
pub fn to_volume(volume: &ApfsVolume) -> pb::Volume {
    use pb::{EncryptionScheme as Scheme, EncryptionState as State};
    let (state, scheme) = if volume.filevault.starts_with("Yes") {
        (State::Encrypted, Scheme::Filevault)
    } else if volume.filevault.starts_with("No") {
        (State::NotEncrypted, Scheme::None)
    } else {
        (State::Unknown, Scheme::Unknown)
    };
    pb::Volume {
        name: volume.disk.clone(),
        size_bytes: volume.consumed_bytes,
        filesystem: Some(pb::Readable::value("apfs")),
        mount_points: if volume.mount_point.is_empty() { vec![] } else { vec![volume.mount_point.clone()] },
        holds_data: !NON_DATA_ROLES.contains(&volume.role.as_str()),
        encryption: Some(pb::Encryption {
            state: state.into(),
            scheme: scheme.into(),
            cipher: String::new(),
            key_size_bits: 0,
            determined_by: format!(
                "diskutil apfs list: FileVault {}",
                if volume.filevault.is_empty() { "not listed" } else { &volume.filevault }
            ),
        }),
    }
}

/// Runs `diskutil apfs list` and reports its volumes.
#[cfg(target_os = "macos")]
pub fn collect_storage() -> Vec<pb::StorageDevice> {
    let output = match std::process::Command::new("diskutil").args(["apfs", "list"]).output() {
        Ok(output) if output.status.success() => output,
        _ => return Vec::new(),
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let volumes = parse_diskutil_apfs_list(&text).iter().map(to_volume).collect();
    vec![super::tool_volumes_device("diskutil", volumes)]
}

#[cfg(test)]
mod tests;
