//! What the agent sees: the inventory it reports.
//!
//! Collection sits behind [`InventorySource`] so tests can feed fixed
//! inventories. [`HostCollector`] reads the kernel's own interfaces (procfs,
//! sysfs DMI, os-release) under a configurable root, so that fixture trees
//! captured from real workstations can stand in for `/`. A field that cannot
//! be read is reported as unknown with the reason, never invented.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use custodian_proto::v1 as pb;

/// Something that can produce an inventory.
pub trait InventorySource {
    /// Collects the inventory now.
    fn collect(&self) -> pb::Inventory;
}

/// Collects from the running system, or from a fixture tree at `root`.
#[derive(Debug, Clone)]
pub struct HostCollector {
    root: PathBuf,
}

impl Default for HostCollector {
    fn default() -> Self {
        Self::new("/")
    }
}

impl HostCollector {
    /// A collector reading `root/proc`, `root/sys` and `root/etc`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Reads a one-line file, trimmed, as a [`pb::Readable`].
    fn readable(&self, relative: &str) -> pb::Readable {
        readable_file(&self.path(relative))
    }

    /// The hostname to put in a CSR's common name.
    pub fn hostname_for_csr(&self) -> String {
        self.hostname()
    }

    fn hostname(&self) -> String {
        std::fs::read_to_string(self.path("proc/sys/kernel/hostname"))
            .map(|s| s.trim().to_owned())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown-host".to_owned())
    }

    fn os(&self) -> pb::OsInfo {
        let (name, version) = match std::fs::read_to_string(self.path("etc/os-release"))
            .or_else(|_| std::fs::read_to_string(self.path("usr/lib/os-release")))
        {
            Ok(text) => {
                let fields = parse_os_release(&text);
                let get = |key: &str| match fields.iter().find(|(k, _)| k == key) {
                    Some((_, v)) if !v.is_empty() => pb::Readable::value(v.clone()),
                    _ => pb::Readable::unknown(format!("absent ({key} not in os-release)")),
                };
                (get("NAME"), get("VERSION_ID"))
            }
            Err(e) => (pb::Readable::unknown(io_reason(&e)), pb::Readable::unknown(io_reason(&e))),
        };
        pb::OsInfo {
            name: Some(name),
            version: Some(version),
            kernel: Some(self.readable("proc/sys/kernel/osrelease")),
        }
    }

    fn cpu(&self) -> pb::CpuInfo {
        match std::fs::read_to_string(self.path("proc/cpuinfo")) {
            Ok(text) => parse_cpuinfo(&text),
            Err(e) => pb::CpuInfo { model: Some(pb::Readable::unknown(io_reason(&e))), cores: 0, threads: 0 },
        }
    }

    fn memory(&self) -> pb::MemoryInfo {
        let total_bytes = std::fs::read_to_string(self.path("proc/meminfo")).ok().and_then(|t| parse_meminfo_total(&t));
        pb::MemoryInfo { total_bytes: total_bytes.unwrap_or(0), ..Default::default() }
    }

    fn system(&self) -> pb::SystemInfo {
        pb::SystemInfo {
            vendor: Some(self.readable("sys/class/dmi/id/sys_vendor")),
            model: Some(self.readable("sys/class/dmi/id/product_name")),
            serial: Some(self.readable("sys/class/dmi/id/product_serial")),
            ..Default::default()
        }
    }
}

impl InventorySource for HostCollector {
    fn collect(&self) -> pb::Inventory {
        pb::Inventory {
            hostname: self.hostname(),
            os: Some(self.os()),
            cpu: Some(self.cpu()),
            memory: Some(self.memory()),
            system: Some(self.system()),
            ..Default::default()
        }
    }
}

/// The inventory as JSON, in the shape `custodianctl device show --json` uses.
pub fn to_json(inventory: &pb::Inventory) -> String {
    serde_json::to_string_pretty(&custodian_proto::json::inventory(inventory)).expect("JSON values always serialise")
}

/// The inventory as text for a terminal.
pub fn to_text(inventory: &pb::Inventory) -> String {
    custodian_proto::json::inventory_text(inventory, "")
}

/// Why an I/O error left a field unknown, in the words the register shows.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::NotFound => "absent".to_owned(),
        ErrorKind::PermissionDenied => "permission denied (run the agent as root)".to_owned(),
        _ => format!("unreadable: {e}"),
    }
}

/// Placeholder strings firmware vendors leave in DMI fields instead of a value.
const DMI_PLACEHOLDERS: &[&str] =
    &["to be filled by o.e.m.", "default string", "system serial number", "not specified", "none", "0", "0123456789"];

fn readable_file(path: &Path) -> pb::Readable {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let value = text.trim();
            if value.is_empty() {
                pb::Readable::unknown("absent (empty)")
            } else if DMI_PLACEHOLDERS.contains(&value.to_lowercase().as_str()) {
                pb::Readable::unknown(format!("absent (firmware placeholder {value:?})"))
            } else {
                pb::Readable::value(value)
            }
        }
        Err(e) => pb::Readable::unknown(io_reason(&e)),
    }
}

/// `KEY=value` pairs of an os-release file, unquoted.
fn parse_os_release(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.trim().split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned()))
        .collect()
}

/// Model name, physical cores and logical processors from `/proc/cpuinfo`.
fn parse_cpuinfo(text: &str) -> pb::CpuInfo {
    let mut model = None;
    let mut threads = 0u32;
    let mut cores = std::collections::BTreeSet::new();
    let mut physical_id = String::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "processor" => threads += 1,
            "model name" | "Model" | "cpu model" if model.is_none() && !value.is_empty() => {
                model = Some(value.to_owned());
            }
            "physical id" => physical_id = value.to_owned(),
            "core id" => {
                cores.insert((physical_id.clone(), value.to_owned()));
            }
            _ => {}
        }
    }
    let cores = if cores.is_empty() { threads } else { u32::try_from(cores.len()).unwrap_or(u32::MAX) };
    pb::CpuInfo {
        model: Some(match model {
            Some(m) => pb::Readable::value(m),
            None => pb::Readable::unknown("absent (no model name in /proc/cpuinfo)"),
        }),
        cores,
        threads,
    }
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
fn parse_meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests;
