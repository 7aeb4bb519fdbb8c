//! The device key: generated here, kept here (0600), used for the TLS client
//! certificate and for signing reports.

use anyhow::{Context, bail};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use rcgen::{CertificateParams, DnType, KeyPair};

use crate::state::StateDir;

/// The device key and its PEM form (for TLS).
pub struct DeviceKey {
    /// The Ed25519 signing key.
    pub signing: SigningKey,
    /// The same key as PKCS#8 PEM.
    pub pem: String,
}

impl DeviceKey {
    /// Loads the key from the state directory.
    pub fn load(state: &StateDir) -> anyhow::Result<Self> {
        let pem = state.read(&state.key())?;
        let signing = SigningKey::from_pkcs8_pem(&pem).context("parse device key")?;
        Ok(Self { signing, pem })
    }

    /// Loads the key, generating and saving it first if there is none.
    pub fn load_or_generate(state: &StateDir) -> anyhow::Result<Self> {
        if state.key().exists() {
            return Self::load(state);
        }
        let signing = custodian_proto::envelope::generate_key();
        let pem = signing.to_pkcs8_pem(LineEnding::LF).context("encode device key")?.to_string();
        custodian_proto::files::write_private(&state.key(), pem.as_bytes()).context("write device key")?;
        Ok(Self { signing, pem })
    }

    /// A PKCS#10 CSR for this key, in PEM.
    pub fn csr_pem(&self, hostname: &str) -> anyhow::Result<String> {
        let key_pair = KeyPair::from_pem(&self.pem).context("load device key for the CSR")?;
        if key_pair.algorithm() != &rcgen::PKCS_ED25519 {
            bail!("the device key is not Ed25519");
        }
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, hostname);
        let csr = params.serialize_request(&key_pair).context("build CSR")?;
        csr.pem().context("encode CSR")
    }
}
