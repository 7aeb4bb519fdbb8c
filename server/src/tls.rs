//! The server's TLS: TLS 1.3 only, client certificates from the Custodian CA
//! verified when presented and optional at the handshake (so that `Enroll`
//! works without one). Each RPC other than `Enroll` and health then requires
//! a verified certificate; see [`crate::peer`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::Context;
use custodian_proto::identity::Identity;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, warn};

use crate::config::DataDir;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the rustls server configuration from the data directory.
pub fn server_config(data_dir: &DataDir) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(data_dir.ca_cert()).context("read CA certificate")? {
        roots.add(cert.context("parse CA certificate")?).context("add CA certificate")?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .context("build client certificate verifier")?;
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
}

impl ClientCertificate {
    /// Reads the identity from the leaf of a verified chain, if there is one.
    pub fn of(chain: Option<&[CertificateDer<'_>]>) -> Self {
        match chain.and_then(<[_]>::first) {
            None => Self::Absent,
            Some(leaf) => crate::peer::identity_from_der(leaf).map_or(Self::Unrecognised, Self::Identity),
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
        let client = ClientCertificate::of(tls.get_ref().1.peer_certificates());
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
