//! One audit event: who did what to which device, when, from which state to
//! which, why, and the hashes of the evidence.
//!
//! An event is stored, hashed into the tree and exported as the exact bytes
//! of its JSON encoding ([`AuditEvent::to_bytes`]): one line, fields in a
//! fixed order, absent fields omitted. `v` is the record version.

use std::collections::BTreeMap;

use custodian_proto::identity::DeviceId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The version of the event record this build writes.
pub const EVENT_VERSION: u32 = 1;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A device enrolled and was issued a certificate.
    DeviceEnrolled,
    /// A signed report was accepted and stored.
    ReportAccepted,
    /// A device's certificate was revoked.
    DeviceRevoked,
    /// An enrolment token was created.
    TokenCreated,
    /// A device moved from one lifecycle state to another.
    DeviceTransitioned,
    /// A device was added to the register before enrolment.
    DeviceAdded,
    /// An operator added a note to a device.
    NoteAdded,
    /// An operator certificate was issued.
    OperatorIssued,
    /// The inventory of a device changed in a way worth flagging.
    InventoryChanged,
    /// A rollout plan was created, or a site's or ward's capacity set.
    RolloutPlanChanged,
    /// A machine was booked into a rollout, its booking cancelled, its
    /// deployment confirmed, or the machine it replaces retired.
    RolloutBookingChanged,
    /// A signed wipe attestation (passed, failed or interrupted) was accepted.
    WipeAttested,
    /// An operator recorded that a disk was physically destroyed.
    DiskDestroyed,
    /// A sanitised, disposed or lost machine called in and was refused
    /// (high severity: a machine that left can still talk).
    GhostCall,
    /// An operator acknowledged an alert.
    AlertAcknowledged,
    /// A certificate of sanitisation was issued for a disposed machine.
    CertificateIssued,
    /// A custody manifest was created, reconciled against a contractor's
    /// return, or closed.
    CustodyManifestChanged,
}

impl EventKind {
    /// The name used in the JSON encoding and on screen.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::DeviceEnrolled => "device_enrolled",
            EventKind::ReportAccepted => "report_accepted",
            EventKind::DeviceRevoked => "device_revoked",
            EventKind::TokenCreated => "token_created",
            EventKind::DeviceTransitioned => "device_transitioned",
            EventKind::DeviceAdded => "device_added",
            EventKind::NoteAdded => "note_added",
            EventKind::OperatorIssued => "operator_issued",
            EventKind::InventoryChanged => "inventory_changed",
            EventKind::RolloutPlanChanged => "rollout_plan_changed",
            EventKind::RolloutBookingChanged => "rollout_booking_changed",
            EventKind::WipeAttested => "wipe_attested",
            EventKind::DiskDestroyed => "disk_destroyed",
            EventKind::GhostCall => "ghost_call",
            EventKind::AlertAcknowledged => "alert_acknowledged",
            EventKind::CertificateIssued => "certificate_issued",
            EventKind::CustodyManifestChanged => "custody_manifest_changed",
        }
    }
}

/// A hash of a piece of evidence the event rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// What was hashed, e.g. `report_payload`.
    pub name: String,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

impl Evidence {
    /// Evidence named `name` whose bytes are `bytes`.
    pub fn of(name: &str, bytes: &[u8]) -> Self {
        Self { name: name.to_owned(), sha256: hex::encode(Sha256::digest(bytes)) }
    }
}

/// One event in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Record version ([`EVENT_VERSION`]).
    pub v: u32,
    /// Position in the log, from 0; assigned by the store when appended.
    pub seq: u64,
    /// When, Unix milliseconds.
    pub time_ms: i64,
    /// Who: an operator as `name (role)`, `device <uuid>`, or `server`.
    pub actor: String,
    /// What happened.
    pub kind: EventKind,
    /// The device it concerns, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<DeviceId>,
    /// The lifecycle state before, for transitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The lifecycle state after, for transitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The reason the actor gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set when a guard was overridden: the reason given for overriding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_reason: Option<String>,
    /// Hashes of the evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    /// Further facts, e.g. the attributes a transition set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

impl AuditEvent {
    /// A new event (sequence number to be assigned by the store).
    pub fn new(time_ms: i64, actor: impl Into<String>, kind: EventKind, device_id: Option<DeviceId>) -> Self {
        Self {
            v: EVENT_VERSION,
            seq: 0,
            time_ms,
            actor: actor.into(),
            kind,
            device_id,
            from: None,
            to: None,
            reason: None,
            override_reason: None,
            evidence: Vec::new(),
            details: BTreeMap::new(),
        }
    }

    /// The actor name for a device.
    pub fn device_actor(device_id: DeviceId) -> String {
        format!("device {device_id}")
    }

    /// Adds a detail.
    pub fn with_detail(mut self, key: &str, value: impl Into<String>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// Sets the reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// The exact bytes stored, hashed into the tree and exported: compact
    /// JSON with no newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("audit events always serialise")
    }

    /// Decodes stored or exported bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests;
