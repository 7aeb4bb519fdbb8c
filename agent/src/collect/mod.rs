//! What the agent sees: the inventory it reports.
//!
//! Collection sits behind [`InventorySource`] so tests can feed fixed
//! inventories. [`HostCollector`] reads the kernel's own interfaces (procfs,
//! sysfs DMI, os-release) under a configurable root, so that fixture trees
//! captured from real workstations can stand in for `/`. A field that cannot
//! be read is reported as unknown with the reason, never invented.
//!
//! - [`dmi`]: system identity, BIOS, TPM, Secure Boot, memory modules;
//! - [`storage`]: disks, partitions, the device-mapper stack, mounts, swap;
//! - [`encryption`]: superblocks, LUKS and BitLocker headers, `dm/uuid`s;
//! - [`network`]: interfaces and addresses;
//! - [`platform`]: parsers of the Windows and macOS encryption tools' output.
//!
//! Everything is read from the kernel's own files under the root, also when
//! the root is `/`, so a fixture tree and the live system take the same path.

pub mod dmi;
pub mod encryption;
pub mod network;
pub mod platform;
pub mod storage;

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use custodian_proto::v1 as pb;
use sha2::{Digest, Sha256};

/// Something that can produce an inventory.
pub trait InventorySource {
    /// Collects the inventory now.
    fn collect(&self) -> pb::Inventory;
}

/// Collects from the running system, or from a fixture tree at `root`.
#[derive(Debug, Clone)]
pub struct HostCollector {
    root: PathBuf,
    /// The executable whose SHA-256 is reported as the agent's own.
    executable: Option<PathBuf>,
}

impl Default for HostCollector {
    fn default() -> Self {
        Self::new("/")
    }
}

impl HostCollector {
    /// A collector reading `root/proc`, `root/sys`, `root/dev`, `root/etc`
    /// and `root/run`, reporting the running executable's hash.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), executable: std::env::current_exe().ok() }
    }

    /// Reports the hash of `executable` as the agent's own (tests use a fixed file).
    pub fn with_executable(mut self, executable: impl Into<PathBuf>) -> Self {
        self.executable = Some(executable.into());
        self
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
        pb::MemoryInfo { total_bytes: total_bytes.unwrap_or(0), modules: dmi::memory_modules(&self.root) }
    }

    /// `btime` from `proc/stat`, in Unix milliseconds (0 when unknown).
    fn boot_time_ms(&self) -> i64 {
        std::fs::read_to_string(self.path("proc/stat"))
            .ok()
            .and_then(|text| text.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse::<i64>().ok()))
            .map_or(0, |secs| secs.saturating_mul(1000))
    }

    fn agent(&self) -> pb::AgentInfo {
        let executable_sha256 = match &self.executable {
            None => pb::Readable::unknown("absent (the agent could not find its own executable)"),
            Some(path) => match sha256_file(path) {
                Ok(hash) => pb::Readable::value(hash),
                Err(e) => pb::Readable::unknown(format!("{} reading {}", io_reason(&e), path.display())),
            },
        };
        pb::AgentInfo { version: crate::AGENT_VERSION.to_owned(), executable_sha256: Some(executable_sha256) }
    }
}

impl InventorySource for HostCollector {
    fn collect(&self) -> pb::Inventory {
        #[cfg(not(any(target_os = "windows", target_os = "macos")))]
        let storage = storage::BlockLayer::new(&self.root).storage();
        #[cfg(target_os = "windows")]
        let storage = platform::windows::collect_storage();
        #[cfg(target_os = "macos")]
        let storage = platform::macos::collect_storage();
        pb::Inventory {
            hostname: self.hostname(),
            os: Some(self.os()),
            cpu: Some(self.cpu()),
            memory: Some(self.memory()),
            system: Some(dmi::system(&self.root)),
            encryption: Some(encryption::summary(&storage)),
            storage,
            network: network::interfaces(&self.root),
            firmware: Some(dmi::firmware(&self.root)),
            agent: Some(self.agent()),
            boot_time_ms: self.boot_time_ms(),
        }
    }
}

/// SHA-256 of an inventory: of its prost encoding, which is deterministic
/// for a given message (prost writes fields in field-number order, repeated
/// fields in list order, and no map fields are used in `Inventory`). The
/// agent and the server compute it the same way, so a heartbeat can carry
/// it instead of the inventory.
pub fn inventory_sha256(inventory: &pb::Inventory) -> [u8; 32] {
    use prost::Message;
    Sha256::digest(inventory.encode_to_vec()).into()
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match std::io::Read::read(&mut file, &mut buffer) {
            Ok(0) => return Ok(hex::encode(hasher.finalize())),
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A file's contents, trimmed, if it can be read.
pub(crate) fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
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
///
/// `EACCES` is the file's permissions, which root passes; `EPERM` is a
/// refusal root gets too (a container's device policy, a security module,
/// a missing capability), where "run as root" would send the service desk
/// the wrong way.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::NotFound => "absent".to_owned(),
        ErrorKind::PermissionDenied if e.raw_os_error() == Some(libc::EPERM) => {
            "operation not permitted (refused even to root: a container's device policy, a security module \
             or a missing capability)"
                .to_owned()
        }
        ErrorKind::PermissionDenied => "permission denied (run the agent as root)".to_owned(),
        _ => format!("unreadable: {e}"),
    }
}

/// Placeholder strings firmware vendors leave in DMI fields instead of a value.
const DMI_PLACEHOLDERS: &[&str] =
    &["to be filled by o.e.m.", "default string", "system serial number", "not specified", "none", "0", "0123456789"];

pub(crate) fn readable_file(path: &Path) -> pb::Readable {
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
