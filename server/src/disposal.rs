//! Certified disposal (issue 7): destruction records for disks destroyed
//! rather than wiped, the disposal route of a machine that leaves, and ghost
//! alerts for machines that call in after they were sanitised, disposed of or
//! lost. The store keeps them (`store/disposal.rs`); this module holds the
//! records and the checks on what an operator typed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::lifecycle::LifecycleState;

/// Longest free text accepted in a record field.
pub const MAX_FIELD_LEN: usize = 256;

/// How a disk was physically destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestructionMethod {
    /// Shredded.
    Shred,
    /// Disintegrated.
    Disintegrate,
    /// Crushed (drive punched or bent).
    Crush,
    /// Degaussed (magnetic media only).
    Degauss,
    /// Incinerated.
    Incinerate,
}

impl DestructionMethod {
    /// Every method.
    pub const ALL: [DestructionMethod; 5] = [
        DestructionMethod::Shred,
        DestructionMethod::Disintegrate,
        DestructionMethod::Crush,
        DestructionMethod::Degauss,
        DestructionMethod::Incinerate,
    ];

    /// The name used on the command line and in records.
    pub fn as_str(self) -> &'static str {
        match self {
            DestructionMethod::Shred => "shred",
            DestructionMethod::Disintegrate => "disintegrate",
            DestructionMethod::Crush => "crush",
            DestructionMethod::Degauss => "degauss",
            DestructionMethod::Incinerate => "incinerate",
        }
    }
}

impl fmt::Display for DestructionMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DestructionMethod {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|m| m.as_str() == wanted).ok_or_else(|| {
            format!(
                "unknown destruction method {s:?}; expected one of: {}",
                Self::ALL.map(DestructionMethod::as_str).join(", ")
            )
        })
    }
}

/// Where a disposed machine went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisposalRoute {
    /// Recycled (WEEE).
    Recycle,
    /// Sold on.
    Resale,
    /// Destroyed whole.
    Destruction,
    /// Returned to the lessor.
    ReturnToLessor,
}

impl DisposalRoute {
    /// Every route.
    pub const ALL: [DisposalRoute; 4] =
        [DisposalRoute::Recycle, DisposalRoute::Resale, DisposalRoute::Destruction, DisposalRoute::ReturnToLessor];

    /// The name used on the command line, in records and in the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            DisposalRoute::Recycle => "recycle",
            DisposalRoute::Resale => "resale",
            DisposalRoute::Destruction => "destruction",
            DisposalRoute::ReturnToLessor => "return-to-lessor",
        }
    }
}

impl fmt::Display for DisposalRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DisposalRoute {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        Self::ALL.into_iter().find(|r| r.as_str() == wanted).ok_or_else(|| {
            format!(
                "unknown disposal route {s:?}; expected one of: {}",
                Self::ALL.map(DisposalRoute::as_str).join(", ")
            )
        })
    }
}

/// A disk destroyed by a contractor, as recorded by an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestructionRecordV1 {
    /// The disk's serial, as its inventory reports it.
    pub serial: String,
    /// How it was destroyed.
    pub method: DestructionMethod,
    /// The contractor who destroyed it.
    pub contractor: String,
    /// The contractor's certificate of destruction reference.
    pub certificate_ref: String,
    /// When it was destroyed, `YYYY-MM-DD`.
    pub date: String,
    /// Who witnessed it.
    pub witness: String,
    /// The operator who recorded it (`name (role)`).
    pub recorded_by: String,
    /// When it was recorded, Unix ms.
    pub recorded_at_ms: i64,
}

pub use DestructionRecordV1 as DestructionRecord;

impl DestructionRecordV1 {
    /// The bytes the record's hash covers: compact JSON, fields in
    /// declaration order.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("destruction records always serialise")
    }

    /// SHA-256 of [`Self::canonical_bytes`], lowercase hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_bytes()))
    }
}

