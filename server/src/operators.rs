//! Issuing operator identities: the files `custodianctl --identity DIR` reads.

use std::path::Path;

use anyhow::{Context, bail};
use custodian_proto::files::{write_private, write_public};
use custodian_proto::identity::{OperatorName, Role};

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
pub fn issue(data_dir: &DataDir, name: &OperatorName, role: Role, out: &Path) -> anyhow::Result<IssuedCert> {
    let config = Config::load(data_dir)?;
    let ca = Ca::load(data_dir)?;
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
    Ok(cert)
}
