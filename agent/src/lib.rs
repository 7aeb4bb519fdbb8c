//! The Custodian agent: enrols the workstation, collects what it is, signs
//! each report with the device key, spools it durably, and delivers it to the
//! server over mutual TLS.
//!
//! The agent never opens a listening socket; it only calls out.

pub mod collect;
pub mod daemon;
pub mod keys;
pub mod procfs;
pub mod spool;
pub mod state;
pub mod uplink;
pub mod wipe;

use anyhow::{Context, bail};
use custodian_proto::envelope::{self, REPORT_PAYLOAD_TYPE};
use custodian_proto::identity::DeviceId;
use custodian_proto::v1 as pb;
use prost::Message;
use tracing::info;

use crate::collect::InventorySource;
use crate::keys::DeviceKey;
use crate::spool::Spool;
use crate::state::{Enrollment, StateDir};
use crate::uplink::{Delivery, Uplink};

/// This agent's version, reported with every report.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Sets up logging to stderr at `level` (overridden by `RUST_LOG` when set).
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// What `enroll` needs.
pub struct EnrollArgs<'a> {
    /// Server URL.
    pub server: &'a str,
    /// PEM of the CA to trust, as given by the operator.
    pub ca_pem: &'a str,
    /// The one-time token.
    pub token: &'a str,
}

/// Enrols this machine: generates the device key (if there is none yet),
/// sends a CSR with the token, stores the certificate, then spools and sends
/// a first report. Returns the device id.
pub async fn enroll(state: &StateDir, args: EnrollArgs<'_>, source: &dyn InventorySource) -> anyhow::Result<DeviceId> {
    if let Ok(existing) = state.load_enrollment() {
        bail!(
            "{} is already enrolled as device {}; use a new state directory to enrol again",
            state.root().display(),
            existing.device_id
        );
    }
    std::fs::create_dir_all(state.root()).with_context(|| format!("create {}", state.root().display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(state.root(), std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("set permissions on {}", state.root().display()))?;
    }
    let key = DeviceKey::load_or_generate(state)?;
    let inventory = source.collect();
    let serial = custodian_proto::readable_value(inventory.system.as_ref().and_then(|s| s.serial.as_ref()));
    let res = uplink::enroll(args.server, args.ca_pem, args.token, &key, &inventory.hostname, serial).await?;
    let device_id: DeviceId = res.device_id.parse().context("the server sent an invalid device id")?;
    for (path, contents) in [(state.ca(), args.ca_pem), (state.cert(), res.certificate_pem.as_str())] {
        custodian_proto::files::replace(&path, contents.as_bytes(), 0o644)
            .with_context(|| format!("write {}", path.display()))?;
    }
    state.save_enrollment(&Enrollment {
        server: args.server.to_owned(),
        device_id,
        cert_issued_at_ms: custodian_proto::now_ms(),
        cert_not_after_ms: res.not_after_ms,
    })?;
    info!(%device_id, "enrolled");
    Ok(device_id)
}

/// Builds and signs a report with sequence number `seq` carrying the full inventory.
pub fn sign_report(key: &DeviceKey, device_id: DeviceId, seq: u64, inventory: &pb::Inventory) -> pb::SignedEnvelope {
    let report = pb::Report {
        device_id: device_id.to_string(),
        seq,
        collected_at_ms: custodian_proto::now_ms(),
        agent_version: AGENT_VERSION.to_owned(),
        inventory: Some(inventory.clone()),
        heartbeat: None,
    };
    envelope::sign(&key.signing, REPORT_PAYLOAD_TYPE, report.encode_to_vec())
}

/// Builds and signs a heartbeat with sequence number `seq`: a report that
/// carries only the hash of the (unchanged) inventory.
pub fn sign_heartbeat(
    key: &DeviceKey,
    device_id: DeviceId,
    seq: u64,
    inventory_sha256: [u8; 32],
) -> pb::SignedEnvelope {
    let report = pb::Report {
        device_id: device_id.to_string(),
        seq,
        collected_at_ms: custodian_proto::now_ms(),
        agent_version: AGENT_VERSION.to_owned(),
        inventory: None,
        heartbeat: Some(pb::Heartbeat { inventory_sha256: inventory_sha256.to_vec() }),
    };
    envelope::sign(&key.signing, REPORT_PAYLOAD_TYPE, report.encode_to_vec())
}

/// What [`Agent::spool_report`] spooled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spooled {
    /// A full inventory (the first, a changed one, or one the server asked for).
    Inventory {
        /// Its sequence number.
        seq: u64,
    },
    /// A heartbeat: the inventory is unchanged since the last full one.
    Heartbeat {
        /// Its sequence number.
        seq: u64,
    },
}

impl Spooled {
    /// The sequence number.
    pub fn seq(self) -> u64 {
        match self {
            Spooled::Inventory { seq } | Spooled::Heartbeat { seq } => seq,
        }
    }
}

/// The agent's working parts once enrolled.
pub struct Agent {
    /// The state directory.
    pub state: StateDir,
    /// The enrolment record.
    pub enrollment: Enrollment,
    /// The device key.
    pub key: DeviceKey,
    /// The spool.
    pub spool: Spool,
}

impl Agent {
    /// Opens an enrolled agent's state.
    pub fn open(state: StateDir) -> anyhow::Result<Self> {
        let enrollment = state.load_enrollment()?;
        let key = DeviceKey::load(&state)?;
        let spool = Spool::open(&state.spool())?;
        Ok(Self { state, enrollment, key, spool })
    }

