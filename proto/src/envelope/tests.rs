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
fn generated_keys_are_fresh_and_sign_envelopes_that_verify() {
    let (a, b) = (generate_key(), generate_key());
    assert_ne!(a.to_bytes(), b.to_bytes(), "two generated keys must differ");
    assert_ne!(a.to_bytes(), [0u8; 32], "the secret must come from the random source");
    let envelope = sign(&a, REPORT_PAYLOAD_TYPE, b"payload".to_vec());
    assert!(verify(&a.verifying_key(), &envelope, REPORT_PAYLOAD_TYPE).is_ok());
    assert_eq!(verify(&b.verifying_key(), &envelope, REPORT_PAYLOAD_TYPE), Err(VerifyEnvelopeError::BadSignature));
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

/// The group order L, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// `envelope` with L added to its S: the same equation, non-canonical.
fn with_s_plus_l(mut envelope: SignedEnvelope) -> SignedEnvelope {
    let mut carry = 0u16;
    for (byte, l) in envelope.signature[32..].iter_mut().zip(L) {
        let sum = u16::from(*byte) + u16::from(l) + carry;
        *byte = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    envelope
}

#[test]
fn a_non_canonical_signature_is_refused() {
    // Adding the group order L to S gives a signature that lax verifiers accept
    // but `verify_strict` must refuse.
    let key = key(1);
    let envelope = with_s_plus_l(sign(&key, REPORT_PAYLOAD_TYPE, b"payload".to_vec()));
    let err = verify(&key.verifying_key(), &envelope, REPORT_PAYLOAD_TYPE).unwrap_err();
    assert_eq!(err, VerifyEnvelopeError::BadSignature);
}

/// A signature by `key` whose R is the small-order point with encoding
/// `r_bytes`, made so that the cofactorless equation [S]B = R + [k]A holds:
/// with R the identity, S = k·a. Lax and batch verifiers accept it;
/// `verify_strict` refuses small-order R.
fn small_order_r_envelope(key: &SigningKey, payload: &[u8], r_bytes: [u8; 32]) -> SignedEnvelope {
    use sha2::Digest;
    let message = pae(REPORT_PAYLOAD_TYPE, payload);
    let mut h = sha2::Sha512::new();
    h.update(r_bytes);
    h.update(key.verifying_key().as_bytes());
    h.update(&message);
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    let s = k * key.to_scalar();
    let mut signature = r_bytes.to_vec();
    signature.extend_from_slice(s.as_bytes());
    SignedEnvelope { payload: payload.to_vec(), payload_type: REPORT_PAYLOAD_TYPE.to_owned(), signature }
}

/// The identity's canonical encoding (y = 1), and a non-canonical one (y = p + 1).
const IDENTITY: [u8; 32] = {
    let mut b = [0u8; 32];
    b[0] = 1;
    b
};
const IDENTITY_NON_CANONICAL: [u8; 32] = {
    let mut b = [0xffu8; 32];
    b[0] = 0xee;
    b[31] = 0x7f;
    b
};

#[test]
fn the_small_order_r_forgery_is_one_a_lax_verifier_accepts() {
    // Guards the tests below: the crafted signature really satisfies the
    // equation that bare batch verification checks, so only the strict
    // checks stand in its way.
    let key = key(3);
    for r in [IDENTITY, IDENTITY_NON_CANONICAL] {
        let envelope = small_order_r_envelope(&key, b"payload", r);
        let signature = Signature::from_slice(&envelope.signature).unwrap();
        let message = pae(REPORT_PAYLOAD_TYPE, &envelope.payload);
        if r == IDENTITY {
            // The lax check compares R's bytes with a canonical encoding.
            ed25519_dalek::Verifier::verify(&key.verifying_key(), &message, &signature)
                .expect("the lax check accepts it");
        }
        let other = sign(&key, REPORT_PAYLOAD_TYPE, b"other".to_vec());
        let other_signature = Signature::from_slice(&other.signature).unwrap();
        let other_message = pae(REPORT_PAYLOAD_TYPE, &other.payload);
        ed25519_dalek::verify_batch(
            &[message.as_slice(), other_message.as_slice()],
            &[signature, other_signature],
            &[key.verifying_key(), key.verifying_key()],
        )
        .expect("bare batch verification accepts it");
        assert_eq!(
            verify(&key.verifying_key(), &envelope, REPORT_PAYLOAD_TYPE),
            Err(VerifyEnvelopeError::BadSignature)
        );
    }
}

fn verify_each(items: &[(&VerifyingKey, &SignedEnvelope)]) -> Vec<Result<(), VerifyEnvelopeError>> {
    items.iter().map(|(key, envelope)| verify(key, envelope, REPORT_PAYLOAD_TYPE).map(|_| ())).collect()
}

#[test]
fn verify_many_accepts_a_batch_of_good_envelopes() {
    let keys: Vec<SigningKey> = (1..=20).map(key).collect();
    let envelopes: Vec<SignedEnvelope> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| sign(k, REPORT_PAYLOAD_TYPE, format!("report {i}").into_bytes()))
        .collect();
    let verifying: Vec<VerifyingKey> = keys.iter().map(SigningKey::verifying_key).collect();
    let items: Vec<(&VerifyingKey, &SignedEnvelope)> = verifying.iter().zip(&envelopes).collect();
    let results = verify_many(&items, REPORT_PAYLOAD_TYPE);
    assert_eq!(results.len(), 20);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
}

#[test]
fn verify_many_fails_only_the_bad_envelopes_and_agrees_with_verify() {
    // Good envelopes mixed with every kind of bad one, including the
    // forgeries that bare batch verification would let through.
    let keys: Vec<SigningKey> = (1..=8).map(key).collect();
    let verifying: Vec<VerifyingKey> = keys.iter().map(SigningKey::verifying_key).collect();
    let good = |i: usize| sign(&keys[i % 8], REPORT_PAYLOAD_TYPE, format!("report {i}").into_bytes());
    let mut cases: Vec<(usize, SignedEnvelope, Result<(), VerifyEnvelopeError>)> = Vec::new();
    for i in 0..12 {
        cases.push((i % 8, good(i), Ok(())));
    }
    let mut tampered = good(100);
    tampered.payload[0] ^= 1;
    cases.push((100 % 8, tampered, Err(VerifyEnvelopeError::BadSignature)));
    cases.push((1, good(0), Err(VerifyEnvelopeError::BadSignature))); // another key's signature
    cases.push((2, with_s_plus_l(good(2)), Err(VerifyEnvelopeError::BadSignature)));
    cases.push((3, small_order_r_envelope(&keys[3], b"forged", IDENTITY), Err(VerifyEnvelopeError::BadSignature)));
    cases.push((
        4,
        small_order_r_envelope(&keys[4], b"forged", IDENTITY_NON_CANONICAL),
        Err(VerifyEnvelopeError::BadSignature),
    ));
    let mut short = good(5);
    short.signature.truncate(10);
    cases.push((5, short, Err(VerifyEnvelopeError::MalformedSignature(10))));
    let mut wrong_type = good(6);
    wrong_type.payload_type = WIPE_ATTESTATION_PAYLOAD_TYPE.to_owned();
    cases.push((
        6,
        wrong_type,
        Err(VerifyEnvelopeError::WrongPayloadType {
            expected: REPORT_PAYLOAD_TYPE.to_owned(),
            found: WIPE_ATTESTATION_PAYLOAD_TYPE.to_owned(),
        }),
    ));
    // Interleave bad among good.
    cases.sort_by_key(|(key, envelope, _)| (envelope.payload.len() * 7 + key) % 5);
    let items: Vec<(&VerifyingKey, &SignedEnvelope)> = cases.iter().map(|(k, e, _)| (&verifying[*k], e)).collect();
    let expected: Vec<Result<(), VerifyEnvelopeError>> = cases.iter().map(|(_, _, r)| r.clone()).collect();
    assert_eq!(verify_each(&items), expected, "the single-envelope check disagrees with this test");
    assert_eq!(verify_many(&items, REPORT_PAYLOAD_TYPE), expected);
}

#[test]
fn verify_many_refuses_a_lone_forgery_and_handles_an_empty_batch() {
    let key = key(9);
    let forged = small_order_r_envelope(&key, b"forged", IDENTITY);
    assert_eq!(
        verify_many(&[(&key.verifying_key(), &forged)], REPORT_PAYLOAD_TYPE),
        vec![Err(VerifyEnvelopeError::BadSignature)]
    );
    assert!(verify_many(&[], REPORT_PAYLOAD_TYPE).is_empty());
}

#[test]
fn verify_many_refuses_small_order_forgeries_hidden_among_good_envelopes() {
    // With nothing else wrong in the batch, the batch equation holds: only
    // the strict encoding checks can refuse these.
    let key = key(11);
    for r in [IDENTITY, IDENTITY_NON_CANONICAL] {
        let mut envelopes: Vec<SignedEnvelope> =
            (0..6).map(|i| sign(&key, REPORT_PAYLOAD_TYPE, format!("report {i}").into_bytes())).collect();
        envelopes.insert(3, small_order_r_envelope(&key, b"forged", r));
        let verifying = key.verifying_key();
        let items: Vec<(&VerifyingKey, &SignedEnvelope)> = envelopes.iter().map(|e| (&verifying, e)).collect();
        let results = verify_many(&items, REPORT_PAYLOAD_TYPE);
        for (i, result) in results.iter().enumerate() {
            if i == 3 {
                assert_eq!(result, &Err(VerifyEnvelopeError::BadSignature));
            } else {
                assert_eq!(result, &Ok(()), "envelope {i}");
            }
        }
    }
}

/// A signature whose `R` has the given encoding and whose `S` is canonical:
/// only the encoding checks judge it.
fn signature_with_r(r: [u8; 32]) -> Signature {
    let mut bytes = [0u8; 64];
    bytes[..32].copy_from_slice(&r);
    bytes[32] = 1;
    Signature::from_bytes(&bytes)
}

#[test]
fn every_small_order_encoding_is_refused_before_batching() {
    // The table stands in for decompressing R: each of its entries must
    // decompress to a point of small order, and each must be refused.
    let encodings = small_order_encodings();
    for r in encodings {
        let point = curve25519_dalek::edwards::CompressedEdwardsY(*r).decompress().expect("on the curve");
        assert!(point.is_small_order(), "{r:02x?}");
        assert!(!strictly_encoded(&signature_with_r(*r)), "{r:02x?}");
    }
    // The points of small order have five distinct y values (±1, 0 and the
    // two of the points of order 8), each with both sign bits.
    let distinct: std::collections::BTreeSet<[u8; 32]> = encodings.iter().copied().collect();
    assert_eq!(distinct.len(), 10);
}

#[test]
fn the_encoding_check_agrees_with_decompressing_r() {
    // For y < p, "in the table" must mean exactly "decompresses to a point of
    // small order". Random points of large order and random byte strings
    // (about half of which are not on the curve) are all let through to the
    // batch equation; none decompresses to a small-order point.
    use rand::RngCore;
    let mut rng = rand::thread_rng();
    for i in 0..2000u32 {
        let r = if i % 2 == 0 {
            let mut wide = [0u8; 64];
            rng.fill_bytes(&mut wide);
            (curve25519_dalek::constants::ED25519_BASEPOINT_POINT * Scalar::from_bytes_mod_order_wide(&wide))
                .compress()
                .to_bytes()
        } else {
            let mut bytes = [0u8; 32];
            rng.fill_bytes(&mut bytes);
            bytes[31] &= 0x7f;
            bytes
        };
        let small = curve25519_dalek::edwards::CompressedEdwardsY(r).decompress().is_some_and(|p| p.is_small_order());
        assert_eq!(strictly_encoded(&signature_with_r(r)), !small, "{r:02x?}");
    }
}

#[test]
fn verify_many_refuses_every_small_order_r_and_an_r_off_the_curve() {
    let key = key(12);
    let verifying = key.verifying_key();
    let mut off_curve = [0u8; 32];
    off_curve[0] = (2u8..)
        .find(|y| {
            let mut r = [0u8; 32];
            r[0] = *y;
            curve25519_dalek::edwards::CompressedEdwardsY(r).decompress().is_none()
        })
        .expect("some small y is not on the curve");
    let bad_rs: Vec<[u8; 32]> = small_order_encodings().iter().copied().chain([off_curve]).collect();
    for r in bad_rs {
        let mut envelopes: Vec<SignedEnvelope> =
            (0..4).map(|i| sign(&key, REPORT_PAYLOAD_TYPE, format!("report {i}").into_bytes())).collect();
        envelopes.insert(2, small_order_r_envelope(&key, b"forged", r));
        let items: Vec<(&VerifyingKey, &SignedEnvelope)> = envelopes.iter().map(|e| (&verifying, e)).collect();
        let expected: Vec<Result<(), VerifyEnvelopeError>> =
            (0..5).map(|i| if i == 2 { Err(VerifyEnvelopeError::BadSignature) } else { Ok(()) }).collect();
        assert_eq!(verify_each(&items), expected, "{r:02x?}");
        assert_eq!(verify_many(&items, REPORT_PAYLOAD_TYPE), expected, "{r:02x?}");
    }
}
