//! Identities carried in Custodian client certificates.
//!
//! Every client certificate the Custodian CA issues carries exactly one URI
//! subject alternative name:
//! - a device: `urn:custodian:device:<uuid>`;
//! - an operator: `urn:custodian:operator:<role>:<name>`.
//!
//! The server takes identity from this URI in the verified certificate, never
//! from a field in a message.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

const DEVICE_URI_PREFIX: &str = "urn:custodian:device:";
const OPERATOR_URI_PREFIX: &str = "urn:custodian:operator:";

/// A device's id: a random UUID the server assigns at enrolment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceId(Uuid);

impl DeviceId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The id's 16 bytes, for storage keys.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// The id from its 16 bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Uuid::from_bytes(bytes))
    }

    /// The certificate URI naming this device.
    pub fn uri(&self) -> String {
        format!("{DEVICE_URI_PREFIX}{}", self.0)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A string was not a device id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a device id: {0:?}")]
pub struct ParseDeviceIdError(pub String);

impl FromStr for DeviceId {
    type Err = ParseDeviceIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self).map_err(|_| ParseDeviceIdError(s.to_owned()))
    }
}

/// An operator's role. Each operator RPC names the roles it admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Reads the register; answers "what is this machine and what state is it in".
    ServiceDesk,
    /// Creates enrolment tokens, adds devices, moves them through the lifecycle.
    Engineer,
    /// Information governance: reads everything and exports the audit trail; moves nothing.
    IgAuditor,
    /// Everything, including issuing operators.
    Admin,
}

impl Role {
    /// Every role, in the order they are listed to users.
    pub const ALL: [Role; 4] = [Role::ServiceDesk, Role::Engineer, Role::IgAuditor, Role::Admin];

    /// The role's name as written on the command line and in certificates.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ServiceDesk => "service-desk",
            Role::Engineer => "engineer",
            Role::IgAuditor => "ig-auditor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string was not a role name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (expected one of: service-desk, engineer, ig-auditor, admin)")]
pub struct ParseRoleError(pub String);

impl FromStr for Role {
    type Err = ParseRoleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|role| role.as_str() == s).ok_or_else(|| ParseRoleError(s.to_owned()))
    }
}

/// An operator's name: 1 to 64 characters from `A-Z a-z 0-9 . _ @ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OperatorName(String);

/// A string was not a valid operator name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid operator name {0:?}: use 1 to 64 of the characters A-Z a-z 0-9 . _ @ -")]
pub struct ParseOperatorNameError(pub String);

impl FromStr for OperatorName {
    type Err = ParseOperatorNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = !s.is_empty()
            && s.len() <= 64
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
        if valid { Ok(Self(s.to_owned())) } else { Err(ParseOperatorNameError(s.to_owned())) }
    }
}

impl OperatorName {
    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OperatorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who is calling, as named by a verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// An enrolled device.
    Device(DeviceId),
    /// A person with an operator certificate.
    Operator {
        /// Their name.
        name: OperatorName,
        /// Their role.
        role: Role,
    },
}

impl Identity {
    /// The URI that names this identity in a certificate.
    pub fn uri(&self) -> String {
        match self {
            Identity::Device(device_id) => device_id.uri(),
            Identity::Operator { name, role } => format!("{OPERATOR_URI_PREFIX}{role}:{name}"),
        }
    }

    /// Reads an identity from a certificate URI, or `None` if it is not one of ours.
    pub fn from_uri(uri: &str) -> Option<Self> {
        if let Some(id) = uri.strip_prefix(DEVICE_URI_PREFIX) {
            return id.parse().ok().map(Identity::Device);
        }
        let rest = uri.strip_prefix(OPERATOR_URI_PREFIX)?;
        let (role, name) = rest.split_once(':')?;
        Some(Identity::Operator { name: name.parse().ok()?, role: role.parse().ok()? })
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Device(device_id) => write!(f, "device {device_id}"),
            Identity::Operator { name, role } => write!(f, "{name} ({role})"),
        }
    }
}

#[cfg(test)]
mod tests;
