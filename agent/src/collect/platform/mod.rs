//! Encryption status on Windows (BitLocker) and macOS (FileVault): parsers of
//! the platform tools' output as pure functions, tested on captured output,
//! and the collectors that run the tools, compiled only on their platform.

pub mod macos;
pub mod windows;

use custodian_proto::v1 as pb;

/// Volumes reported by a platform tool, as one storage device whose disk
/// details that tool does not give (they are reported unknown, not invented).
pub fn tool_volumes_device(tool: &str, volumes: Vec<pb::Volume>) -> pb::StorageDevice {
    let not_given = || Some(pb::Readable::unknown(format!("absent ({tool} does not report disks)")));
    pb::StorageDevice {
        name: tool.to_owned(),
        model: not_given(),
        serial: not_given(),
        wwn: not_given(),
        size_bytes: volumes.iter().map(|v| v.size_bytes).sum(),
        rotational: false,
        transport: "unknown".to_owned(),
        removable: false,
        volumes,
    }
}
