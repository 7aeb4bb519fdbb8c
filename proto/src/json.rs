//! The JSON form of wire types that people read: the same shape whether it
//! comes from `custodian-agent inventory --json` or `custodianctl device show
//! --json`. A [`v1::Readable`] that was read is its value; one that was not
//! is `{"unknown": REASON}`.

use serde_json::{Value, json};

use crate::v1;

/// A readable field as JSON.
pub fn readable(r: Option<&v1::Readable>) -> Value {
    match r.and_then(|r| r.state.as_ref()) {
        Some(v1::readable::State::Value(v)) => json!(v),
        Some(v1::readable::State::Unknown(why)) => json!({ "unknown": why }),
        None => json!({ "unknown": "not reported" }),
    }
}

/// A readable field as text: the value, or `unknown (REASON)`.
pub fn readable_text(r: Option<&v1::Readable>) -> String {
    match r.and_then(|r| r.state.as_ref()) {
        Some(v1::readable::State::Value(v)) => v.clone(),
        Some(v1::readable::State::Unknown(why)) => format!("unknown ({why})"),
        None => "unknown (not reported)".to_owned(),
    }
}

/// An inventory as JSON.
pub fn inventory(inventory: &v1::Inventory) -> Value {
    let os = inventory.os.clone().unwrap_or_default();
    let cpu = inventory.cpu.clone().unwrap_or_default();
    let system = inventory.system.clone().unwrap_or_default();
    let firmware = inventory.firmware.clone().unwrap_or_default();
    let memory = inventory.memory.clone().unwrap_or_default();
    let agent = inventory.agent.clone().unwrap_or_default();
    let summary = inventory.encryption.clone().unwrap_or_default();
    json!({
        "hostname": inventory.hostname,
        "os": {
            "name": readable(os.name.as_ref()),
            "version": readable(os.version.as_ref()),
            "kernel": readable(os.kernel.as_ref()),
        },
        "cpu": { "model": readable(cpu.model.as_ref()), "cores": cpu.cores, "threads": cpu.threads },
        "memory": {
            "total_bytes": memory.total_bytes,
            "modules": memory.modules.iter().map(|m| json!({
                "locator": m.locator,
                "size_bytes": m.size_bytes,
                "kind": readable(m.kind.as_ref()),
                "part_number": readable(m.part_number.as_ref()),
                "serial": readable(m.serial.as_ref()),
            })).collect::<Vec<_>>(),
        },
        "system": {
            "vendor": readable(system.vendor.as_ref()),
            "model": readable(system.model.as_ref()),
            "serial": readable(system.serial.as_ref()),
            "uuid": readable(system.uuid.as_ref()),
            "chassis_type": readable(system.chassis_type.as_ref()),
        },
        "firmware": {
            "bios_vendor": readable(firmware.bios_vendor.as_ref()),
            "bios_version": readable(firmware.bios_version.as_ref()),
            "bios_date": readable(firmware.bios_date.as_ref()),
            "tpm_version": readable(firmware.tpm_version.as_ref()),
            "secure_boot": readable(firmware.secure_boot.as_ref()),
        },
        "storage": inventory.storage.iter().map(storage_device).collect::<Vec<_>>(),
        "network": inventory.network.iter().map(|n| json!({
            "name": n.name, "mac": n.mac, "addresses": n.addresses, "up": n.up,
        })).collect::<Vec<_>>(),
        "encryption": {
            "compliant": summary.compliant,
            "unencrypted_volumes": summary.unencrypted_volumes,
        },
        "agent": { "version": agent.version, "executable_sha256": readable(agent.executable_sha256.as_ref()) },
        "boot_time_ms": inventory.boot_time_ms,
    })
}

/// A storage device and its volumes as JSON.
pub fn storage_device(disk: &v1::StorageDevice) -> Value {
    json!({
        "name": disk.name,
        "model": readable(disk.model.as_ref()),
        "serial": readable(disk.serial.as_ref()),
        "wwn": readable(disk.wwn.as_ref()),
        "size_bytes": disk.size_bytes,
        "rotational": disk.rotational,
        "transport": disk.transport,
        "removable": disk.removable,
        "volumes": disk.volumes.iter().map(|v| {
            let e = v.encryption.clone().unwrap_or_default();
            json!({
                "name": v.name,
                "size_bytes": v.size_bytes,
                "filesystem": readable(v.filesystem.as_ref()),
                "mount_points": v.mount_points,
                "holds_data": v.holds_data,
                "encryption": {
                    "state": encryption_state_name(e.state()),
                    "scheme": encryption_scheme_name(e.scheme()),
                    "cipher": e.cipher,
                    "key_size_bits": e.key_size_bits,
                    "determined_by": e.determined_by,
                },
            })
        }).collect::<Vec<_>>(),
    })
}

