//! BitLocker status from `manage-bde -status`: a parser of its (English)
//! output, and on Windows the collector that runs it.

use custodian_proto::v1 as pb;

/// One volume as `manage-bde -status` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BitLockerVolume {
    /// Drive letter with colon (`C:`) or volume GUID path.
    pub mount: String,
    /// The label in brackets after the letter (`OS`), possibly empty.
    pub label: String,
    /// `OS Volume`, `Data Volume`, or `Removable Volume`… (the bracketed second line).
    pub kind: String,
    /// Size as printed (`475.87 GB`).
    pub size: String,
    /// `Fully Encrypted`, `Fully Decrypted`, `Encryption in Progress`, `Used Space Only Encrypted`…
    pub conversion_status: String,
    /// `100.0%`.
    pub percentage_encrypted: String,
    /// `XTS-AES 128`, `AES 256`, `None`…
    pub encryption_method: String,
    /// `Protection On`, `Protection Off`…
    pub protection_status: String,
    /// `Locked` or `Unlocked`.
    pub lock_status: String,
}

/// Parses `manage-bde -status` output into its volumes, in order.
pub fn parse_manage_bde_status(text: &str) -> Vec<BitLockerVolume> {
    let mut volumes: Vec<BitLockerVolume> = Vec::new();
    let mut expect_kind = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(rest) = line.strip_prefix("Volume ") {
            let (mount, label) = match rest.split_once(" [") {
                Some((mount, label)) => (mount.trim(), label.trim_end_matches(']').trim()),
                None => (rest.trim(), ""),
            };
            volumes.push(BitLockerVolume { mount: mount.to_owned(), label: label.to_owned(), ..Default::default() });
            expect_kind = true;
            continue;
        }
        let Some(volume) = volumes.last_mut() else { continue };
        if expect_kind && trimmed.starts_with('[') {
            volume.kind = trimmed.trim_matches(|c| c == '[' || c == ']').to_owned();
            expect_kind = false;
            continue;
        }
        let Some((key, value)) = trimmed.split_once(':') else { continue };
        let value = value.trim().to_owned();
        match key.trim() {
            "Size" => volume.size = value,
            "Conversion Status" => volume.conversion_status = value,
            "Percentage Encrypted" => volume.percentage_encrypted = value,
            "Encryption Method" => volume.encryption_method = value,
            "Protection Status" => volume.protection_status = value,
            "Lock Status" => volume.lock_status = value,
            _ => {}
        }
    }
    volumes
}

/// Cipher name and key size for a BitLocker encryption method.
fn cipher(method: &str) -> (String, u32) {
    let lower = method.to_lowercase();
    let key_size = lower.split_whitespace().find_map(|w| w.parse::<u32>().ok()).unwrap_or(0);
    let cipher = if lower.starts_with("xts-aes") {
        "aes-xts"
    } else if lower.contains("diffuser") {
        "aes-cbc-elephant"
    } else if lower.starts_with("aes") {
        "aes-cbc"
    } else if lower.starts_with("hardware") {
        "hardware"
    } else {
        ""
    };
    (cipher.to_owned(), key_size)
}

/// Bytes from a size as printed (`475.87 GB`, decimal units as manage-bde uses).
fn size_bytes(size: &str) -> u64 {
    let mut parts = size.split_whitespace();
    let (Some(number), unit) = (parts.next().and_then(|n| n.replace(',', "").parse::<f64>().ok()), parts.next()) else {
        return 0;
    };
    let scale = match unit.unwrap_or("B").to_uppercase().as_str() {
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => 1.0,
    };
    (number * scale) as u64
}

/// A volume's encryption: encrypted only when fully (or used-space)
/// encrypted with protection on; suspended protection leaves the key in the
/// clear, so it does not count.
pub fn to_volume(volume: &BitLockerVolume) -> pb::Volume {
    use pb::{EncryptionScheme as Scheme, EncryptionState as State};
    let converted = matches!(volume.conversion_status.as_str(), "Fully Encrypted" | "Used Space Only Encrypted");
    let protected = volume.protection_status.starts_with("Protection On");
    let (cipher, key_size_bits) = cipher(&volume.encryption_method);
    let how = format!(
        "manage-bde -status: {}, {}, {} encrypted, method {}",
        volume.conversion_status, volume.protection_status, volume.percentage_encrypted, volume.encryption_method
    );
    let (state, scheme) = match (converted, protected, volume.conversion_status.as_str()) {
        (true, true, _) => (State::Encrypted, Scheme::Bitlocker),
        (_, _, "Fully Decrypted") => (State::NotEncrypted, Scheme::None),
        (_, _, "") => (State::Unknown, Scheme::Unknown),
        _ => (State::NotEncrypted, Scheme::Bitlocker),
    };
    let removable = volume.kind.to_lowercase().contains("removable");
    pb::Volume {
        name: volume.mount.clone(),
        size_bytes: size_bytes(&volume.size),
        filesystem: Some(pb::Readable::unknown("absent (manage-bde does not report filesystems)")),
        mount_points: vec![volume.mount.clone()],
        holds_data: !removable,
        encryption: Some(pb::Encryption {
            state: state.into(),
            scheme: scheme.into(),
            cipher: if state == State::Encrypted { cipher } else { String::new() },
            key_size_bits: if state == State::Encrypted { key_size_bits } else { 0 },
            determined_by: how,
        }),
    }
}

