//! Issuing operator identities: the files `custodianctl --identity DIR` reads.

use std::path::Path;

use anyhow::{Context, bail};
use custodian_proto::files::{write_private, write_public};
use custodian_proto::identity::{OperatorName, Role};

use crate::audit::event::{AuditEvent, EventKind, Evidence};
use crate::ca::{Ca, IssuedCert};
use crate::config::{Config, DataDir};

/// The file names in an operator identity directory.
pub const IDENTITY_CA: &str = "ca.pem";
/// The operator's certificate.
pub const IDENTITY_CERT: &str = "cert.pem";
/// The operator's private key.
pub const IDENTITY_KEY: &str = "key.pem";

/// Issues an operator certificate and writes `ca.pem`, `cert.pem` and
/// `key.pem` (0600) into `out`, which must not already hold an identity.
///
/// The issue is recorded in the audit trail, so the store must not be in use
/// by a running server (then `custodianctl operator issue` does the same).
pub fn issue(data_dir: &DataDir, name: &OperatorName, role: Role, out: &Path) -> anyhow::Result<IssuedCert> {
    let config = Config::load(data_dir)?;
    let ca = Ca::load(data_dir)?;
    let store = crate::store::Store::open(&data_dir.store()).context(
        "open the store to record the new operator in the audit trail (if the server is running, \
         use `custodianctl operator issue` with an admin identity instead)",
    )?;
    for file in [IDENTITY_CA, IDENTITY_CERT, IDENTITY_KEY] {
        if out.join(file).exists() {
            bail!("{} already exists; refusing to overwrite an operator identity", out.join(file).display());
        }
    }
    let (cert, key_pem) = ca.issue_operator(name, role, config.operator_cert_lifetime)?;
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    write_private(&out.join(IDENTITY_KEY), key_pem.as_bytes()).context("write operator key")?;
    write_public(&out.join(IDENTITY_CERT), cert.pem.as_bytes()).context("write operator certificate")?;
    write_public(&out.join(IDENTITY_CA), ca.cert_pem().as_bytes()).context("write CA certificate")?;
    store
        .record_event(issued_event("server (offline operator issue)", name, role, &cert))
        .context("record the audit event")?;
    store.flush_blocking().context("flush the store")?;
    Ok(cert)
}

/// The audit event for an operator certificate issued by `actor`.
pub fn issued_event(actor: &str, name: &OperatorName, role: Role, cert: &IssuedCert) -> AuditEvent {
    let mut event = AuditEvent::new(custodian_proto::now_ms(), actor, EventKind::OperatorIssued, None)
        .with_detail("operator", name.to_string())
        .with_detail("role", role.to_string())
        .with_detail("not_after_ms", cert.not_after_ms.to_string());
    event.evidence.push(Evidence::of("certificate_pem", cert.pem.as_bytes()));
    event
}
