//! Tests for the CA: data directory creation and certificate issuance.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use custodian_proto::identity::{DeviceId, Identity};
use ed25519_dalek::pkcs8::{EncodePrivateKey, spki::der::pem::LineEnding};
use rcgen::{CertificateParams, KeyPair};
use x509_parser::pem::parse_x509_pem;

use super::*;
use crate::config::DataDir;

fn data_dir() -> (tempfile::TempDir, DataDir) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = DataDir::new(dir.path().join("data"));
    init(&data_dir, &["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    (dir, data_dir)
}

fn csr_for(key: &KeyPair) -> String {
    CertificateParams::default().serialize_request(key).unwrap().pem().unwrap()
}

fn cert_identity(pem: &str) -> Option<Identity> {
    let (_, pem) = parse_x509_pem(pem.as_bytes()).unwrap();
    crate::peer::identity_of(&pem.parse_x509().unwrap())
}

#[test]
fn init_writes_private_keys_0600_and_refuses_to_run_twice() {
    let (_dir, data_dir) = data_dir();
    for key in [data_dir.ca_key(), data_dir.server_key(), data_dir.signing_key()] {
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key.display());
    }
    let before = std::fs::read(data_dir.ca_key()).unwrap();
    let err = init(&data_dir, &[]).unwrap_err();
    assert!(format!("{err:#}").contains("refusing to overwrite"), "{err:#}");
    assert_eq!(std::fs::read(data_dir.ca_key()).unwrap(), before);
}

#[test]
fn a_device_certificate_names_the_device_and_carries_the_csr_key() {
    let (_dir, data_dir) = data_dir();
    let ca = Ca::load(&data_dir).unwrap();
    let signing = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let key = KeyPair::from_pem(&signing.to_pkcs8_pem(LineEnding::LF).unwrap()).unwrap();
    let device_id = DeviceId::random();
    let (cert, verifying) = ca.issue_device_cert(&csr_for(&key), device_id, Duration::from_secs(3600)).unwrap();
    assert_eq!(verifying, signing.verifying_key());
    assert_eq!(cert_identity(&cert.pem), Some(Identity::Device(device_id)));
    let lifetime_ms = cert.not_after_ms - custodian_proto::now_ms();
    assert!((3_500_000..=3_600_000).contains(&lifetime_ms), "{lifetime_ms}");
}

#[test]
fn a_csr_that_is_not_ed25519_or_not_a_csr_is_refused() {
    let (_dir, data_dir) = data_dir();
    let ca = Ca::load(&data_dir).unwrap();
    let p256 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let err = ca.issue_device_cert(&csr_for(&p256), DeviceId::random(), Duration::from_secs(60)).unwrap_err();
    assert!(matches!(err, IssueDeviceCertError::NotEd25519), "{err}");
    let err = ca.issue_device_cert("not a csr", DeviceId::random(), Duration::from_secs(60)).unwrap_err();
    assert!(matches!(err, IssueDeviceCertError::BadCsr), "{err}");
}

#[test]
fn an_operator_certificate_carries_name_and_role() {
    let (_dir, data_dir) = data_dir();
    let ca = Ca::load(&data_dir).unwrap();
    let name: OperatorName = "j.bloggs".parse().unwrap();
    let (cert, key_pem) = ca.issue_operator(&name, Role::IgAuditor, Duration::from_secs(60)).unwrap();
    assert!(key_pem.contains("PRIVATE KEY"));
    assert_eq!(cert_identity(&cert.pem), Some(Identity::Operator { name, role: Role::IgAuditor }));
}
