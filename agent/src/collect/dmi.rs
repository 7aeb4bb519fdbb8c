//! System identity, firmware and memory modules from DMI/SMBIOS as the
//! kernel exposes it: `sys/class/dmi/id/*` for the system and BIOS,
//! `sys/firmware/dmi/entries/17-*/raw` for memory devices (SMBIOS type 17),
//! `sys/class/tpm` for the TPM and the `SecureBoot` EFI variable.

use std::path::Path;

use custodian_proto::v1 as pb;

use super::{io_reason, readable_file};

/// The `SecureBoot` EFI variable (global variable GUID).
const SECURE_BOOT_VAR: &str = "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// System vendor, model, serial, UUID and chassis type.
pub(crate) fn system(root: &Path) -> pb::SystemInfo {
    let id = root.join("sys/class/dmi/id");
    let chassis_type = match std::fs::read_to_string(id.join("chassis_type")) {
        Ok(code) => match code.trim().parse::<u8>().ok().and_then(chassis_name) {
            Some(name) => pb::Readable::value(name),
            None => pb::Readable::unknown(format!("absent (unlisted SMBIOS chassis type {:?})", code.trim())),
        },
        Err(e) => pb::Readable::unknown(io_reason(&e)),
    };
    pb::SystemInfo {
        vendor: Some(readable_file(&id.join("sys_vendor"))),
        model: Some(readable_file(&id.join("product_name"))),
        serial: Some(readable_file(&id.join("product_serial"))),
        uuid: Some(readable_file(&id.join("product_uuid"))),
        chassis_type: Some(chassis_type),
    }
}

/// SMBIOS 3.x chassis types (table 17), by code.
fn chassis_name(code: u8) -> Option<&'static str> {
    Some(match code {
        1 => "other",
        2 => "unknown",
        3 => "desktop",
        4 => "low-profile-desktop",
        5 => "pizza-box",
        6 => "mini-tower",
        7 => "tower",
        8 => "portable",
        9 => "laptop",
        10 => "notebook",
        11 => "hand-held",
        12 => "docking-station",
        13 => "all-in-one",
        14 => "sub-notebook",
        15 => "space-saving",
        16 => "lunch-box",
        17 => "main-server-chassis",
        18 => "expansion-chassis",
        19 => "sub-chassis",
        20 => "bus-expansion-chassis",
        21 => "peripheral-chassis",
        22 => "raid-chassis",
        23 => "rack-mount-chassis",
        24 => "sealed-case-pc",
        25 => "multi-system-chassis",
        26 => "compact-pci",
        27 => "advanced-tca",
        28 => "blade",
        29 => "blade-enclosure",
        30 => "tablet",
        31 => "convertible",
        32 => "detachable",
        33 => "iot-gateway",
        34 => "embedded-pc",
        35 => "mini-pc",
        36 => "stick-pc",
        _ => return None,
    })
}

/// BIOS, TPM and Secure Boot.
pub(crate) fn firmware(root: &Path) -> pb::Firmware {
    let id = root.join("sys/class/dmi/id");
    pb::Firmware {
        bios_vendor: Some(readable_file(&id.join("bios_vendor"))),
        bios_version: Some(readable_file(&id.join("bios_version"))),
        bios_date: Some(readable_file(&id.join("bios_date"))),
        tpm_version: Some(tpm_version(root)),
        secure_boot: Some(secure_boot(root)),
    }
}

/// `2.0` or `1.2` from `sys/class/tpm/tpm0`, or unknown with the reason.
fn tpm_version(root: &Path) -> pb::Readable {
    let tpm = root.join("sys/class/tpm/tpm0");
    if !tpm.exists() {
        return pb::Readable::unknown("absent (no TPM in sys/class/tpm)");
    }
    if let Ok(major) = std::fs::read_to_string(tpm.join("tpm_version_major")) {
        return match major.trim() {
            "2" => pb::Readable::value("2.0"),
            "1" => pb::Readable::value("1.2"),
            other => pb::Readable::value(other),
        };
    }
    // Kernels before 5.6 have no tpm_version_major; TPM 1.2 drivers list caps.
    match std::fs::read_to_string(tpm.join("device/caps")) {
        Ok(caps) => match caps.lines().find_map(|l| l.trim().strip_prefix("TCG version:")) {
            Some(version) => pb::Readable::value(version.trim()),
            None => pb::Readable::unknown("absent (TPM present, no version in caps)"),
        },
        Err(_) if tpm.join("device/description").exists() || tpm.join("dev").exists() => {
            // Only TPM 2.0 devices lack caps on these kernels.
            pb::Readable::value("2.0")
        }
        Err(e) => pb::Readable::unknown(format!("TPM present, version {}", io_reason(&e))),
    }
}

