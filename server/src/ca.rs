//! The Custodian CA: creates the data directory's keys and certificates and
//! issues device and operator client certificates.
//!
//! The CA and the server's TLS certificate use ECDSA P-256. Device keys are
//! Ed25519 and generated on the device; the CA only ever sees their CSRs.
//! Operator keys are generated here by `custodian-server operator issue`.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use custodian_proto::identity::{DeviceId, Identity, OperatorName, Role};
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;

use crate::config::DataDir;
use custodian_proto::files::{write_private, write_public};

/// How long the CA certificate is valid.
const CA_LIFETIME: Duration = Duration::from_secs(20 * 365 * 24 * 3600);
/// How long the server's TLS certificate is valid.
const SERVER_CERT_LIFETIME: Duration = Duration::from_secs(2 * 365 * 24 * 3600);
/// Certificates are back-dated by this much to tolerate clock skew.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Why a CSR could not be turned into a device certificate.
#[derive(Debug, thiserror::Error)]
pub enum IssueDeviceCertError {
    /// The CSR did not parse or its self-signature did not verify.
    #[error("the CSR is malformed or its signature does not verify")]
    BadCsr,
    /// The CSR's key is not Ed25519.
    #[error("the CSR's key is not Ed25519 (device keys must be Ed25519)")]
    NotEd25519,
    /// The Ed25519 key is not a valid point or has small order.
    #[error("the CSR's Ed25519 key is weak or invalid")]
    WeakKey,
    /// rcgen failed to sign (an internal error).
    #[error("signing the certificate failed: {0}")]
    Sign(rcgen::Error),
}

/// An issued certificate in PEM and its expiry.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The certificate, PEM.
    pub pem: String,
    /// When it expires, Unix milliseconds.
    pub not_after_ms: i64,
}

/// The CA's certificate and key, loaded from the data directory.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl Ca {
    /// Loads the CA from `data_dir`.
    pub fn load(data_dir: &DataDir) -> anyhow::Result<Self> {
        let cert_pem = std::fs::read_to_string(data_dir.ca_cert())
            .with_context(|| format!("read {}", data_dir.ca_cert().display()))?;
        let key_pem = std::fs::read_to_string(data_dir.ca_key())
            .with_context(|| format!("read {}", data_dir.ca_key().display()))?;
        let key = KeyPair::from_pem(&key_pem).context("parse CA key")?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).context("parse CA certificate")?;
        Ok(Self { issuer, cert_pem })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a client certificate naming `device_id` for the Ed25519 key in
    /// `csr_pem`. Everything but the key is ignored from the CSR. Returns the
    /// certificate and the verified device key.
    pub fn issue_device_cert(
        &self,
        csr_pem: &str,
        device_id: DeviceId,
        lifetime: Duration,
    ) -> Result<(IssuedCert, VerifyingKey), IssueDeviceCertError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|_| IssueDeviceCertError::BadCsr)?;
        if csr.public_key.algorithm() != &rcgen::PKCS_ED25519 {
            return Err(IssueDeviceCertError::NotEd25519);
        }
        let raw: [u8; 32] = rcgen::PublicKeyData::der_bytes(&csr.public_key)
            .try_into()
            .map_err(|_| IssueDeviceCertError::NotEd25519)?;
        let key = VerifyingKey::from_bytes(&raw).map_err(|_| IssueDeviceCertError::WeakKey)?;
        if key.is_weak() {
            return Err(IssueDeviceCertError::WeakKey);
        }
        let identity = Identity::Device(device_id);
        let params =
            client_params(&identity, &format!("device {device_id}"), lifetime).map_err(IssueDeviceCertError::Sign)?;
        let cert = params.signed_by(&csr.public_key, &self.issuer).map_err(IssueDeviceCertError::Sign)?;
        Ok((IssuedCert { pem: cert.pem(), not_after_ms: to_ms(params.not_after) }, key))
    }

    /// Issues an operator certificate and its freshly generated key (PEM).
    pub fn issue_operator(
        &self,
        name: &OperatorName,
        role: Role,
        lifetime: Duration,
    ) -> anyhow::Result<(IssuedCert, String)> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("generate operator key")?;
        let identity = Identity::Operator { name: name.clone(), role };
        let params = client_params(&identity, &format!("{name} ({role})"), lifetime)?;
        let cert = params.signed_by(&key, &self.issuer).context("sign operator certificate")?;
        Ok((IssuedCert { pem: cert.pem(), not_after_ms: to_ms(params.not_after) }, key.serialize_pem()))
    }
}

