//! The values the store keeps, versioned. Each stored value is the
//! rmp-serde encoding of a `Versioned*` enum, so a later version can be added
//! as a new variant with a `From` migration from the old one.

use custodian_proto::identity::DeviceId;
use serde::{Deserialize, Serialize};

use crate::compliance::Compliance;
use crate::lifecycle::LifecycleState;

/// A device in the register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecordV1 {
    /// The device's id.
    pub device_id: DeviceId,
    /// Its enrolled Ed25519 public key.
    pub public_key: [u8; 32],
    /// Hostname from the latest report (or enrolment).
    pub hostname: String,
    /// System serial number from the latest report (or enrolment), if readable.
    pub serial: Option<String>,
    /// System vendor from the latest report.
    pub vendor: Option<String>,
    /// System model from the latest report.
    pub model: Option<String>,
    /// Site, from the enrolment token.
    pub site: Option<String>,
    /// When it enrolled, Unix ms.
    pub enrolled_at_ms: i64,
    /// When it last reported, Unix ms.
    pub last_seen_ms: Option<i64>,
    /// Highest accepted report sequence number (0: none yet).
    pub last_seq: u64,
    /// Number of reports stored.
    pub n_reports: u64,
    /// Expiry of its current certificate, Unix ms.
    pub cert_not_after_ms: i64,
    /// Set once the device is revoked; its calls are refused from then on.
    pub revocation: Option<RevocationV1>,
    /// Where it is in its lifecycle. Records from before the lifecycle
    /// existed were all enrolled machines, so they read as `staged`.
    #[serde(default = "staged")]
    pub state: LifecycleState,
    /// The organisation's asset tag, from the register.
    #[serde(default)]
    pub asset_tag: Option<String>,
    /// The model as registered (purchase order), which reports do not overwrite.
    #[serde(default)]
    pub registered_model: Option<String>,
    /// Supplier, from the register.
    #[serde(default)]
    pub supplier: Option<String>,
    /// Purchase order reference, from the register.
    #[serde(default)]
    pub order_ref: Option<String>,
    /// Ward (where at the site), set by transitions.
    #[serde(default)]
    pub ward: Option<String>,
    /// Who has it, set by transitions.
    #[serde(default)]
    pub assigned_to: Option<String>,
    /// MAC addresses from the latest report's network interfaces, lowercase.
    #[serde(default)]
    pub macs: Vec<String>,
    /// When it was added to the register before enrolment, Unix ms.
    #[serde(default)]
    pub registered_at_ms: Option<i64>,
    /// When its lifecycle state last changed, Unix ms.
    #[serde(default)]
    pub state_changed_at_ms: Option<i64>,
    /// Workstation or wipe station (records from before this field: workstation).
    #[serde(default)]
    pub kind: DeviceKind,
    /// The latest full inventory's arrival and encryption verdict, decided
    /// when it was committed, so lists need not read the inventory. `None`
    /// until an inventory is committed, and in records written before this
    /// field, whose verdict is read from the inventory itself.
    #[serde(default)]
    pub inventory_verdict: Option<InventoryVerdictV1>,
    /// Where its newest report's entry is in `report_groups` (see
    /// `report_index.rs`). `None` until a report is stored that way; reports
    /// stored before then are records in the `reports` tree.
    #[serde(default)]
    pub last_report: Option<ReportLocatorV1>,
}

/// Where one report's entry is in `report_groups`: the group record's key
/// and the entry's index in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportLocatorV1 {
    /// The group record's key.
    pub group: u64,
    /// The entry's index in the record.
    pub index: u32,
}

/// What a device's latest full inventory says, decided when it was committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryVerdictV1 {
    /// When the inventory arrived, Unix ms.
    pub received_at_ms: i64,
    /// Whether it shows every fixed data volume encrypted.
    pub encryption: Compliance,
    /// The report that carried it (0 in records written before this field).
    #[serde(default)]
    pub seq: u64,
    /// SHA-256 of its bytes as signed, which heartbeats and unchanged
    /// inventories are compared with without reading `inventory_latest`
    /// (`None` in records written before this field).
    #[serde(default, with = "serde_bytes")]
    pub sha256: Option<[u8; 32]>,
}

