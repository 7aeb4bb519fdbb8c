//! Tests for what `custodianctl` shows of a signed envelope.

use custodian_proto::envelope::{REPORT_PAYLOAD_TYPE, WIPE_ATTESTATION_PAYLOAD_TYPE, generate_key, sign};

use super::*;

fn report(hostname: &str) -> pb::Report {
    pb::Report {
        seq: 7,
        inventory: Some(pb::Inventory { hostname: hostname.to_owned(), ..Default::default() }),
        ..Default::default()
    }
}

/// A report signed by a fresh key, and that key as hex.
fn signed(report: &pb::Report) -> (pb::SignedEnvelope, String) {
    let key = generate_key();
    (sign(&key, REPORT_PAYLOAD_TYPE, report.encode_to_vec()), hex::encode(key.verifying_key().to_bytes()))
}

#[test]
fn a_verified_envelope_shows_the_signed_content() {
    let (envelope, key) = signed(&report("ward7-pc01"));
    let checked = check(&key, &envelope, REPORT_PAYLOAD_TYPE, &report("ward7-pc01"));
    assert_eq!(checked.verdict, Verdict::Verified);
    assert_eq!(checked.content, report("ward7-pc01"));
    assert!(checked.verdict.text().starts_with("verified by custodianctl"));
}

#[test]
fn a_server_copy_that_differs_from_the_signed_one_is_not_shown() {
    let (envelope, key) = signed(&report("ward7-pc01"));
    let checked = check(&key, &envelope, REPORT_PAYLOAD_TYPE, &report("someone-else"));
    assert_eq!(checked.verdict, Verdict::ServerCopyDiffers);
    assert_eq!(checked.content, report("ward7-pc01"), "the signed content is shown, not the server's");
    assert!(checked.verdict.signature_verifies());
    assert!(checked.verdict.text().contains("SERVER'S DECODED COPY DIFFERS"), "{}", checked.verdict.text());
}

#[test]
fn a_bad_signature_shows_the_server_copy_and_says_so() {
    let (mut envelope, key) = signed(&report("ward7-pc01"));
    envelope.payload = report("forged").encode_to_vec();
    let checked = check(&key, &envelope, REPORT_PAYLOAD_TYPE, &report("forged"));
    assert!(!checked.verdict.signature_verifies());
    assert_eq!(checked.content, report("forged"));
    assert!(checked.verdict.text().starts_with("DOES NOT VERIFY: "), "{}", checked.verdict.text());
    assert!(checked.verdict.text().ends_with("(showing the server's copy)"), "{}", checked.verdict.text());
}

#[test]
fn the_wrong_payload_type_or_key_does_not_verify() {
    let (envelope, key) = signed(&report("ward7-pc01"));
    let wrong_type = check(&key, &envelope, WIPE_ATTESTATION_PAYLOAD_TYPE, &pb::WipeAttestation::default());
    assert!(!wrong_type.verdict.signature_verifies(), "{:?}", wrong_type.verdict);
    let no_key = check("not hex", &envelope, REPORT_PAYLOAD_TYPE, &report("ward7-pc01"));
    assert_eq!(no_key.verdict, Verdict::DoesNotVerify("the server sent no valid public key".to_owned()));
    let (_, other_key) = signed(&report("x"));
    assert!(!check(&other_key, &envelope, REPORT_PAYLOAD_TYPE, &report("ward7-pc01")).verdict.signature_verifies());
}
