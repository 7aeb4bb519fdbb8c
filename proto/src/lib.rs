//! Custodian's wire schema and the rules both sides of it must agree on.
//!
//! - [`v1`]: the generated `custodian.v1` protobuf types and gRPC stubs.
//! - [`envelope`]: domain-separated Ed25519 signing and verification of
//!   [`v1::SignedEnvelope`]s (reports, and later attestations and certificates).
//! - [`identity`]: the identities carried in client certificates (devices and
//!   operators) and their URI forms.
//!
//! The agent and the server both depend on this crate and never on each other.

pub mod channel;
pub mod envelope;
pub mod errors;
pub mod files;
pub mod identity;
pub mod json;

/// `custodian.v1` wire types and gRPC stubs, generated from `proto/custodian/v1`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod v1 {
    tonic::include_proto!("custodian.v1");
}

/// Milliseconds since the Unix epoch, now. Custodian's wire times are all in this unit.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

impl v1::Readable {
    /// A value that was read.
    pub fn value(value: impl Into<String>) -> Self {
        Self { state: Some(v1::readable::State::Value(value.into())) }
    }

    /// A value that could not be read, and why.
    pub fn unknown(reason: impl Into<String>) -> Self {
        Self { state: Some(v1::readable::State::Unknown(reason.into())) }
    }

    /// The value, if it was read.
    pub fn as_value(&self) -> Option<&str> {
        match &self.state {
            Some(v1::readable::State::Value(value)) => Some(value),
            _ => None,
        }
    }
}

/// The value of an optional [`v1::Readable`], if it was read.
pub fn readable_value(readable: Option<&v1::Readable>) -> Option<&str> {
    readable.and_then(v1::Readable::as_value)
}
