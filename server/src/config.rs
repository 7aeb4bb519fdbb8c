//! The server's data directory layout and its configuration file.
//!
//! `custodian-server init` writes `server.toml` into the data directory with
//! every setting at its default; `serve` and `check-config` read it back.
//! Unknown keys are an error: a typo in a TLS or enrolment setting must fail
//! closed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// The file name of the configuration inside the data directory.
pub const CONFIG_FILE: &str = "server.toml";

/// The server's data directory and the files in it.
#[derive(Debug, Clone)]
pub struct DataDir(PathBuf);

impl DataDir {
    /// The data directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self(root.into())
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.0
    }

    /// The CA certificate (PEM).
    pub fn ca_cert(&self) -> PathBuf {
        self.0.join("ca.pem")
    }

    /// The CA private key (PEM, 0600).
    pub fn ca_key(&self) -> PathBuf {
        self.0.join("ca.key")
    }

    /// The server's TLS certificate (PEM).
    pub fn server_cert(&self) -> PathBuf {
        self.0.join("server.pem")
    }

    /// The server's TLS private key (PEM, 0600).
    pub fn server_key(&self) -> PathBuf {
        self.0.join("server.key")
    }

    /// The Ed25519 signing key for checkpoints and certificates (PKCS#8 PEM, 0600).
    pub fn signing_key(&self) -> PathBuf {
        self.0.join("server-signing.key")
    }

    /// The signing key's public half (SPKI PEM), published to verifiers.
    pub fn signing_public_key(&self) -> PathBuf {
        self.0.join("server-signing.pub.pem")
    }

    /// The sled store.
    pub fn store(&self) -> PathBuf {
        self.0.join("store")
    }

    /// The configuration file.
    pub fn config(&self) -> PathBuf {
        self.0.join(CONFIG_FILE)
    }
}

/// `server.toml` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    device_cert_lifetime: Option<String>,
    device_cert_renewal_grace: Option<String>,
    enrollment_token_ttl: Option<String>,
    max_enrollment_token_ttl: Option<String>,
    operator_cert_lifetime: Option<String>,
    audit_checkpoint_events: Option<u64>,
    audit_checkpoint_interval: Option<String>,
}

/// Checked server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Lifetime of device client certificates.
    pub device_cert_lifetime: Duration,
    /// How long after its device certificate expired an agent may still
    /// renew it (and do nothing else) with it.
    pub device_cert_renewal_grace: Duration,
    /// Default lifetime of enrolment tokens.
    pub enrollment_token_ttl: Duration,
    /// Longest lifetime an operator may ask for a token.
    pub max_enrollment_token_ttl: Duration,
    /// Lifetime of operator certificates.
    pub operator_cert_lifetime: Duration,
    /// Sign an audit checkpoint once this many events are uncovered.
    pub audit_checkpoint_events: u64,
    /// Sign an audit checkpoint at least this often.
    pub audit_checkpoint_interval: Duration,
}

impl Config {
    /// When the server signs audit checkpoints.
    pub fn checkpoint_policy(&self) -> crate::audit::signer::CheckpointPolicy {
        crate::audit::signer::CheckpointPolicy {
            every_events: self.audit_checkpoint_events,
            interval: self.audit_checkpoint_interval,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            device_cert_lifetime: Duration::from_secs(30 * 24 * 3600),
            device_cert_renewal_grace: Duration::from_secs(90 * 24 * 3600),
            enrollment_token_ttl: Duration::from_secs(24 * 3600),
            max_enrollment_token_ttl: Duration::from_secs(30 * 24 * 3600),
            operator_cert_lifetime: Duration::from_secs(365 * 24 * 3600),
            audit_checkpoint_events: 1000,
            audit_checkpoint_interval: Duration::from_secs(3600),
        }
    }
}

const DEFAULT_CONFIG: &str = r#"# Custodian server settings. Durations take units: 30d, 24h, 15m.

# Address the gRPC (TLS 1.3, mutual TLS) listener binds to.
listen = "127.0.0.1:8443"

# Lifetime of device client certificates; agents renew with a third left.
device_cert_lifetime = "30d"

# An agent that could not reach the server until its certificate expired may
# still renew it for this long after (its expired certificate is good for
# renewing and nothing else), so nothing it spooled meanwhile is stranded.
# After that it must be enrolled again. "1s" all but turns this off.
device_cert_renewal_grace = "90d"

