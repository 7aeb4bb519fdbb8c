//! The server's TLS: TLS 1.3 only, client certificates from the Custodian CA
//! verified when presented and optional at the handshake (so that `Enroll`
//! works without one). Each RPC other than `Enroll` and health then requires
//! a verified certificate; see [`crate::peer`].
//!
//! A device certificate that has expired, but not longer ago than the
//! renewal grace, is still accepted at the handshake: an agent cut off from
//! the server for longer than a third of its certificate's lifetime could
//! otherwise never renew, and everything in its spool would be stranded.
//! Such a connection may only renew ([`ClientCertificate::Expired`],
//! `peer::peer_device_renewing`); every other call refuses it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::Context;
use custodian_proto::identity::{DeviceId, Identity};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, warn};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::DataDir;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the rustls server configuration from the data directory. Device
/// certificates that expired less than `renewal_grace` ago are accepted at
/// the handshake (for renewal only; see the module documentation).
pub fn server_config(data_dir: &DataDir, renewal_grace: Duration) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(data_dir.ca_cert()).context("read CA certificate")? {
        roots.add(cert.context("parse CA certificate")?).context("add CA certificate")?;
    }
    let webpki = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .context("build client certificate verifier")?;
    let verifier = Arc::new(RenewalGraceVerifier { webpki, grace: renewal_grace });
    let chain = CertificateDer::pem_file_iter(data_dir.server_cert())
        .context("read server certificate")?
        .collect::<Result<Vec<_>, _>>()
        .context("parse server certificate")?;
    let key = PrivateKeyDer::from_pem_file(data_dir.server_key()).context("read server key")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("select TLS 1.3")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("load server certificate and key")?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// rustls's WebPKI client verifier, except that a device certificate which
/// fails only because it has expired, less than `grace` ago, is verified
/// again as of its last valid second: the chain, the signatures and every
/// other check are WebPKI's own, and only the clock is moved.
#[derive(Debug)]
struct RenewalGraceVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
    grace: Duration,
}

impl ClientCertVerifier for RenewalGraceVerifier {
    fn offer_client_auth(&self) -> bool {
        self.webpki.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.webpki.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let refusal = match self.webpki.verify_client_cert(end_entity, intermediates, now) {
            Err(
                e @ rustls::Error::InvalidCertificate(
                    CertificateError::Expired | CertificateError::ExpiredContext { .. },
                ),
            ) => e,
            verdict => return verdict,
        };
        let leaf = Leaf::read(end_entity);
        let Some(not_after) = leaf.not_after else { return Err(refusal) };
        let is_device = matches!(leaf.identity, Some(Identity::Device(_)));
        let expired_for = now.as_secs().saturating_sub(not_after);
        if !is_device || expired_for > self.grace.as_secs() {
            return Err(refusal);
        }
        self.webpki.verify_client_cert(
            end_entity,
            intermediates,
            UnixTime::since_unix_epoch(Duration::from_secs(not_after)),
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// What a client certificate says, read in one parse.
struct Leaf {
    /// Its Custodian identity, if it names exactly one.
    identity: Option<Identity>,
    /// Its notAfter, Unix seconds.
    not_after: Option<u64>,
}

impl Leaf {
    fn read(der: &[u8]) -> Self {
        match X509Certificate::from_der(der) {
            Ok((_, cert)) => Self {
                identity: crate::peer::identity_of(&cert),
                not_after: u64::try_from(cert.validity().not_after.timestamp()).ok(),
            },
            Err(_) => Self { identity: None, not_after: None },
        }
    }
}

/// A stream of TLS connections accepted on a listener. Handshakes run
/// concurrently, so one slow client never holds up the others; failed
/// handshakes are logged and dropped.
pub struct Incoming {
    rx: mpsc::Receiver<PeerStream>,
    accept_task: JoinHandle<()>,
}

impl Incoming {
    /// Accepts TCP connections on `listener` and completes TLS with `config`.
    pub fn new(listener: TcpListener, config: rustls::ServerConfig) -> Self {
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (tx, rx) = mpsc::channel(256);
        let accept_task = tokio::spawn(async move {
            loop {
                let (tcp, addr) = match listener.accept().await {
                    Ok(conn) => conn,
                    Err(e) => {
                        warn!(error = %e, "failed to accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move { handshake(acceptor, tcp, addr, tx).await });
            }
        });
        Self { rx, accept_task }
    }
}

async fn handshake(acceptor: TlsAcceptor, tcp: TcpStream, addr: SocketAddr, tx: mpsc::Sender<PeerStream>) {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => {
            let _ = tx.send(PeerStream::new(tls, addr)).await;
        }
        Ok(Err(e)) => debug!(%addr, error = %e, "TLS handshake failed"),
        Err(_) => debug!(%addr, "TLS handshake timed out"),
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl tokio_stream::Stream for Incoming {
    type Item = io::Result<PeerStream>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|conn| conn.map(Ok))
    }
}

/// What a connection's client certificate says about who is calling, read
/// once when the handshake completes. tonic puts it in the extensions of
/// every request on the connection, where [`crate::peer`] finds it; parsing
/// the certificate on every call instead cost a few microseconds each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCertificate {
    /// The client presented no certificate (allowed for `Enroll` and health).
    Absent,
    /// A certificate that rustls verified against the CA, but that does not
    /// name exactly one Custodian identity.
    Unrecognised,
    /// A verified certificate naming this identity.
    Identity(Identity),
    /// A device certificate that had expired (at this notAfter, Unix
    /// seconds) when the connection was made, accepted within the renewal
    /// grace: good for renewing it and nothing else.
    Expired(DeviceId, u64),
}

impl ClientCertificate {
    /// Reads the identity from the leaf of a verified chain, if there is
    /// one, as of `now` (Unix seconds).
    pub fn of(chain: Option<&[CertificateDer<'_>]>, now: u64) -> Self {
        let Some(leaf) = chain.and_then(<[_]>::first) else { return Self::Absent };
        let leaf = Leaf::read(leaf);
        match (leaf.identity, leaf.not_after) {
            (None, _) => Self::Unrecognised,
            (Some(Identity::Device(device_id)), Some(not_after)) if not_after < now => {
                Self::Expired(device_id, not_after)
            }
            (Some(identity), _) => Self::Identity(identity),
        }
    }
}

/// Who is at the other end of a connection, as tonic hands it to every
/// request on it (in the request's extensions).
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's address.
    pub remote_addr: SocketAddr,
    /// What its certificate says.
    pub client: ClientCertificate,
}

/// A server TLS connection together with its [`Peer`].
pub struct PeerStream {
    tls: TlsStream<TcpStream>,
    peer: Peer,
}

impl PeerStream {
    fn new(tls: TlsStream<TcpStream>, remote_addr: SocketAddr) -> Self {
        let client = ClientCertificate::of(tls.get_ref().1.peer_certificates(), UnixTime::now().as_secs());
        Self { tls, peer: Peer { remote_addr, client } }
    }
}

impl tonic::transport::server::Connected for PeerStream {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.peer.clone()
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tls).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tls).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_shutdown(cx)
    }
}
