//! Encryption compliance, decided by the server from the volumes a report
//! lists rather than taken from the agent's own summary: a machine is
//! compliant only when it lists fixed data volumes and every one of them is
//! encrypted. Used by `device list --noncompliant`, the `deployed` guard and
//! rollout readiness.

use custodian_proto::v1 as pb;
use serde::{Deserialize, Serialize};

/// Whether a machine's latest inventory shows it compliant. Device records
/// keep one (`InventoryVerdictV1`), so renaming a variant or field changes
/// what the store reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Compliance {
    /// Every fixed data volume is encrypted.
    Compliant,
    /// These fixed data volumes are not encrypted, or not known to be.
    NonCompliant {
        /// Kernel names of the volumes, with the disk they are on (`sda2 (sda)`),
        /// or the disk's name alone for a filesystem on the whole disk.
        volumes: Vec<String>,
    },
    /// The inventory lists no fixed data volumes, so nothing can be said.
    Unknown {
        /// Why.
        reason: String,
    },
}

impl Compliance {
    /// Whether this is [`Compliance::Compliant`].
    pub fn is_compliant(&self) -> bool {
        matches!(self, Compliance::Compliant)
    }
}

/// Decides compliance from an inventory's volumes.
pub fn encryption_compliance(inventory: &pb::Inventory) -> Compliance {
    let mut n_data_volumes = 0;
    let mut unencrypted = Vec::new();
    for disk in &inventory.storage {
        for volume in disk.volumes.iter().filter(|v| v.holds_data) {
            n_data_volumes += 1;
            let encrypted = volume.encryption.as_ref().is_some_and(|e| e.state() == pb::EncryptionState::Encrypted);
            if !encrypted {
                unencrypted.push(if volume.name == disk.name {
                    // A filesystem on the whole disk: `vda`, not `vda (vda)`.
                    volume.name.clone()
                } else {
                    format!("{} ({})", volume.name, disk.name)
                });
            }
        }
    }
    if n_data_volumes == 0 {
        return Compliance::Unknown { reason: "the report lists no fixed data volumes".to_owned() };
    }
    if unencrypted.is_empty() { Compliance::Compliant } else { Compliance::NonCompliant { volumes: unencrypted } }
}

#[cfg(test)]
mod tests;
