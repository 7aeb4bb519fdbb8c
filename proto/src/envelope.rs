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
    let signature = Signature::from_bytes(signature_bytes);
    key.verify_strict(&pae(&envelope.payload_type, &envelope.payload), &signature)
        .map_err(|_| VerifyEnvelopeError::BadSignature)?;
    Ok(&envelope.payload)
}

#[cfg(test)]
mod tests;
