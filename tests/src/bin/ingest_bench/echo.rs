//! The baseline: a bare tonic server with one trivial unary call, served with
//! exactly the real server's TLS setup (`custodian_server::tls`: TLS 1.3, the
//! data directory's CA and certificate, client certificates, ring).

use std::path::Path;

use anyhow::Context;
use custodian_server::config::DataDir;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// `custodian.bench.v1` wire types and gRPC stubs.
#[allow(missing_docs, unreachable_pub)]
pub(crate) mod pb {
    tonic::include_proto!("custodian.bench.v1");
}

struct EchoService;

#[tonic::async_trait]
impl pb::echo_server::Echo for EchoService {
    async fn echo(&self, req: Request<pb::EchoRequest>) -> Result<Response<pb::EchoResponse>, Status> {
        let received_bytes = req.into_inner().payload.len() as u64;
        Ok(Response::new(pb::EchoResponse { received_bytes }))
    }
}

/// Serves the echo service on a free loopback port until killed, printing
/// `listening on ADDR` first.
pub(crate) fn serve(data_dir: &Path) -> anyhow::Result<()> {
    let data_dir = DataDir::new(data_dir);
    let config = custodian_server::config::Config::load(&data_dir)?;
    let tls = custodian_server::tls::server_config(&data_dir, config.device_cert_renewal_grace)?;
    // The same runtime as `custodian-server serve`.
    let runtime = tokio::runtime::Runtime::new().context("start async runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("listen on 127.0.0.1:0")?;
        let addr = listener.local_addr().context("read bound address")?;
        println!("listening on {addr}");
        let incoming = custodian_server::tls::Incoming::new(listener, tls);
        tonic::transport::Server::builder()
            .add_service(pb::echo_server::EchoServer::new(EchoService))
            .serve_with_incoming(incoming)
            .await
            .context("serve gRPC")
    })
}
