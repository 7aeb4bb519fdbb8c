//! A device's inventory history: what changed between two consecutive
//! inventories, as a list of [`Change`]s, with the changes IG must see
//! flagged (a fixed storage device disappearing, a volume no longer
//! encrypted, Secure Boot turned off).
//!
//! An inventory is flattened into *entities* (a disk, a volume, an interface,
//! a memory module), identified by what survives a reboot (a disk by its
//! serial, a volume by its disk and kernel name), and *facts* (`key → value`
//! text). The diff is then set arithmetic, so adding a field to the
//! inventory means adding one line to [`flatten`]. Volatile facts (boot
//! time, IP addresses) are left out so that the history shows hardware and
//! configuration, not DHCP.

use std::collections::BTreeMap;

use custodian_proto::json::{encryption_text, format_bytes, readable_text};
use custodian_proto::v1 as pb;
use serde::{Deserialize, Serialize};

/// What kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// Something appeared.
    Added,
    /// Something disappeared.
    Removed,
    /// A value changed.
    Changed,
}

/// One change between two inventories. It carries what an audit event
/// needs: the actor is the device, the time and report sequence number are
/// filled in by the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Added, removed or changed.
    pub kind: ChangeKind,
    /// What changed: an entity (`storage S4ENNF0N123456`) or a fact (`system.serial`).
    pub subject: String,
    /// The value before (`None` for additions).
    pub before: Option<String>,
    /// The value after (`None` for removals).
    pub after: Option<String>,
    /// Why IG must look at it, when it must.
    pub flag: Option<String>,
}

/// Flattened inventory: entity id → description, fact key → value.
#[derive(Debug, Default)]
struct Flat {
    entities: BTreeMap<String, String>,
    facts: BTreeMap<String, String>,
}

impl Flat {
    fn fact(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.facts.insert(key.into(), value.into());
    }
}

/// How a disk is identified across inventories: its serial, else its kernel name.
fn disk_id(disk: &pb::StorageDevice) -> String {
    match custodian_proto::readable_value(disk.serial.as_ref()) {
        Some(serial) => format!("storage {serial}"),
        None => format!("storage {} (no serial)", disk.name),
    }
}

fn flatten(inventory: &pb::Inventory) -> Flat {
    let mut flat = Flat::default();
    let r = |x: Option<&pb::Readable>| readable_text(x);
    flat.fact("hostname", inventory.hostname.clone());
    let os = inventory.os.clone().unwrap_or_default();
    flat.fact("os", format!("{} {}", r(os.name.as_ref()), r(os.version.as_ref())));
    flat.fact("os.kernel", r(os.kernel.as_ref()));
    let cpu = inventory.cpu.clone().unwrap_or_default();
    flat.fact("cpu", format!("{} ({} cores, {} threads)", r(cpu.model.as_ref()), cpu.cores, cpu.threads));
    let memory = inventory.memory.clone().unwrap_or_default();
    flat.fact("memory.total", format_bytes(memory.total_bytes));
    for module in &memory.modules {
        flat.entities.insert(
            format!("memory module {} {}", module.locator, r(module.serial.as_ref())),
            format!(
                "{} {} part {}",
                format_bytes(module.size_bytes),
                r(module.kind.as_ref()),
                r(module.part_number.as_ref())
            ),
        );
    }
    let system = inventory.system.clone().unwrap_or_default();
    flat.fact("system.vendor", r(system.vendor.as_ref()));
    flat.fact("system.model", r(system.model.as_ref()));
    flat.fact("system.serial", r(system.serial.as_ref()));
    flat.fact("system.uuid", r(system.uuid.as_ref()));
    flat.fact("system.chassis_type", r(system.chassis_type.as_ref()));
    let firmware = inventory.firmware.clone().unwrap_or_default();
    flat.fact(
        "firmware.bios",
        format!(
            "{} {} ({})",
            r(firmware.bios_vendor.as_ref()),
            r(firmware.bios_version.as_ref()),
            r(firmware.bios_date.as_ref())
        ),
    );
    flat.fact("firmware.tpm_version", r(firmware.tpm_version.as_ref()));
    flat.fact("firmware.secure_boot", r(firmware.secure_boot.as_ref()));
    let agent = inventory.agent.clone().unwrap_or_default();
    flat.fact("agent", format!("{} (sha256 {})", agent.version, r(agent.executable_sha256.as_ref())));
    for disk in &inventory.storage {
        let id = disk_id(disk);
        flat.entities.insert(
            id.clone(),
            format!(
                "{} {} {} {}{}",
                disk.name,
                r(disk.model.as_ref()),
                format_bytes(disk.size_bytes),
                disk.transport,
                if disk.removable { " removable" } else { "" }
            ),
        );
        flat.fact(format!("{id} model"), r(disk.model.as_ref()));
        flat.fact(format!("{id} size"), format_bytes(disk.size_bytes));
        for volume in &disk.volumes {
            let volume_id = format!("{id} volume {}", volume.name);
            flat.entities.insert(
                volume_id.clone(),
                format!("{} {}", format_bytes(volume.size_bytes), r(volume.filesystem.as_ref())),
            );
            flat.fact(format!("{volume_id} encryption"), encryption_text(volume.encryption.as_ref()));
            flat.fact(format!("{volume_id} filesystem"), r(volume.filesystem.as_ref()));
            flat.fact(format!("{volume_id} mounted"), volume.mount_points.join(", "));
        }
    }
    for interface in &inventory.network {
        flat.entities.insert(format!("network {}", interface.name), interface.mac.clone());
        flat.fact(format!("network {} mac", interface.name), interface.mac.clone());
    }
    flat
}

