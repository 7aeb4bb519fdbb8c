//! Opening a gRPC channel to the Custodian server over TLS, with or without
//! a client certificate. Agent, `custodianctl`, tests and benchmarks all
//! connect the same way.

use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// How long to wait for a TCP connection and TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one call may take before it is abandoned.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a channel could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server URL is not an `https://host:port` URL.
    #[error("invalid server URL {url:?}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// TCP or TLS failed (server down, wrong CA, certificate refused...).
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL given.
        url: String,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
}

/// A client identity: certificate and private key, PEM.
pub struct ClientIdentity<'a> {
    /// The client certificate chain, PEM.
    pub cert_pem: &'a str,
    /// The private key, PEM (PKCS#8).
    pub key_pem: &'a str,
}

/// The endpoint for `url`, trusting only `ca_pem`, presenting `identity` if given.
pub fn endpoint(url: &str, ca_pem: &str, identity: Option<ClientIdentity<'_>>) -> Result<Endpoint, ConnectError> {
    let bad_url = |reason: &str| ConnectError::BadUrl { url: url.to_owned(), reason: reason.to_owned() };
    if !url.starts_with("https://") {
        return Err(bad_url("it must start with https://"));
    }
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem));
    if let Some(identity) = identity {
        tls = tls.identity(Identity::from_pem(identity.cert_pem, identity.key_pem));
    }
    Endpoint::from_shared(url.to_owned())
        .map_err(|e| bad_url(&e.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .tcp_nodelay(true)
        .tls_config(tls)
        .map_err(|e| bad_url(&e.to_string()))
}

/// Connects to `url`, trusting only `ca_pem`, presenting `identity` if given.
pub async fn connect(url: &str, ca_pem: &str, identity: Option<ClientIdentity<'_>>) -> Result<Channel, ConnectError> {
    endpoint(url, ca_pem, identity)?
        .connect()
        .await
        .map_err(|source| ConnectError::Connect { url: url.to_owned(), source })
}

/// A gRPC status as one line for a person: its message, then the chain of
/// causes behind it (so a TLS alert such as "unknown CA" is not hidden
/// behind "transport error").
pub fn describe_status(status: &tonic::Status) -> String {
    let mut text = status.message().to_owned();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