/// `encrypted`, `not_encrypted`, `unknown`.
pub fn encryption_state_name(state: v1::EncryptionState) -> &'static str {
    match state {
        v1::EncryptionState::Encrypted => "encrypted",
        v1::EncryptionState::NotEncrypted => "not_encrypted",
        v1::EncryptionState::Unknown | v1::EncryptionState::Unspecified => "unknown",
    }
}

/// A wipe method by the name operators give it: `clear-zero`, `clear-random`,
/// `clear-multipass`, `purge-crypto-erase`, `purge-sanitize`; `unknown` for
/// a value this build does not know.
pub fn wipe_method_name(method: i32) -> &'static str {
    match v1::WipeMethod::try_from(method) {
        Ok(v1::WipeMethod::ClearZero) => "clear-zero",
        Ok(v1::WipeMethod::ClearRandom) => "clear-random",
        Ok(v1::WipeMethod::ClearMultipass) => "clear-multipass",
        Ok(v1::WipeMethod::PurgeCryptoErase) => "purge-crypto-erase",
        Ok(v1::WipeMethod::PurgeSanitize) => "purge-sanitize",
        Ok(v1::WipeMethod::Unspecified) | Err(_) => "unknown",
    }
}

/// `luks2`, `bitlocker`, `none`, …
pub fn encryption_scheme_name(scheme: v1::EncryptionScheme) -> &'static str {
    match scheme {
        v1::EncryptionScheme::None => "none",
        v1::EncryptionScheme::Luks1 => "luks1",
        v1::EncryptionScheme::Luks2 => "luks2",
        v1::EncryptionScheme::DmCryptPlain => "dm_crypt_plain",
        v1::EncryptionScheme::Bitlocker => "bitlocker",
        v1::EncryptionScheme::Filevault => "filevault",
        v1::EncryptionScheme::Unknown | v1::EncryptionScheme::Unspecified => "unknown",
    }
}

/// One volume's encryption as a short phrase: `encrypted (LUKS2 aes-xts-plain64, 512-bit)`.
pub fn encryption_text(encryption: Option<&v1::Encryption>) -> String {
    let Some(e) = encryption else {
        return "unknown (not reported)".to_owned();
    };
    let mut details = vec![encryption_scheme_name(e.scheme()).to_uppercase().replace("_", "-")];
    if !e.cipher.is_empty() {
        details.push(e.cipher.clone());
    }
    if e.key_size_bits > 0 {
        details.push(format!("{}-bit", e.key_size_bits));
    }
    match e.state() {
        v1::EncryptionState::Encrypted => format!("encrypted ({})", details.join(" ")),
        v1::EncryptionState::NotEncrypted => "NOT ENCRYPTED".to_owned(),
        _ => format!("UNKNOWN ({})", e.determined_by),
    }
}

/// How a non-compliant machine's volumes are put to people, by the agent's
/// summary and the server's verdict alike. The list holds volumes known to
/// be unencrypted and volumes whose encryption could not be read (`UNKNOWN`
/// in the inventory); an auditor must not take the second for the first,
/// nor the other way round.
pub fn describe_noncompliant(volumes: &[String]) -> String {
    format!("not encrypted, or not known to be: {}", volumes.join(", "))
}

/// The BIOS as `vendor version (date)`. When none of the three could be
/// read for the same reason, the reason is given once rather than three
/// times over.
fn bios_text(firmware: &v1::Firmware) -> String {
    let [vendor, version, date] = [&firmware.bios_vendor, &firmware.bios_version, &firmware.bios_date]
        .map(|r| (crate::readable_value(r.as_ref()).is_some(), readable_text(r.as_ref())));
    if !vendor.0 && !version.0 && !date.0 && vendor.1 == version.1 && version.1 == date.1 {
        return vendor.1;
    }
    format!("{} {} ({})", vendor.1, version.1, date.1)
}