/// Whether an entity or fact belongs to an entity that is in both inventories.
fn owner_in_both(key: &str, old: &Flat, new: &Flat) -> bool {
    // The owning entity is the longest entity id that prefixes the key.
    let owner = old
        .entities
        .keys()
        .chain(new.entities.keys())
        .filter(|e| key.strip_prefix(e.as_str()).is_some_and(|rest| rest.starts_with(' ')))
        .max_by_key(|e| e.len());
    owner.is_none_or(|e| old.entities.contains_key(e) && new.entities.contains_key(e))
}

/// What changed from `old` to `new`, entities first then facts, each in key order.
pub fn diff(old: &pb::Inventory, new: &pb::Inventory) -> Vec<Change> {
    let (old, new) = (flatten(old), flatten(new));
    let mut changes = Vec::new();
    for (id, description) in &old.entities {
        if !new.entities.contains_key(id) {
            // A fixed disk leaving is an event; a USB stick being unplugged is not.
            let flag = id.starts_with("storage ") && !id.contains(" volume ") && !description.ends_with(" removable");
            changes.push(Change {
                kind: ChangeKind::Removed,
                subject: id.clone(),
                before: Some(description.clone()),
                after: None,
                flag: flag.then(|| "a storage device disappeared from the machine".to_owned()),
            });
        }
    }
    for (id, description) in &new.entities {
        if !old.entities.contains_key(id) {
            changes.push(Change {
                kind: ChangeKind::Added,
                subject: id.clone(),
                before: None,
                after: Some(description.clone()),
                flag: None,
            });
        }
    }
    for (key, after) in &new.facts {
        let Some(before) = old.facts.get(key) else { continue };
        if before == after || !owner_in_both(key, &old, &new) {
            continue;
        }
        let flag = if key.ends_with(" encryption") && before.starts_with("encrypted") && !after.starts_with("encrypted")
        {
            Some("a volume is no longer encrypted".to_owned())
        } else if key == "firmware.secure_boot" && before == "enabled" {
            Some("Secure Boot is no longer enabled".to_owned())
        } else {
            None
        };
        changes.push(Change {
            kind: ChangeKind::Changed,
            subject: key.clone(),
            before: Some(before.clone()),
            after: Some(after.clone()),
            flag,
        });
    }
    changes
}

/// The change recorded for a device's first inventory.
pub fn first(inventory: &pb::Inventory) -> Change {
    let n_volumes: usize = inventory.storage.iter().map(|d| d.volumes.len()).sum();
    Change {
        kind: ChangeKind::Added,
        subject: "inventory".to_owned(),
        before: None,
        after: Some(format!("first inventory: {} storage device(s), {n_volumes} volume(s)", inventory.storage.len())),
        flag: None,
    }
}

#[cfg(test)]
mod tests;