    /// Collects, signs and durably spools one report: the full inventory
    /// when it differs from the last one spooled (or the server asked for
    /// it), otherwise a heartbeat carrying its hash.
    pub fn spool_report(&self, source: &dyn InventorySource) -> anyhow::Result<Spooled> {
        let inventory = source.collect();
        let sha256 = collect::inventory_sha256(&inventory);
        let device_id = self.enrollment.device_id;
        if self.spool.inventory_sha256()? == Some(sha256) {
            let seq = self.spool.append(|seq| sign_heartbeat(&self.key, device_id, seq, sha256))?;
            info!(seq, pending = self.spool.len(), "heartbeat spooled (inventory unchanged)");
            return Ok(Spooled::Heartbeat { seq });
        }
        let seq = self.spool.append(|seq| sign_report(&self.key, device_id, seq, &inventory))?;
        self.spool.set_inventory_sha256(Some(sha256))?;
        self.spool.flush()?;
        info!(seq, pending = self.spool.len(), "full inventory spooled");
        Ok(Spooled::Inventory { seq })
    }

    /// Connects (to `server`, or the enrolled server) and delivers everything spooled.
    pub async fn deliver(&self, server: Option<&str>) -> anyhow::Result<Delivery> {
        let server = server.unwrap_or(&self.enrollment.server);
        let mut uplink = Uplink::connect(&self.state, server, &self.key).await?;
        let delivery = uplink.deliver(&self.spool).await?;
        info!(
            accepted = delivery.accepted,
            duplicates = delivery.duplicates,
            rejected = delivery.rejected.len(),
            "delivered"
        );
        Ok(delivery)
    }

    /// Renews the certificate if a third or less of its lifetime is left.
    pub async fn renew_if_due(&mut self, server: Option<&str>) -> anyhow::Result<bool> {
        if !self.enrollment.needs_renewal(custodian_proto::now_ms()) {
            return Ok(false);
        }
        let server = server.unwrap_or(&self.enrollment.server).to_owned();
        let expired_at = Some(self.enrollment.cert_not_after_ms).filter(|at| *at < custodian_proto::now_ms());
        let renewed = async {
            let mut uplink = Uplink::connect(&self.state, &server, &self.key).await?;
            uplink.renew(&self.state, &mut self.enrollment, &self.key).await
        };
        match (renewed.await, expired_at) {
            (Ok(()), _) => Ok(true),
            (Err(e), None) => Err(e),
            // Servers accept an expired certificate for renewal only within
            // their grace (90 days by default); say so, since the TLS error
            // alone reads like a network fault.
            (Err(e), Some(at)) => Err(e.context(format!(
                "the device certificate expired at {}; the server renews an expired certificate only within its \
                 device_cert_renewal_grace, and after that this machine must be enrolled again",
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(at).unwrap_or(0))
                )
            ))),
        }
    }

    /// Signs and durably spools a wipe attestation in the same sequence as
    /// reports; returns its sequence number.
    pub fn spool_attestation(&self, attestation: &pb::WipeAttestation) -> anyhow::Result<u64> {
        // Noted with it, so that a marker left by a crash just after this
        // is known to be attested already (see `recover_interrupted_wipe`).
        let wipe = wipe_key(attestation);
        let seq = self.spool.append_noting(
            |seq| wipe::attestation::sign(&self.key.signing, seq, attestation),
            Some((LAST_WIPE_ATTESTED_KEY, wipe.as_bytes())),
        )?;
        info!(seq, pending = self.spool.len(), "wipe attestation spooled");
        Ok(seq)
    }

    /// Turns a wipe marker left by a crashed or killed wipe into a signed
    /// attestation that says the wipe was interrupted, and spools it. Returns
    /// its sequence number, or `None` when there was no marker.
    pub fn recover_interrupted_wipe(&self) -> anyhow::Result<Option<u64>> {
        let marker = wipe::attestation::marker_path(&self.state);
        let Some(mut attestation) = wipe::attestation::read_marker(&marker)? else {
            return Ok(None);
        };
        if self.spool.note(LAST_WIPE_ATTESTED_KEY)?.as_deref() == Some(wipe_key(&attestation).as_bytes()) {
            // The crash came after the result was spooled and before the
            // marker went: the wipe is attested, as it ended.
            wipe::attestation::remove_marker(&marker)?;
            info!(device = %attestation.device_path, "a wipe marker was left after its result was spooled; removed");
            return Ok(None);
        }
        attestation.result = Some(wipe::attestation::interrupted(wipe::attestation::CRASH_REASON));
        attestation.finished_at_ms = custodian_proto::now_ms().max(attestation.started_at_ms);
        let seq = self.spool_attestation(&attestation)?;
        wipe::attestation::remove_marker(&marker)?;
        tracing::warn!(seq, device = %attestation.device_path, "an interrupted wipe was found and attested as interrupted");
        Ok(Some(seq))
    }
}

/// The spool note naming the last wipe attested (see [`wipe_key`]).
const LAST_WIPE_ATTESTED_KEY: &[u8] = b"last_wipe_attested";

/// Which wipe an attestation or marker is about: when it started, and what.
fn wipe_key(attestation: &pb::WipeAttestation) -> String {
    format!("{} {}", attestation.started_at_ms, attestation.device_path)
}

#[cfg(test)]
mod tests;