/// A volume's filesystem and encryption: `ext4, encrypted (LUKS2 …)`. When
/// neither could be read and the encryption's reason begins with the
/// filesystem's (the same unreadable device), the reason is given once.
fn filesystem_and_encryption_text(volume: &v1::Volume) -> String {
    let filesystem = volume.filesystem.as_ref().and_then(|r| r.state.as_ref());
    let encryption = volume.encryption.as_ref();
    if let (Some(v1::readable::State::Unknown(why)), Some(e)) = (filesystem, encryption)
        && e.state() == v1::EncryptionState::Unknown
        && !why.is_empty()
        && e.determined_by.starts_with(why.as_str())
    {
        return format!("filesystem and encryption UNKNOWN ({})", e.determined_by);
    }
    format!("{}, {}", readable_text(volume.filesystem.as_ref()), encryption_text(encryption))
}

/// An inventory as indented `name  value` lines for a terminal.
pub fn inventory_text(inventory: &v1::Inventory, indent: &str) -> String {
    let os = inventory.os.clone().unwrap_or_default();
    let cpu = inventory.cpu.clone().unwrap_or_default();
    let system = inventory.system.clone().unwrap_or_default();
    let firmware = inventory.firmware.clone().unwrap_or_default();
    let rows = [
        ("hostname", inventory.hostname.clone()),
        ("os", format!("{} {}", readable_text(os.name.as_ref()), readable_text(os.version.as_ref()))),
        ("kernel", readable_text(os.kernel.as_ref())),
        ("cpu", format!("{} ({} cores, {} threads)", readable_text(cpu.model.as_ref()), cpu.cores, cpu.threads)),
        ("memory", format_bytes(inventory.memory.as_ref().map_or(0, |m| m.total_bytes))),
        ("vendor", readable_text(system.vendor.as_ref())),
        ("model", readable_text(system.model.as_ref())),
        ("serial", readable_text(system.serial.as_ref())),
        ("uuid", readable_text(system.uuid.as_ref())),
        ("chassis", readable_text(system.chassis_type.as_ref())),
        ("bios", bios_text(&firmware)),
        ("tpm", readable_text(firmware.tpm_version.as_ref())),
        ("secure boot", readable_text(firmware.secure_boot.as_ref())),
    ];
    let mut out: String = rows.iter().map(|(name, value)| format!("{indent}{name:<14}{value}\n")).collect();
    for m in inventory.memory.iter().flat_map(|m| &m.modules) {
        out.push_str(&format!(
            "{indent}{:<14}{} {} {} (part {}, serial {})\n",
            "memory module",
            m.locator,
            format_bytes(m.size_bytes),
            readable_text(m.kind.as_ref()),
            readable_text(m.part_number.as_ref()),
            readable_text(m.serial.as_ref())
        ));
    }
    for disk in &inventory.storage {
        out.push_str(&format!(
            "{indent}{:<14}{} {} model {} serial {} ({}, {}{})\n",
            "disk",
            disk.name,
            format_bytes(disk.size_bytes),
            readable_text(disk.model.as_ref()),
            readable_text(disk.serial.as_ref()),
            disk.transport,
            if disk.rotational { "rotational" } else { "solid state" },
            if disk.removable { ", removable" } else { "" },
        ));
        for v in &disk.volumes {
            let mounts =
                if v.mount_points.is_empty() { String::new() } else { format!(" on {}", v.mount_points.join(", ")) };
            out.push_str(&format!(
                "{indent}{:<14}  {} {}{mounts}: {}{}\n",
                "",
                v.name,
                format_bytes(v.size_bytes),
                filesystem_and_encryption_text(v),
                if v.holds_data { "" } else { " [no data]" },
            ));
        }
    }
    for n in &inventory.network {
        let line = format!(
            "{} {} {} {}",
            n.name,
            if n.mac.is_empty() { "-" } else { &n.mac },
            if n.up { "up" } else { "down" },
            n.addresses.join(" ")
        );
        out.push_str(&format!("{indent}{:<14}{}\n", "network", line.trim_end()));
    }
    if let Some(agent) = &inventory.agent {
        out.push_str(&format!(
            "{indent}{:<14}{} (sha256 {})\n",
            "agent",
            agent.version,
            readable_text(agent.executable_sha256.as_ref())
        ));
    }
    if let Some(summary) = &inventory.encryption {
        let verdict = if summary.compliant {
            "compliant (every fixed data volume encrypted)".to_owned()
        } else if summary.unencrypted_volumes.is_empty() {
            "NOT COMPLIANT (no fixed data volumes found)".to_owned()
        } else {
            format!("NOT COMPLIANT ({})", describe_noncompliant(&summary.unencrypted_volumes))
        };
        out.push_str(&format!("{indent}{:<14}{verdict}\n", "encryption"));
    }
    out
}

/// Bytes in binary units with one decimal (`15.6 GiB`).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests;