/// `enabled` or `disabled` from the `SecureBoot` EFI variable.
fn secure_boot(root: &Path) -> pb::Readable {
    if !root.join("sys/firmware/efi").exists() {
        return pb::Readable::unknown("absent (booted by legacy BIOS, no EFI)");
    }
    match std::fs::read(root.join(SECURE_BOOT_VAR)) {
        // Four bytes of attributes, then the one-byte value.
        Ok(bytes) => match bytes.get(4) {
            Some(1) => pb::Readable::value("enabled"),
            Some(0) => pb::Readable::value("disabled"),
            _ => pb::Readable::unknown(format!("unreadable: SecureBoot variable has {} bytes", bytes.len())),
        },
        Err(e) => pb::Readable::unknown(format!("{} (SecureBoot EFI variable)", io_reason(&e))),
    }
}

/// Installed memory modules from SMBIOS type 17 entries, in slot order.
pub(crate) fn memory_modules(root: &Path) -> Vec<pb::MemoryModule> {
    let Ok(entries) = std::fs::read_dir(root.join("sys/firmware/dmi/entries")) else {
        return Vec::new();
    };
    let mut dirs: Vec<(u32, std::path::PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let index = name.strip_prefix("17-")?.parse().ok()?;
            Some((index, e.path()))
        })
        .collect();
    dirs.sort();
    dirs.iter()
        .filter_map(|(_, dir)| std::fs::read(dir.join("raw")).ok())
        .filter_map(|raw| parse_memory_device(&raw))
        .collect()
}

/// One SMBIOS type 17 (memory device) structure; `None` for an empty slot or
/// a malformed structure.
pub(crate) fn parse_memory_device(raw: &[u8]) -> Option<pb::MemoryModule> {
    if *raw.first()? != 17 {
        return None;
    }
    let len = usize::from(*raw.get(1)?);
    let formatted = raw.get(..len)?;
    let strings: Vec<&[u8]> = raw[len..].split(|&b| b == 0).take_while(|s| !s.is_empty()).collect();
    let string = |offset: usize| -> pb::Readable {
        match formatted.get(offset).copied() {
            None => pb::Readable::unknown("absent (older SMBIOS structure)"),
            Some(0) => pb::Readable::unknown("absent (not given by the firmware)"),
            Some(index) => match strings.get(usize::from(index) - 1) {
                Some(s) => {
                    let value = String::from_utf8_lossy(s).trim().to_owned();
                    let lower = value.to_lowercase();
                    if value.is_empty() || lower == "not specified" || lower == "unknown" || lower.starts_with("0000") {
                        pb::Readable::unknown(format!("absent (firmware placeholder {value:?})"))
                    } else {
                        pb::Readable::value(value)
                    }
                }
                None => pb::Readable::unknown("absent (string index out of range)"),
            },
        }
    };
    let word = |offset: usize| formatted.get(offset..offset + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let size = word(0x0c)?;
    let size_bytes: u64 = match size {
        0 | 0xffff => return None, // No module installed, or size unknown.
        0x7fff => {
            let mib = formatted.get(0x1c..0x20).map(|b| u32::from_le_bytes(b.try_into().expect("slice is 4 bytes")))?;
            u64::from(mib & 0x7fff_ffff) << 20
        }
        s if s & 0x8000 != 0 => u64::from(s & 0x7fff) << 10,
        s => u64::from(s) << 20,
    };
    let locator = match string(0x10).as_value() {
        Some(value) => value.to_owned(),
        None => String::new(),
    };
    let kind = match formatted.get(0x12).copied().and_then(memory_type_name) {
        Some(name) => pb::Readable::value(name),
        None => pb::Readable::unknown("absent (memory type not given)"),
    };
    Some(pb::MemoryModule {
        locator,
        size_bytes,
        kind: Some(kind),
        part_number: Some(string(0x1a)),
        serial: Some(string(0x18)),
    })
}

/// SMBIOS memory types (table 76) that workstations carry.
fn memory_type_name(code: u8) -> Option<&'static str> {
    Some(match code {
        0x12 => "DDR",
        0x13 => "DDR2",
        0x18 => "DDR3",
        0x1a => "DDR4",
        0x1b => "LPDDR",
        0x1c => "LPDDR2",
        0x1d => "LPDDR3",
        0x1e => "LPDDR4",
        0x22 => "DDR5",
        0x23 => "LPDDR5",
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
