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