impl InventoryVerdictV1 {
    /// The verdict on `inventory`, whose signed bytes hash to `sha256`,
    /// carried by report `seq`, which arrived at `received_at_ms`.
    pub fn of(inventory: &custodian_proto::v1::Inventory, seq: u64, sha256: [u8; 32], received_at_ms: i64) -> Self {
        Self {
            received_at_ms,
            encryption: crate::compliance::encryption_compliance(inventory),
            seq,
            sha256: Some(sha256),
        }
    }
}

fn staged() -> LifecycleState {
    LifecycleState::Staged
}

impl DeviceRecordV1 {
    /// A device that has just enrolled (state `staged`), before any report.
    pub fn enrolled(
        device_id: DeviceId,
        public_key: [u8; 32],
        hostname: &str,
        serial: Option<&str>,
        now_ms: i64,
        cert_not_after_ms: i64,
    ) -> Self {
        Self {
            device_id,
            public_key,
            hostname: hostname.to_owned(),
            serial: serial.map(str::to_owned),
            vendor: None,
            model: None,
            site: None,
            enrolled_at_ms: now_ms,
            last_seen_ms: None,
            last_seq: 0,
            n_reports: 0,
            cert_not_after_ms,
            revocation: None,
            state: crate::lifecycle::LifecycleState::Staged,
            asset_tag: None,
            registered_model: None,
            supplier: None,
            order_ref: None,
            ward: None,
            assigned_to: None,
            macs: Vec::new(),
            registered_at_ms: None,
            state_changed_at_ms: Some(now_ms),
            // The token decides the kind when the enrolment is recorded.
            kind: DeviceKind::Workstation,
            inventory_verdict: None,
            last_report: None,
        }
    }

    /// Whether an agent has enrolled as this device (register entries made
    /// before enrolment have no key yet).
    pub fn is_enrolled(&self) -> bool {
        self.enrolled_at_ms != 0
    }
}

/// What an enrolled machine is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceKind {
    /// A workstation in the register.
    #[default]
    Workstation,
    /// A wipe station: attests to disks pulled from other machines.
    WipeStation,
}

/// Why and by whom a device was revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationV1 {
    /// When, Unix ms.
    pub revoked_at_ms: i64,
    /// The operator, as `name (role)`.
    pub revoked_by: String,
    /// The reason they gave.
    pub reason: String,
}

/// A one-time enrolment token, stored under the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecordV1 {
    /// When it was created, Unix ms.
    pub created_at_ms: i64,
    /// When it stops working, Unix ms.
    pub expires_at_ms: i64,
    /// The operator who created it, as `name (role)`.
    pub created_by: String,
    /// Site enrolled devices are recorded at.
    pub site: Option<String>,
    /// Set once a device has enrolled with it.
    pub used: Option<TokenUseV1>,
    /// The asset tag of the register entry a machine enrolling with this token becomes.
    #[serde(default)]
    pub asset_tag: Option<String>,
    /// What the enrolling machine becomes (tokens from before this field: workstation).
    #[serde(default)]
    pub kind: DeviceKind,
}

/// When a token was used and by which device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUseV1 {
    /// When, Unix ms.
    pub at_ms: i64,
    /// The device it enrolled.
    pub device_id: DeviceId,
}

/// A signed envelope exactly as received, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEnvelopeV1 {
    /// The signed payload bytes, verbatim.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// The payload type the signature covers.
    pub payload_type: String,
    /// The Ed25519 signature, verbatim.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// When the server accepted it, Unix ms.
    pub received_at_ms: i64,
}

#[derive(Serialize, Deserialize)]
pub(super) enum VersionedDevice {
    V1(DeviceRecordV1),
}

#[derive(Serialize, Deserialize)]
pub(super) enum VersionedToken {
    V1(TokenRecordV1),
}

#[derive(Serialize, Deserialize)]
pub(super) enum VersionedEnvelope {
    V1(StoredEnvelopeV1),
}

impl From<VersionedDevice> for DeviceRecordV1 {
    fn from(v: VersionedDevice) -> Self {
        match v {
            VersionedDevice::V1(record) => record,
        }
    }
}

impl From<VersionedToken> for TokenRecordV1 {
    fn from(v: VersionedToken) -> Self {
        match v {
            VersionedToken::V1(record) => record,
        }
    }
}

impl From<VersionedEnvelope> for StoredEnvelopeV1 {
    fn from(v: VersionedEnvelope) -> Self {
        match v {
            VersionedEnvelope::V1(record) => record,
        }
    }
}
