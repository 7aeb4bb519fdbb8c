//! Signed envelopes: DSSE pre-authentication encoding plus Ed25519.
//!
//! A [`SignedEnvelope`] carries the exact bytes of a protobuf message, the
//! type of that message, and a signature over
//! `PAE(payload_type, payload) = "DSSEv1" SP LEN(type) SP type SP LEN(payload) SP payload`
//! (the same encoding as DSSE and sigstore). Binding the type into the signed
//! bytes separates the signing domains: a signed report can never be taken for
//! a wipe attestation. Verification is strict (`verify_strict`: non-canonical
//! signatures and small-order keys are refused) and happens over the bytes as
//! received, before anything decodes them; protobuf encoding is not canonical,
//! so nothing is ever re-encoded and then verified.
//!
//! [`verify_many`] checks envelopes that arrive together in one batch
//! equation, about twice as fast per envelope as checking them one by one;
//! see its documentation for how it stays strict.

use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::v1::SignedEnvelope;

/// Payload type of a signed [`crate::v1::Report`].
pub const REPORT_PAYLOAD_TYPE: &str = "application/vnd.custodian.report.v1+protobuf";

/// Payload type of a signed [`crate::v1::WipeAttestation`].
pub const WIPE_ATTESTATION_PAYLOAD_TYPE: &str = "application/vnd.custodian.wipe-attestation.v1+protobuf";

/// Why an envelope failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyEnvelopeError {
    /// The envelope claims a different payload type than the caller expects.
    #[error("payload type is {found:?}, expected {expected:?}")]
    WrongPayloadType {
        /// The type the caller expects.
        expected: String,
        /// The type the envelope carries.
        found: String,
    },
    /// The signature field is not 64 bytes long.
    #[error("signature is {0} bytes long, expected 64")]
    MalformedSignature(usize),
    /// The signature does not verify under the key (or is non-canonical).
    #[error("signature does not verify against the enrolled key")]
    BadSignature,
}

/// The DSSE v1 pre-authentication encoding of `payload_type` and `payload`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// A new Ed25519 signing key from the operating system's random source.
///
/// What `SigningKey::generate` does, without tying callers to the
/// `rand_core` version ed25519-dalek uses: 32 bytes from the OS are the
/// secret key, and they are wiped once the key is made.
pub fn generate_key() -> SigningKey {
    use rand::RngCore;
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(secret.as_mut());
    SigningKey::from_bytes(&secret)
}

/// Signs `payload` (already-encoded protobuf bytes) as `payload_type`.
pub fn sign(key: &SigningKey, payload_type: &str, payload: Vec<u8>) -> SignedEnvelope {
    let signature = key.sign(&pae(payload_type, &payload));
    SignedEnvelope { payload, payload_type: payload_type.to_owned(), signature: signature.to_bytes().to_vec() }
}

/// Verifies `envelope` under `key` as `expected_type` and returns the payload
/// bytes, which only then may be decoded.
pub fn verify<'a>(
    key: &VerifyingKey,
    envelope: &'a SignedEnvelope,
    expected_type: &str,
) -> Result<&'a [u8], VerifyEnvelopeError> {
    let signature = well_formed(envelope, expected_type)?;
    key.verify_strict(&pae(&envelope.payload_type, &envelope.payload), &signature)
        .map_err(|_| VerifyEnvelopeError::BadSignature)?;
    Ok(&envelope.payload)
}

/// The envelope's signature, once its type and length are right.
fn well_formed(envelope: &SignedEnvelope, expected_type: &str) -> Result<Signature, VerifyEnvelopeError> {
    if envelope.payload_type != expected_type {
        return Err(VerifyEnvelopeError::WrongPayloadType {
            expected: expected_type.to_owned(),
            found: envelope.payload_type.clone(),
        });
    }
    let signature_bytes: &[u8; 64] = envelope
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| VerifyEnvelopeError::MalformedSignature(envelope.signature.len()))?;
    Ok(Signature::from_bytes(signature_bytes))
}

