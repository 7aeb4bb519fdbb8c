//! The certificate of sanitisation (issue 7): for a disposed machine, one
//! entry per disk of its latest inventory with the fields of NIST SP 800-88
//! Rev. 1 Appendix G's sample certificate, the SHA-256 of the attestation or
//! destruction record each rests on, the disposal, and the disposal event's
//! inclusion proof against a signed audit checkpoint. `certificate.json` is
//! signed as it is with the server's signing key (Ed25519), so stock OpenSSL
//! verifies it; [`verify_certificate_dir`] checks that and every piece of
//! evidence. Format: `docs/certificate.md`.

use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use custodian_proto::envelope::WIPE_ATTESTATION_PAYLOAD_TYPE;
use custodian_proto::v1 as pb;
use ed25519_dalek::{Signature, VerifyingKey};
use prost::Message;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::checkpoint::load_verifying_key;
use crate::audit::event::AuditEvent;
use crate::audit::verify::InclusionProof;
use crate::disposal::DestructionRecord;

/// The `format` of certificates this build writes.
pub const CERTIFICATE_FORMAT: &str = "custodian-certificate-of-sanitisation/1";
/// The certificate's file name.
pub const CERTIFICATE_FILE: &str = "certificate.json";
/// Its signature's file name.
pub const SIGNATURE_FILE: &str = "certificate.json.sig";
/// The signing key's file name.
pub const PUBLIC_KEY_FILE: &str = "server-signing.pub.pem";

/// A certificate of sanitisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// [`CERTIFICATE_FORMAT`].
    pub format: String,
    /// When it was issued, Unix ms.
    pub issued_at_ms: i64,
    /// The machine.
    pub device: CertificateDevice,
    /// How it left.
    pub disposal: CertificateDisposal,
    /// One entry per fixed disk of its latest inventory.
    pub disks: Vec<CertificateDisk>,
    /// The disposal event and its inclusion proof against a signed checkpoint.
    pub audit: InclusionProof,
}

/// The machine a certificate is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateDevice {
    /// Device id.
    pub device_id: String,
    /// Hostname.
    pub hostname: String,
    /// System serial.
    pub serial: String,
    /// Asset tag.
    pub asset_tag: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// Model.
    pub model: String,
}

/// How the machine left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateDisposal {
    /// Route.
    pub route: String,
    /// Contractor.
    pub contractor: String,
    /// Collection or WEEE consignment reference.
    pub consignment_ref: String,
    /// When, Unix ms.
    pub disposed_at_ms: i64,
    /// Who recorded it.
    pub disposed_by: String,
    /// The disposal audit event.
    pub audit_seq: u64,
}

/// One disk (NIST SP 800-88 Rev. 1 Appendix G fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateDisk {
    /// Media type, e.g. `fixed disk (nvme)`.
    pub media_type: String,
    /// Manufacturer and model as the disk reports them.
    pub model: String,
    /// Serial.
    pub serial: String,
    /// Capacity, bytes.
    pub size_bytes: u64,
    /// The machine it came out of (hostname and device id).
    pub source_machine: String,
    /// `Clear`, `Purge` or `Destroy`.
    pub category: String,
    /// Method, e.g. `clear-random` or `shred`.
    pub method: String,
    /// Tool and version (wipes) or contractor (destruction).
    pub tool: String,
    /// How the result was verified.
    pub verification: String,
    /// Person who did it (wipe operator, or destruction witness).
    pub person: String,
    /// Organisation (the wiping device, or the contractor and its certificate reference).
    pub organisation: String,
    /// When, `YYYY-MM-DD` or RFC 3339.
    pub date: String,
    /// Post-sanitisation destination (the disposal route).
    pub destination: String,
    /// The evidence this entry rests on.
    pub evidence: CertificateEvidence,
}

/// A piece of evidence: a file in the certificate's directory and its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateEvidence {
    /// `wipe_attestation` or `destruction_record`.
    pub kind: String,
    /// Its file, relative to the certificate's directory.
    pub file: String,
    /// SHA-256, hex: of the signed attestation payload, or of the record's canonical bytes.
    pub sha256: String,
    /// For attestations: the signing device's Ed25519 public key, hex.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signer_public_key_hex: String,
}

/// An attestation evidence file: the signed envelope, as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationFile {
    /// The DSSE payload type.
    pub payload_type: String,
    /// The payload (a `custodian.v1.WipeAttestation`), base64.
    pub payload: String,
    /// The Ed25519 signature over the DSSE PAE, base64.
    pub signature: String,
}

