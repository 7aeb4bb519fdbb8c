//! Which of a machine's disks are covered by sanitisation evidence: a
//! verified wipe attestation matching the disk's serial, or a destruction
//! record. The wipe and destruction records come with issues 5 and 7; until
//! then [`SanitisationEvidence`] is empty and every disk is uncovered, so
//! the `sanitised` guard refuses, naming the disks.

use std::collections::{BTreeMap, BTreeSet};

use custodian_proto::v1 as pb;

/// Disk serials for which verified evidence exists.
#[derive(Debug, Clone, Default)]
pub struct SanitisationEvidence {
    /// Serials (as reported by the disks) with a verified wipe attestation.
    pub wiped_serials: BTreeSet<String>,
    /// Serials with a destruction record (witness and contractor reference).
    pub destroyed_serials: BTreeSet<String>,
    /// Serials with evidence that does not count, and why (a wipe from
    /// before the machine was retired, say).
    pub not_counted: BTreeMap<String, String>,
}

/// How far a machine's disks are covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// Disks covered, as `name (serial)`.
    pub covered: Vec<String>,
    /// Disks not covered, as `name (serial S)` or `name (serial unreadable)`.
    pub uncovered: Vec<String>,
}

/// Checks every fixed storage device of `inventory` against `evidence`.
/// Removable media (USB sticks, card readers) are not part of the machine
/// and are left out; a disk whose serial cannot be read can never be
/// matched, so it is always uncovered.
pub fn sanitisation_coverage(inventory: &pb::Inventory, evidence: &SanitisationEvidence) -> Coverage {
    let mut coverage = Coverage { covered: Vec::new(), uncovered: Vec::new() };
    for disk in inventory.storage.iter().filter(|d| !d.removable) {
        match custodian_proto::readable_value(disk.serial.as_ref()) {
            Some(serial) if evidence.wiped_serials.contains(serial) || evidence.destroyed_serials.contains(serial) => {
                coverage.covered.push(format!("{} (serial {serial})", disk.name));
            }
            Some(serial) => coverage.uncovered.push(match evidence.not_counted.get(serial) {
                Some(why) => format!("{} (serial {serial}: {why})", disk.name),
                None => format!("{} (serial {serial})", disk.name),
            }),
            None => coverage.uncovered.push(format!("{} (serial unreadable)", disk.name)),
        }
    }
    coverage
}

/// Whether two disk serials are the same disk's, as the register matches
/// them: trimmed, ignoring case.
pub fn same_serial(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

#[cfg(test)]
mod tests;