/// Whether a signature passes the checks `verify_strict` makes besides its
/// equation, which batch verification does not all make: `S` is a canonical
/// scalar (below the group order), and `R` is the canonical encoding of a
/// point that is not of small order.
///
/// `R` is judged by its bytes alone, without decompressing it (which costs
/// about as much again as the rest of a batched check): canonical means
/// y < p = 2^255 - 19 (the top bit is x's sign), and the canonical encodings
/// that decompress to a point of small order are exactly those in
/// [`small_order_encodings`]. An `R` that is not on the curve at all passes
/// here and fails the batch equation, after which each envelope is checked
/// alone with `verify_strict`, which refuses it.
fn strictly_encoded(signature: &Signature) -> bool {
    if Option::<Scalar>::from(Scalar::from_canonical_bytes(*signature.s_bytes())).is_none() {
        return false;
    }
    let r = signature.r_bytes();
    let y_at_least_p = r[0] >= 0xed && r[1..31].iter().all(|b| *b == 0xff) && r[31] & 0x7f == 0x7f;
    !y_at_least_p && !small_order_encodings().contains(r)
}

/// Every encoding with y < p of a point of small order: the canonical
/// encodings of the eight points of the 8-torsion subgroup (the only points
/// of small order), each also with the sign bit flipped. Flipping the sign
/// of a point with x ≠ 0 gives its negation, another of the eight; for the
/// two with x = 0 it gives the "negative zero" form that decoders accept.
fn small_order_encodings() -> &'static [[u8; 32]; 16] {
    static ENCODINGS: std::sync::OnceLock<[[u8; 32]; 16]> = std::sync::OnceLock::new();
    ENCODINGS.get_or_init(|| {
        let mut encodings = [[0u8; 32]; 16];
        for (i, point) in curve25519_dalek::constants::EIGHT_TORSION.iter().enumerate() {
            let canonical = point.compress().to_bytes();
            let mut flipped = canonical;
            flipped[31] ^= 0x80;
            encodings[2 * i] = canonical;
            encodings[2 * i + 1] = flipped;
        }
        encodings
    })
}

/// Verifies envelopes that arrived together, each under its own key, as
/// `expected_type`: one result per envelope, in order.
///
/// What it accepts is what [`verify`] accepts, faster. Envelopes whose type,
/// length or encoding is wrong get the error `verify` gives, one by one.
/// The rest are checked together with `ed25519_dalek::verify_batch` (random
/// linear combination, the same cofactorless equation as `verify_strict`);
/// if the batch fails, each is checked alone with `verify_strict`, so a bad
/// signature fails only its own envelope. Before batching, each signature
/// must pass the checks `verify_strict` makes that the batch equation does
/// not: a canonical `S` and a canonical, not small-order `R` (keys are
/// checked for small order at enrolment). One difference remains, see
/// docs/decisions/007-batch-verification.md: a signer who builds `R` with a
/// small-order component, which only the key's holder can do, may pass in a
/// batch where `verify_strict` would refuse it.
pub fn verify_many(
    items: &[(&VerifyingKey, &SignedEnvelope)],
    expected_type: &str,
) -> Vec<Result<(), VerifyEnvelopeError>> {
    let mut results: Vec<Result<(), VerifyEnvelopeError>> = Vec::with_capacity(items.len());
    let mut batch: Vec<(usize, Signature, Vec<u8>)> = Vec::with_capacity(items.len());
    for (i, (_, envelope)) in items.iter().enumerate() {
        match well_formed(envelope, expected_type) {
            Ok(signature) if strictly_encoded(&signature) => {
                batch.push((i, signature, pae(&envelope.payload_type, &envelope.payload)));
                results.push(Ok(()));
            }
            Ok(_) => results.push(Err(VerifyEnvelopeError::BadSignature)),
            Err(e) => results.push(Err(e)),
        }
    }
    let one_by_one = |results: &mut Vec<Result<(), VerifyEnvelopeError>>| {
        for (i, signature, message) in &batch {
            if items[*i].0.verify_strict(message, signature).is_err() {
                results[*i] = Err(VerifyEnvelopeError::BadSignature);
            }
        }
    };
    if batch.len() < 2 {
        one_by_one(&mut results);
        return results;
    }
    let messages: Vec<&[u8]> = batch.iter().map(|(_, _, message)| message.as_slice()).collect();
    let signatures: Vec<Signature> = batch.iter().map(|(_, signature, _)| *signature).collect();
    let keys: Vec<VerifyingKey> = batch.iter().map(|(i, _, _)| *items[*i].0).collect();
    if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_err() {
        one_by_one(&mut results);
    }
    results
}

#[cfg(test)]
mod tests;