# Default and longest lifetime of one-time enrolment tokens.
enrollment_token_ttl = "24h"
max_enrollment_token_ttl = "30d"

# Lifetime of operator certificates issued by `custodian-server operator issue`.
operator_cert_lifetime = "365d"

# Sign an audit checkpoint once this many events are not covered by the
# latest one, and at least this often.
audit_checkpoint_events = 1000
audit_checkpoint_interval = "1h"
"#;

/// Writes the default configuration into a new data directory.
pub(crate) fn write_default(data_dir: &DataDir) -> anyhow::Result<()> {
    custodian_proto::files::write_public(&data_dir.config(), DEFAULT_CONFIG.as_bytes())
        .with_context(|| format!("write {}", data_dir.config().display()))
}

impl Config {
    /// Parses and checks a configuration, reporting every problem at once.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let raw: RawConfig = toml::from_str(text).context("parse configuration")?;
        let defaults = Config::default();
        let mut problems = Vec::new();
        let listen = match raw.listen {
            None => defaults.listen,
            Some(listen) => listen.parse().unwrap_or_else(|_| {
                problems.push(format!("listen: {listen:?} is not an address like 127.0.0.1:8443"));
                defaults.listen
            }),
        };
        let mut duration = |key: &str, value: Option<String>, default: Duration| match value {
            None => default,
            Some(text) => match humantime::parse_duration(&text) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => {
                    problems.push(format!("{key}: must be greater than zero"));
                    default
                }
                Err(e) => {
                    problems.push(format!("{key}: {text:?} is not a duration ({e})"));
                    default
                }
            },
        };
        let config = Config {
            listen,
            device_cert_lifetime: duration(
                "device_cert_lifetime",
                raw.device_cert_lifetime,
                defaults.device_cert_lifetime,
            ),
            device_cert_renewal_grace: duration(
                "device_cert_renewal_grace",
                raw.device_cert_renewal_grace,
                defaults.device_cert_renewal_grace,
            ),
            enrollment_token_ttl: duration(
                "enrollment_token_ttl",
                raw.enrollment_token_ttl,
                defaults.enrollment_token_ttl,
            ),
            max_enrollment_token_ttl: duration(
                "max_enrollment_token_ttl",
                raw.max_enrollment_token_ttl,
                defaults.max_enrollment_token_ttl,
            ),
            operator_cert_lifetime: duration(
                "operator_cert_lifetime",
                raw.operator_cert_lifetime,
                defaults.operator_cert_lifetime,
            ),
            audit_checkpoint_interval: duration(
                "audit_checkpoint_interval",
                raw.audit_checkpoint_interval,
                defaults.audit_checkpoint_interval,
            ),
            audit_checkpoint_events: defaults.audit_checkpoint_events,
        };
        let config = Config {
            audit_checkpoint_events: match raw.audit_checkpoint_events {
                None => defaults.audit_checkpoint_events,
                Some(0) => {
                    problems.push("audit_checkpoint_events: must be greater than zero".to_owned());
                    defaults.audit_checkpoint_events
                }
                Some(n) => n,
            },
            ..config
        };
        if config.enrollment_token_ttl > config.max_enrollment_token_ttl {
            problems.push("enrollment_token_ttl: longer than max_enrollment_token_ttl".to_owned());
        }
        if !problems.is_empty() {
            bail!("invalid configuration:\n  {}", problems.join("\n  "));
        }
        Ok(config)
    }

    /// Loads the configuration from `data_dir` (defaults if it has none) and
    /// checks that the keys and certificates it needs are there.
    pub fn load(data_dir: &DataDir) -> anyhow::Result<Self> {
        if !data_dir.root().is_dir() {
            bail!(
                "{} is not a data directory; create one with `custodian-server init --data-dir {}`",
                data_dir.root().display(),
                data_dir.root().display()
            );
        }
        let path = data_dir.config();
        let config = match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_toml(&text).with_context(|| format!("load {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        let missing: Vec<String> = [
            data_dir.ca_cert(),
            data_dir.ca_key(),
            data_dir.server_cert(),
            data_dir.server_key(),
            data_dir.signing_key(),
        ]
        .iter()
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
        if !missing.is_empty() {
            bail!("the data directory is incomplete; missing: {}", missing.join(", "));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests;
