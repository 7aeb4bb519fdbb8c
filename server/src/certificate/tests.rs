//! Tests for checking a certificate's evidence against its entries.

use base64::Engine;
use custodian_proto::envelope::{generate_key, sign};

use super::*;
use crate::disposal::DestructionMethod;

const SERIAL: &str = "S3Z9NB0K123456";

fn entry(category: &str, method: &str) -> CertificateDisk {
    CertificateDisk {
        media_type: "fixed disk (sata, solid state)".to_owned(),
        model: "Samsung SSD 870".to_owned(),
        serial: SERIAL.to_owned(),
        size_bytes: 500_107_862_016,
        source_machine: "ward7-pc01".to_owned(),
        category: category.to_owned(),
        method: method.to_owned(),
        tool: String::new(),
        verification: String::new(),
        person: String::new(),
        organisation: String::new(),
        date: String::new(),
        destination: String::new(),
        evidence: CertificateEvidence {
            kind: String::new(),
            file: String::new(),
            sha256: String::new(),
            signer_public_key_hex: String::new(),
        },
    }
}

fn attestation(serial: &str, method: pb::WipeMethod, outcome: pb::WipeOutcome) -> pb::WipeAttestation {
    pb::WipeAttestation {
        disk: Some(pb::WipedDisk { serial: serial.to_owned(), ..Default::default() }),
        method: method.into(),
        passes: 1,
        result: Some(pb::WipeResult { outcome: outcome.into(), ..Default::default() }),
        ..Default::default()
    }
}

/// Writes `attestation`, signed, as the entry's evidence, with its true
/// hash and key, and checks the entry against it.
fn check_attestation(mut disk: CertificateDisk, attestation: &pb::WipeAttestation) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let key = generate_key();
    let envelope = sign(&key, WIPE_ATTESTATION_PAYLOAD_TYPE, attestation.encode_to_vec());
    let b64 = base64::engine::general_purpose::STANDARD;
    let file = AttestationFile {
        payload_type: envelope.payload_type.clone(),
        payload: b64.encode(&envelope.payload),
        signature: b64.encode(&envelope.signature),
    };
    std::fs::write(dir.path().join("attestation.json"), serde_json::to_vec(&file).unwrap()).unwrap();
    disk.evidence = CertificateEvidence {
        kind: "wipe_attestation".to_owned(),
        file: "attestation.json".to_owned(),
        sha256: sha256_hex(&envelope.payload),
        signer_public_key_hex: hex::encode(key.verifying_key().to_bytes()),
    };
    verify_evidence(dir.path(), &disk)
}

fn check_destruction(disk: CertificateDisk, record_serial: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let record = DestructionRecord {
        serial: record_serial.to_owned(),
        method: DestructionMethod::Shred,
        contractor: "Shredco".to_owned(),
        certificate_ref: "CD-2026-17".to_owned(),
        date: "2026-11-20".to_owned(),
        witness: "Jo Bloggs".to_owned(),
        recorded_by: "ida (ig-auditor)".to_owned(),
        recorded_at_ms: 1,
    };
    std::fs::write(dir.path().join("record.json"), record.canonical_bytes()).unwrap();
    let disk = CertificateDisk {
        evidence: CertificateEvidence {
            kind: "destruction_record".to_owned(),
            file: "record.json".to_owned(),
            sha256: record.sha256_hex(),
            signer_public_key_hex: String::new(),
        },
        ..disk
    };
    verify_evidence(dir.path(), &disk)
}

#[track_caller]
fn refused(res: anyhow::Result<()>, expected: &str) {
    let message = format!("{:#}", res.expect_err("the evidence does not back the entry"));
    assert!(message.contains(expected), "{message}");
}

#[test]
fn a_passed_wipe_of_the_disk_backs_its_entry() {
    let passed = attestation(SERIAL, pb::WipeMethod::ClearRandom, pb::WipeOutcome::Passed);
    check_attestation(entry("Clear", "clear-random, 1 pass(es)"), &passed).unwrap();
    // Serials match as the register matches them.
    let passed = attestation(" s3z9nb0k123456", pb::WipeMethod::ClearRandom, pb::WipeOutcome::Passed);
    check_attestation(entry("Clear", "clear-random, 1 pass(es)"), &passed).unwrap();
}

#[test]
fn a_signed_attestation_that_says_otherwise_does_not_back_the_entry() {
    let clear = || entry("Clear", "clear-random, 1 pass(es)");
    let failed = attestation(SERIAL, pb::WipeMethod::ClearRandom, pb::WipeOutcome::Failed);
    refused(check_attestation(clear(), &failed), "it records the wipe as failed, not passed");
    let interrupted = attestation(SERIAL, pb::WipeMethod::ClearRandom, pb::WipeOutcome::Interrupted);
    refused(check_attestation(clear(), &interrupted), "it records the wipe as interrupted, not passed");
    let other_disk = attestation("WD-OTHER-1", pb::WipeMethod::ClearRandom, pb::WipeOutcome::Passed);
    refused(check_attestation(clear(), &other_disk), "it is for disk \"WD-OTHER-1\", but the entry is disk");
    let other_method = attestation(SERIAL, pb::WipeMethod::ClearZero, pb::WipeOutcome::Passed);
    refused(check_attestation(clear(), &other_method), "it records the method clear-zero");
    // A wipe entry claiming a stronger category than its method.
    let passed = attestation(SERIAL, pb::WipeMethod::ClearRandom, pb::WipeOutcome::Passed);
    refused(
        check_attestation(entry("Purge", "clear-random, 1 pass(es)"), &passed),
        "its method clear-random is a Clear, but the entry's category is \"Purge\"",
    );
    refused(check_attestation(entry("Destroy", "clear-random, 1 pass(es)"), &passed), "\"Destroy\"");
}

#[test]
fn a_destruction_record_backs_only_its_own_disk() {
    check_destruction(entry("Destroy", "shred"), SERIAL).unwrap();
    refused(
        check_destruction(entry("Destroy", "shred"), "WD-OTHER-1"),
        "records the destruction of disk \"WD-OTHER-1\"",
    );
    refused(check_destruction(entry("Clear", "clear-random, 1 pass(es)"), SERIAL), "(Clear)");
}
