//! The gRPC services and the server that runs them.
//!
//! Handlers are thin adapters: identity from the client certificate
//! ([`crate::peer`]), validation, one domain call, then a `to_pb_*`
//! conversion. Domain errors become a [`tonic::Status`] in one place each
//! (the `From` impls below); the detail is logged where it is handled.

mod agent;
mod attestation;
mod audit;
mod convert;
mod device_list;
mod disposal;
mod enrollment;
mod inventory;
mod lifecycle;
mod operator;
mod rollout;
#[cfg(test)]
pub(crate) mod test_support;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use custodian_proto::v1 as pb;
use tokio::net::TcpListener;
use tonic::Status;
use tracing::{error, info};

use crate::ca::{Ca, IssueDeviceCertError};
use crate::config::{Config, DataDir};
use crate::intake::{Intake, IntakeError};
use crate::store::{EnrollError, Store, StoreError};
use crate::verifier::{Verifier, VerifierStopped};

pub use device_list::{
    DEFAULT_PAGE_SIZE, MAX_ENTRIES_PER_PAGE, MAX_PAGE_BYTES, MAX_PAGE_SIZE, MAX_RECORDS_PER_PAGE, list_devices_page,
};

/// Everything the handlers share.
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) ca: Ca,
    pub(crate) config: Config,
    pub(crate) intake: Intake,
    pub(crate) verifier: Verifier,
    pub(crate) signer: Arc<crate::audit::signer::CheckpointSigner>,
}

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: rustls::ServerConfig,
}

impl Server {
    /// Opens the data directory's store and binds the listener.
    pub async fn bind(data_dir: &DataDir, config: Config) -> anyhow::Result<Self> {
        let tls = crate::tls::server_config(data_dir, config.device_cert_renewal_grace)?;
        let ca = Ca::load(data_dir)?;
        let store = Store::open(&data_dir.store()).context("open store")?;
        let listener =
            TcpListener::bind(config.listen).await.with_context(|| format!("listen on {}", config.listen))?;
        let intake = Intake::start(store.clone());
        let verifier = Verifier::start();
        let signer = Arc::new(crate::audit::signer::CheckpointSigner::load(data_dir)?);
        Ok(Self { listener, shared: Arc::new(Shared { store, ca, config, intake, verifier, signer }), tls })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listener.local_addr().context("read bound address")
    }

    /// Serves until `shutdown` completes, then flushes the store.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<pb::agent_server::AgentServer<agent::AgentService>>().await;
        health_reporter.set_serving::<pb::operator_server::OperatorServer<operator::OperatorService>>().await;
        let store = self.shared.store.clone();
        let checkpoints = tokio::spawn(crate::audit::signer::run(
            store.clone(),
            self.shared.signer.clone(),
            self.shared.config.checkpoint_policy(),
        ));
        let incoming = crate::tls::Incoming::new(self.listener, self.tls);
        // A failed sync stops the server too: nothing more can be
        // acknowledged, and the flush below then fails, saying why, so the
        // process exits non-zero and its supervisor restarts it.
        let shutdown = {
            let store = store.clone();
            async move {
                tokio::select! {
                    () = shutdown => {}
                    () = store.sync_failed() => error!("stopping: a sync of the store failed"),
                }
            }
        };
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(pb::enrollment_server::EnrollmentServer::new(enrollment::EnrollmentService(
                self.shared.clone(),
            )))
            .add_service(pb::agent_server::AgentServer::new(agent::AgentService::new(self.shared.clone())))
            .add_service(
                pb::register_server::RegisterServer::new(lifecycle::RegisterService(self.shared.clone()))
                    .max_decoding_message_size(crate::ctl::REGISTER_MESSAGE_LIMIT),
            )
            .add_service(pb::audit_server::AuditServer::new(audit::AuditService(self.shared.clone())))
            .add_service(pb::rollout_server::RolloutServer::new(rollout::RolloutService(self.shared.clone())))
            .add_service(pb::disposal_server::DisposalServer::new(disposal::DisposalService(self.shared.clone())))
            .add_service(pb::operator_server::OperatorServer::new(operator::OperatorService(self.shared)))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .context("serve gRPC")?;
        checkpoints.abort();
        store.flush().await.context("flush store on shutdown")?;
        info!("server stopped");
        Ok(())
    }
}

fn internal(what: &str, e: &dyn std::fmt::Display) -> Status {
    error!(error = %e, "failed to {what}");
    Status::internal(format!("internal error: failed to {what}"))
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        internal("access the store", &e)
    }
}

impl From<IntakeError> for Status {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::Stopped => Status::unavailable("the server is shutting down; retry later"),
            e => internal("commit reports", &e),
        }
    }
}

impl From<VerifierStopped> for Status {
    fn from(_: VerifierStopped) -> Self {
        Status::unavailable("the server is shutting down; retry later")
    }
}

impl From<EnrollError> for Status {
    fn from(e: EnrollError) -> Self {
        match e {
            EnrollError::UnknownToken => Status::unauthenticated("unknown enrolment token"),
            EnrollError::TokenUsed { .. } => Status::unauthenticated("enrolment token already used; ask for a new one"),
            EnrollError::TokenExpired => Status::unauthenticated("enrolment token expired; ask for a new one"),
            EnrollError::RegisterChanged => Status::aborted(e.to_string()),
            EnrollError::SerialMismatch { .. } | EnrollError::AssetTagUnavailable(_) => {
                Status::failed_precondition(e.to_string())
            }
            EnrollError::Store(e) => e.into(),
        }
    }
}

impl From<IssueDeviceCertError> for Status {
    fn from(e: IssueDeviceCertError) -> Self {
        match e {
            IssueDeviceCertError::Sign(_) => internal("sign a certificate", &e),
            e => Status::invalid_argument(e.to_string()),
        }
    }
}