/// Why a destruction record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordDestructionError {
    /// A required field is empty.
    #[error("{0} is required")]
    Missing(&'static str),
    /// A field is longer than [`MAX_FIELD_LEN`].
    #[error("{0} must be at most {MAX_FIELD_LEN} characters")]
    TooLong(&'static str),
    /// The method is not one of ours.
    #[error("{0}")]
    Method(String),
    /// The date does not parse or is in the future.
    #[error("date: {0}")]
    Date(String),
    /// The serial already has a destruction record.
    #[error("disk {serial} already has a destruction record ({method} by {contractor}, certificate {certificate_ref})")]
    AlreadyRecorded {
        /// The serial.
        serial: String,
        /// The existing record's method.
        method: DestructionMethod,
        /// Its contractor.
        contractor: String,
        /// Its certificate reference.
        certificate_ref: String,
    },
}

/// What an operator typed for `disk destroyed`.
#[derive(Debug, Clone, Default)]
pub struct DestructionInput {
    /// Disk serial.
    pub serial: String,
    /// Method name.
    pub method: String,
    /// Contractor.
    pub contractor: String,
    /// Certificate reference.
    pub certificate_ref: String,
    /// Date, `YYYY-MM-DD`.
    pub date: String,
    /// Witness.
    pub witness: String,
}

fn field(name: &'static str, value: &str) -> Result<String, RecordDestructionError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(RecordDestructionError::Missing(name));
    }
    if value.len() > MAX_FIELD_LEN {
        return Err(RecordDestructionError::TooLong(name));
    }
    Ok(value.to_owned())
}

/// Checks every field and builds the record (dates after `now_ms`'s day are refused).
pub fn check_destruction(
    input: &DestructionInput,
    recorded_by: &str,
    now_ms: i64,
) -> Result<DestructionRecord, RecordDestructionError> {
    let serial = field("serial", &input.serial)?;
    let method = field("method", &input.method)?.parse().map_err(RecordDestructionError::Method)?;
    let contractor = field("contractor", &input.contractor)?;
    let certificate_ref = field("certificate reference", &input.certificate_ref)?;
    let date = crate::rollout::parse_date(&field("date", &input.date)?).map_err(RecordDestructionError::Date)?;
    if date > crate::rollout::date_of_ms(now_ms) {
        return Err(RecordDestructionError::Date(format!("{} is in the future", crate::rollout::format_date(date))));
    }
    let witness = field("witness", &input.witness)?;
    Ok(DestructionRecord {
        serial,
        method,
        contractor,
        certificate_ref,
        date: crate::rollout::format_date(date),
        witness,
        recorded_by: recorded_by.to_owned(),
        recorded_at_ms: now_ms,
    })
}

/// How a machine left, stored with it when it moves to `disposed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisposalV1 {
    /// The route.
    pub route: DisposalRoute,
    /// The contractor.
    pub contractor: String,
    /// The collection or WEEE consignment reference.
    pub consignment_ref: String,
    /// When, Unix ms.
    pub disposed_at_ms: i64,
    /// Who recorded it.
    pub disposed_by: String,
    /// The disposal audit event's sequence number (set by the store).
    pub audit_seq: u64,
}

pub use DisposalV1 as Disposal;

/// A machine that called in after it left: one open alert per device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertV1 {
    /// The alert's id.
    pub id: u64,
    /// The device that called.
    pub device_id: custodian_proto::identity::DeviceId,
    /// Its state when it first called.
    pub state: LifecycleState,
    /// First call, Unix ms.
    pub first_seen_ms: i64,
    /// Latest call, Unix ms.
    pub last_seen_ms: i64,
    /// Calls refused while open.
    pub calls: u64,
    /// The audit event that raised it.
    pub audit_seq: u64,
    /// Set once acknowledged.
    pub acknowledgement: Option<AcknowledgementV1>,
}

pub use AlertV1 as Alert;

/// Who acknowledged an alert, when, and what they said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcknowledgementV1 {
    /// The operator.
    pub by: String,
    /// When, Unix ms.
    pub at_ms: i64,
    /// Their note.
    pub note: String,
}

/// The severity every ghost alert carries.
pub const GHOST_SEVERITY: &str = "high";

/// Whether a machine in `state` calling in is a ghost: it should no longer
/// exist on the network.
pub fn is_ghost_state(state: LifecycleState) -> bool {
    matches!(state, LifecycleState::Sanitised | LifecycleState::Disposed | LifecycleState::Lost)
}

#[cfg(test)]
mod tests;
