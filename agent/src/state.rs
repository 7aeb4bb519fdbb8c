//! The agent's state directory: its key, certificate, the CA it trusts,
//! what it knows about its enrolment, and the spool.
//!
//! ```text
//! STATE_DIR/
//!   device.key        Ed25519 private key, PKCS#8 PEM, 0600; never leaves the machine
//!   device.pem        client certificate issued by the Custodian CA
//!   ca.pem            the CA certificate the agent trusts
//!   enrollment.toml   server URL, device id, certificate expiry
//!   spool/            sled: signed envelopes not yet acknowledged
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use custodian_proto::identity::DeviceId;
use serde::{Deserialize, Serialize};

/// The agent's state directory.
#[derive(Debug, Clone)]
pub struct StateDir(PathBuf);

impl StateDir {
    /// The state directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self(root.into())
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.0
    }

    /// The device's private key.
    pub fn key(&self) -> PathBuf {
        self.0.join("device.key")
    }

    /// The device's client certificate.
    pub fn cert(&self) -> PathBuf {
        self.0.join("device.pem")
    }

    /// The CA certificate the agent trusts.
    pub fn ca(&self) -> PathBuf {
        self.0.join("ca.pem")
    }

    /// What the agent knows about its enrolment.
    pub fn enrollment(&self) -> PathBuf {
        self.0.join("enrollment.toml")
    }

    /// The spool database.
    pub fn spool(&self) -> PathBuf {
        self.0.join("spool")
    }

    /// Reads the enrolment record, or explains that the agent is not enrolled.
    pub fn load_enrollment(&self) -> anyhow::Result<Enrollment> {
        let path = self.enrollment();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("this agent is not enrolled ({} not found); run `custodian-agent enroll` first", path.display())
            }
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        toml::from_str(&text).with_context(|| format!("parse {}", path.display()))
    }

    /// Writes the enrolment record atomically.
    pub fn save_enrollment(&self, enrollment: &Enrollment) -> anyhow::Result<()> {
        let text = toml::to_string(enrollment).context("encode enrolment record")?;
        custodian_proto::files::replace(&self.enrollment(), text.as_bytes(), 0o644)
            .with_context(|| format!("write {}", self.enrollment().display()))
    }

    /// Reads a PEM file from the state directory.
    pub fn read(&self, path: &Path) -> anyhow::Result<String> {
        std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))
    }
}

/// What the agent records when it enrols and renews.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    /// The server's URL.
    pub server: String,
    /// The id the server assigned.
    pub device_id: DeviceId,
    /// When the current certificate was issued, Unix ms.
    pub cert_issued_at_ms: i64,
    /// When the current certificate expires, Unix ms.
    pub cert_not_after_ms: i64,
}

impl Enrollment {
    /// Whether the certificate should be renewed at `now_ms`: when at most a
    /// third of its lifetime is left.
    pub fn needs_renewal(&self, now_ms: i64) -> bool {
        let lifetime = self.cert_not_after_ms - self.cert_issued_at_ms;
        self.cert_not_after_ms - now_ms <= lifetime / 3
    }
}

#[cfg(test)]
mod tests;