/// One `Win32_EncryptableVolume` instance, as printed by
/// `Get-CimInstance -Namespace root/cimv2/security/microsoftvolumeencryption
/// -ClassName Win32_EncryptableVolume | Format-List DriveLetter,
/// ProtectionStatus, ConversionStatus, EncryptionMethod, VolumeType`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptableVolume {
    /// `C:` (empty for volumes without a letter).
    pub drive_letter: String,
    /// 0 off, 1 on, 2 unknown.
    pub protection_status: Option<u32>,
    /// 0 fully decrypted, 1 fully encrypted, 2 encrypting, 3 decrypting, 4 encryption paused, 5 decryption paused.
    pub conversion_status: Option<u32>,
    /// 0 none, 1 AES-128 with diffuser, 2 AES-256 with diffuser, 3 AES-128, 4 AES-256,
    /// 5 hardware, 6 XTS-AES-128, 7 XTS-AES-256.
    pub encryption_method: Option<u32>,
    /// 0 OS, 1 fixed data, 2 portable.
    pub volume_type: Option<u32>,
}

/// Parses `Format-List` output of `Win32_EncryptableVolume` instances
/// (blank-line separated `Name : value` blocks).
pub fn parse_encryptable_volumes(text: &str) -> Vec<EncryptableVolume> {
    let mut volumes = Vec::new();
    let mut current: Option<EncryptableVolume> = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':').filter(|(k, _)| !k.trim().is_empty()) else {
            if line.trim().is_empty() {
                volumes.extend(current.take());
            }
            continue;
        };
        let volume = current.get_or_insert_with(EncryptableVolume::default);
        let value = value.trim();
        let number = value.parse::<u32>().ok();
        match key.trim() {
            "DriveLetter" => volume.drive_letter = value.to_owned(),
            "ProtectionStatus" => volume.protection_status = number,
            "ConversionStatus" => volume.conversion_status = number,
            "EncryptionMethod" => volume.encryption_method = number,
            "VolumeType" => volume.volume_type = number,
            _ => {}
        }
    }
    volumes.extend(current);
    volumes
}

/// The same volume in `manage-bde -status` words, so both sources share [`to_volume`].
pub fn encryptable_to_bitlocker(volume: &EncryptableVolume) -> BitLockerVolume {
    let conversion = match volume.conversion_status {
        Some(0) => "Fully Decrypted",
        Some(1) => "Fully Encrypted",
        Some(2) => "Encryption in Progress",
        Some(3) => "Decryption in Progress",
        Some(4) => "Encryption Paused",
        Some(5) => "Decryption Paused",
        _ => "",
    };
    let method = match volume.encryption_method {
        Some(0) => "None",
        Some(1) => "AES 128 with Diffuser",
        Some(2) => "AES 256 with Diffuser",
        Some(3) => "AES 128",
        Some(4) => "AES 256",
        Some(5) => "Hardware Encryption",
        Some(6) => "XTS-AES 128",
        Some(7) => "XTS-AES 256",
        _ => "Unknown",
    };
    let protection = match volume.protection_status {
        Some(1) => "Protection On",
        Some(0) => "Protection Off",
        _ => "Protection Unknown",
    };
    let kind = match volume.volume_type {
        Some(0) => "OS Volume",
        Some(2) => "Removable Volume",
        _ => "Data Volume",
    };
    BitLockerVolume {
        mount: volume.drive_letter.clone(),
        kind: kind.to_owned(),
        conversion_status: conversion.to_owned(),
        encryption_method: method.to_owned(),
        protection_status: protection.to_owned(),
        percentage_encrypted: "-".to_owned(),
        ..Default::default()
    }
}

/// Runs `manage-bde -status` and reports its volumes.
#[cfg(target_os = "windows")]
pub fn collect_storage() -> Vec<pb::StorageDevice> {
    let output = match std::process::Command::new("manage-bde").arg("-status").output() {
        Ok(output) if output.status.success() => output,
        _ => return Vec::new(),
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let volumes = parse_manage_bde_status(&text).iter().map(to_volume).collect();
    vec![super::tool_volumes_device("manage-bde", volumes)]
}

#[cfg(test)]
mod tests;