/// Certificate parameters for a client certificate naming `identity`.
fn client_params(
    identity: &Identity,
    common_name: &str,
    lifetime: Duration,
) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.distinguished_name.push(DnType::OrganizationName, "Custodian");
    params.subject_alt_names = vec![SanType::URI(identity.uri().try_into()?)];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    set_validity(&mut params, lifetime);
    params.serial_number = Some(random_serial());
    Ok(params)
}

fn set_validity(params: &mut CertificateParams, lifetime: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + lifetime;
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // Keep the serial positive.
    SerialNumber::from_slice(&bytes)
}

fn to_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Creates a new data directory: CA, server TLS certificate for `sans`, server
/// signing key, default config and an empty store. Refuses to touch a data
/// directory that already holds anything.
pub fn init(data_dir: &DataDir, sans: &[String]) -> anyhow::Result<()> {
    let root = data_dir.root();
    if root.exists() && std::fs::read_dir(root).with_context(|| format!("read {}", root.display()))?.next().is_some() {
        bail!("{} already exists and is not empty; refusing to overwrite an existing data directory", root.display());
    }
    std::fs::create_dir_all(root).with_context(|| format!("create {}", root.display()))?;
    set_dir_private(root)?;

    // The CA.
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("generate CA key")?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name.push(DnType::CommonName, "Custodian CA");
    ca_params.distinguished_name.push(DnType::OrganizationName, "Custodian");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    set_validity(&mut ca_params, CA_LIFETIME);
    ca_params.serial_number = Some(random_serial());
    let ca_cert = ca_params.self_signed(&ca_key).context("self-sign CA certificate")?;
    write_private(&data_dir.ca_key(), ca_key.serialize_pem().as_bytes())?;
    write_public(&data_dir.ca_cert(), ca_cert.pem().as_bytes())?;

    // The server's TLS certificate.
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("generate server key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "Custodian server");
    params.subject_alt_names = sans
        .iter()
        .map(|san| match san.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => san.clone().try_into().map(SanType::DnsName),
        })
        .collect::<Result<_, _>>()
        .context("server certificate names")?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    set_validity(&mut params, SERVER_CERT_LIFETIME);
    params.serial_number = Some(random_serial());
    let server_cert = params.signed_by(&server_key, &issuer).context("sign server certificate")?;
    write_private(&data_dir.server_key(), server_key.serialize_pem().as_bytes())?;
    write_public(&data_dir.server_cert(), server_cert.pem().as_bytes())?;

    // The signing key for checkpoints and certificates (Ed25519, so that stock
    // `openssl pkeyutl -verify -rawin` checks what it signs).
    let signing_key = custodian_proto::envelope::generate_key();
    let private_pem = signing_key.to_pkcs8_pem(LineEnding::LF).context("encode signing key")?;
    let public_pem =
        signing_key.verifying_key().to_public_key_pem(LineEnding::LF).context("encode signing public key")?;
    write_private(&data_dir.signing_key(), private_pem.as_bytes())?;
    write_public(&data_dir.signing_public_key(), public_pem.as_bytes())?;

    crate::config::write_default(data_dir)?;
    crate::store::Store::open(&data_dir.store()).context("create store")?;
    Ok(())
}

fn set_dir_private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("set permissions on {}", path.display()))
}

#[cfg(test)]
mod tests;