/// What [`verify_certificate_dir`] found.
#[derive(Debug, Clone)]
pub struct CertificateSummary {
    /// The machine's hostname.
    pub hostname: String,
    /// Disks covered.
    pub n_disks: usize,
    /// Size of the checkpoint the disposal event is proven against.
    pub checkpoint_size: u64,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks a certificate directory: the signature over `certificate.json`,
/// each piece of evidence (its hash, and an attestation's own signature), and
/// the disposal event's inclusion in the signed checkpoint.
pub fn verify_certificate_dir(dir: &Path) -> anyhow::Result<CertificateSummary> {
    let read = |name: &str| std::fs::read(dir.join(name)).with_context(|| format!("read {}", dir.join(name).display()));
    let bytes = read(CERTIFICATE_FILE)?;
    let signature = read(SIGNATURE_FILE)?;
    let pem = String::from_utf8(read(PUBLIC_KEY_FILE)?).context("the public key is not text")?;
    let key = load_verifying_key(&pem)?;
    let signature =
        Signature::from_slice(&signature).map_err(|_| anyhow::anyhow!("{SIGNATURE_FILE} is not 64 bytes"))?;
    if key.verify_strict(&bytes, &signature).is_err() {
        bail!("{CERTIFICATE_FILE} does not verify against {PUBLIC_KEY_FILE}: it was changed or signed by another key");
    }
    let certificate: Certificate = serde_json::from_slice(&bytes).context("parse the certificate")?;
    if certificate.format != CERTIFICATE_FORMAT {
        bail!("unknown certificate format {:?}", certificate.format);
    }
    for disk in &certificate.disks {
        verify_evidence(dir, disk).with_context(|| format!("disk {}", disk.serial))?;
    }
    let checkpoint = certificate.audit.verify(&key).context("the disposal event's inclusion proof")?;
    let event = AuditEvent::from_bytes(certificate.audit.event.as_bytes()).context("parse the disposal event")?;
    if certificate.audit.seq != certificate.disposal.audit_seq
        || event.device_id.map(|d| d.to_string()).as_deref() != Some(certificate.device.device_id.as_str())
        || event.to.as_deref() != Some("disposed")
    {
        bail!("the proven event is not this machine's disposal");
    }
    Ok(CertificateSummary {
        hostname: certificate.device.hostname,
        n_disks: certificate.disks.len(),
        checkpoint_size: checkpoint.size,
    })
}

fn verify_evidence(dir: &Path, disk: &CertificateDisk) -> anyhow::Result<()> {
    let evidence = &disk.evidence;
    if evidence.file.contains("..") || evidence.file.starts_with('/') {
        bail!("evidence file name {:?} leaves the directory", evidence.file);
    }
    let path = dir.join(&evidence.file);
    let bytes = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
    match evidence.kind.as_str() {
        "destruction_record" => {
            if sha256_hex(&bytes) != evidence.sha256 {
                bail!("{} does not match its hash in the certificate", evidence.file);
            }
            let record: DestructionRecord =
                serde_json::from_slice(&bytes).with_context(|| format!("parse {}", evidence.file))?;
            if !crate::sanitisation::same_serial(&record.serial, &disk.serial) || disk.category != "Destroy" {
                bail!(
                    "{} records the destruction of disk {:?}, but the entry is disk {:?} ({})",
                    evidence.file,
                    record.serial,
                    disk.serial,
                    disk.category
                );
            }
        }
        "wipe_attestation" => {
            let file: AttestationFile =
                serde_json::from_slice(&bytes).with_context(|| format!("parse {}", evidence.file))?;
            let b64 = base64::engine::general_purpose::STANDARD;
            let envelope = pb::SignedEnvelope {
                payload: b64.decode(&file.payload).context("decode the payload")?,
                payload_type: file.payload_type,
                signature: b64.decode(&file.signature).context("decode the signature")?,
            };
            if sha256_hex(&envelope.payload) != evidence.sha256 {
                bail!("{} does not match its hash in the certificate", evidence.file);
            }
            let key_bytes: [u8; 32] = hex::decode(&evidence.signer_public_key_hex)
                .ok()
                .and_then(|b| b.try_into().ok())
                .context("the signer's public key is not 32 bytes of hex")?;
            let key = VerifyingKey::from_bytes(&key_bytes).context("the signer's public key")?;
            let payload = custodian_proto::envelope::verify(&key, &envelope, WIPE_ATTESTATION_PAYLOAD_TYPE)
                .map_err(|e| anyhow::anyhow!("{}: the attestation's signature does not verify: {e}", evidence.file))?;
            let attestation = pb::WipeAttestation::decode(payload)
                .with_context(|| format!("{}: the signed attestation does not decode", evidence.file))?;
            attestation_backs(&attestation, disk)
                .with_context(|| format!("{} does not back the entry", evidence.file))?;
        }
        other => bail!("unknown evidence kind {other:?}"),
    }
    Ok(())
}

/// Whether a verified attestation says what the certificate's entry rests
/// on it for: a passed wipe of this disk, by the method the entry names. A
/// certificate signed over an entry its evidence does not support is the
/// failure this document exists to prevent, so the evidence is read, not
/// only hashed.
fn attestation_backs(attestation: &pb::WipeAttestation, disk: &CertificateDisk) -> anyhow::Result<()> {
    let serial = attestation.disk.as_ref().map_or("", |d| d.serial.as_str());
    if !crate::sanitisation::same_serial(serial, &disk.serial) {
        bail!("it is for disk {serial:?}, but the entry is disk {:?}", disk.serial);
    }
    let outcome = attestation.result.as_ref().map_or(pb::WipeOutcome::Unspecified, |r| r.outcome());
    if outcome != pb::WipeOutcome::Passed {
        let name = outcome.as_str_name().trim_start_matches("WIPE_OUTCOME_").to_lowercase();
        bail!("it records the wipe as {name}, not passed");
    }
    let method = custodian_proto::json::wipe_method_name(attestation.method);
    if disk.method.split(',').next() != Some(method) {
        bail!("it records the method {method}, but the entry says {:?}", disk.method);
    }
    let category = if method.starts_with("purge") { "Purge" } else { "Clear" };
    if disk.category != category {
        bail!("its method {method} is a {category}, but the entry's category is {:?}", disk.category);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
