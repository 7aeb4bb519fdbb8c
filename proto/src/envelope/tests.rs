//! Tests for signed envelopes.

use ed25519_dalek::SigningKey;

use super::*;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

#[test]
fn pae_matches_the_dsse_spec_example() {
    // From the DSSE protocol document: PAE("http://example.com/HelloWorld", "hello world").
    let got = pae("http://example.com/HelloWorld", b"hello world");
    assert_eq!(got, b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec());
}

#[test]
fn a_signed_envelope_verifies_and_returns_the_exact_payload() {
    let key = key(1);
    let envelope = sign(&key, REPORT_PAYLOAD_TYPE, b"payload".to_vec());
    let payload = verify(&key.verifying_key(), &envelope, REPORT_PAYLOAD_TYPE).unwrap();
    assert_eq!(payload, b"payload");
}

#[test]
fn a_changed_payload_byte_fails() {
    let key = key(1);
    let mut envelope = sign(&key, REPORT_PAYLOAD_TYPE, b"payload".to_vec());
    envelope.payload[0] ^= 1;
    let err = verify(&key.verifying_key(), &envelope, REPORT_PAYLOAD_TYPE).unwrap_err();
    assert_eq!(err, VerifyEnvelopeError::BadSignature);
}

#[test]
fn another_keys_signature_fails() {
    let envelope = sign(&key(1), REPORT_PAYLOAD_TYPE, b"payload".to_vec());
    let err = verify(&key(2).verifying_key(), &envelope, REPORT_PAYLOAD_TYPE).unwrap_err();
    assert_eq!(err, VerifyEnvelopeError::BadSignature);
}

#[test]
fn a_signature_for_another_domain_fails_even_with_the_type_relabelled() {
    let key = key(1);
    let mut envelope = sign(&key, "application/vnd.custodian.other+protobuf", b"payload".to_vec());
    let err = verify(&key.verifying_key(), &envelope, REPORT_PAYLOAD_TYPE).unwrap_err();
    assert!(matches!(err, VerifyEnvelopeError::WrongPayloadType { .. }));
    envelope.payload_type = REPORT_PAYLOAD_TYPE.to_owned();
    let err = verify(&key.verifying_key(), &envelope, REPORT_PAYLOAD_TYPE).unwrap_err();
    assert_eq!(err, VerifyEnvelopeError::BadSignature);
}

#[test]
fn a_truncated_signature_is_malformed() {
    let key = key(1);
    let mut envelope = sign(&key, REPORT_PAYLOAD_TYPE, b"payload".to_vec());
    envelope.signature.truncate(63);
    let err = verify(&key.verifying_key(), &envelope, REPORT_PAYLOAD_TYPE).unwrap_err();
    assert_eq!(err, VerifyEnvelopeError::MalformedSignature(63));
}

#[test]
fn a_non_canonical_signature_is_refused() {
    // Adding the group order L to S gives a signature that lax verifiers accept
    // but `verify_strict` must refuse.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let key = key(1);
    let mut envelope = sign(&key, REPORT_PAYLOAD_TYPE, b"payload".to_vec());
    let mut carry = 0u16;
    for (byte, l) in envelope.signature[32..].iter_mut().zip(L) {
        let sum = u16::from(*byte) + u16::from(l) + carry;
        *byte = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    let err = verify(&key.verifying_key(), &envelope, REPORT_PAYLOAD_TYPE).unwrap_err();
    assert_eq!(err, VerifyEnvelopeError::BadSignature);
}
