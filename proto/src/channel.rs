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
    /// The CA certificate given is not a PEM certificate (the wrong file
    /// passed as `--ca`, say); found before connecting, so that it is not
    /// reported as the server refusing the handshake.
    #[error("the CA certificate given is not usable: {reason}")]
    BadCa {
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
    check_ca_pem(ca_pem)?;
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

/// Checks that `ca_pem` holds at least one certificate and nothing that
/// fails to parse as PEM.
fn check_ca_pem(ca_pem: &str) -> Result<(), ConnectError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let bad = |reason: String| ConnectError::BadCa { reason };
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        cert.map_err(|e| bad(format!("it is not valid PEM ({e})")))?;
        n += 1;
    }
    if n == 0 {
        return Err(bad("it holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)".to_owned()));
    }
    Ok(())
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
    crate::errors::with_causes(status.message().to_owned(), std::error::Error::source(status))
}

#[cfg(test)]
mod tests;
