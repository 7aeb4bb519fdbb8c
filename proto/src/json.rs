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
    json!({
        "hostname": inventory.hostname,
        "os": {
            "name": readable(os.name.as_ref()),
            "version": readable(os.version.as_ref()),
            "kernel": readable(os.kernel.as_ref()),
        },
        "cpu": { "model": readable(cpu.model.as_ref()), "cores": cpu.cores, "threads": cpu.threads },
        "memory": { "total_bytes": inventory.memory.as_ref().map_or(0, |m| m.total_bytes) },
        "system": {
            "vendor": readable(system.vendor.as_ref()),
            "model": readable(system.model.as_ref()),
            "serial": readable(system.serial.as_ref()),
        },
    })
}

/// An inventory as indented `name  value` lines for a terminal.
pub fn inventory_text(inventory: &v1::Inventory, indent: &str) -> String {
    let os = inventory.os.clone().unwrap_or_default();
    let cpu = inventory.cpu.clone().unwrap_or_default();
    let system = inventory.system.clone().unwrap_or_default();
    let rows = [
        ("hostname", inventory.hostname.clone()),
        ("os", format!("{} {}", readable_text(os.name.as_ref()), readable_text(os.version.as_ref()))),
        ("kernel", readable_text(os.kernel.as_ref())),
        ("cpu", format!("{} ({} cores, {} threads)", readable_text(cpu.model.as_ref()), cpu.cores, cpu.threads)),
        ("memory", format_bytes(inventory.memory.as_ref().map_or(0, |m| m.total_bytes))),
        ("vendor", readable_text(system.vendor.as_ref())),
        ("model", readable_text(system.model.as_ref())),
        ("serial", readable_text(system.serial.as_ref())),
    ];
    rows.iter().map(|(name, value)| format!("{indent}{name:<14}{value}\n")).collect()
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
