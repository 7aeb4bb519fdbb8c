//! `Audit`: exporting the audit trail, inclusion proofs, device history.

use std::sync::Arc;

use base64::Engine;
use custodian_proto::identity::Role;
use custodian_proto::v1 as pb;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::info;

use super::Shared;
use crate::audit::merkle::{consistency_proof, inclusion_proof};
use crate::audit::verify::InclusionProof;
use crate::peer::peer_operator;

pub(super) struct AuditService(pub(super) Arc<Shared>);

/// Roles that export the whole trail.
const EXPORTERS: &[Role] = &[Role::IgAuditor, Role::Admin];
/// Roles that read proofs and histories.
const READERS: &[Role] = &Role::ALL;
/// Events per streamed batch.
const BATCH: usize = 2000;

#[tonic::async_trait]
impl pb::audit_server::Audit for AuditService {
    async fn get_audit_head(
        &self,
        req: Request<pb::GetAuditHeadRequest>,
    ) -> Result<Response<pb::GetAuditHeadResponse>, Status> {
        let operator = peer_operator(&req, EXPORTERS)?;
        let shared = self.0.clone();
        let (checkpoints, size) = tokio::task::spawn_blocking(move || {
            if shared.signer.cover_everything(&shared.store, custodian_proto::now_ms())?.is_some() {
                shared.store.flush_blocking()?;
            }
            Ok::<_, crate::store::StoreError>((shared.store.checkpoints()?, shared.store.audit_head()?.size))
        })
        .await
        .map_err(|e| super::internal("sign a checkpoint", &e))??;
        info!(operator = %operator.actor(), size, "audit head read");
        Ok(Response::new(pb::GetAuditHeadResponse {
            checkpoints: checkpoints
                .into_iter()
                .map(|c| pb::SignedCheckpoint {
                    text: c.text,
                    signature: c.signature,
                    size: c.size,
                    time_ms: c.time_ms,
                })
                .collect(),
            public_key_pem: self.0.signer.public_key_pem().to_owned(),
            size,
        }))
    }

    type ExportEventsStream = ReceiverStream<Result<pb::AuditEventBatch, Status>>;

    async fn export_events(
        &self,
        req: Request<pb::ExportEventsRequest>,
    ) -> Result<Response<Self::ExportEventsStream>, Status> {
        let operator = peer_operator(&req, EXPORTERS)?;
        let req = req.into_inner();
        let store = self.0.store.clone();
        let to = match req.to_seq {
            0 => store.audit_head()?.size,
            to => to,
        };
        info!(operator = %operator.actor(), from = req.from_seq, to, "audit export");
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut from = req.from_seq;
            while from < to {
                let limit = BATCH.min((to - from) as usize);
                let batch = match store.audit_entries(from, limit) {
                    Ok(batch) if batch.is_empty() => break,
                    Ok(batch) => batch,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(Status::from(e)));
                        return;
                    }
                };
                from = batch.last().map_or(to, |e| e.seq + 1);
                let events = batch
                    .into_iter()
                    .map(|e| pb::AuditEventEntry { seq: e.seq, event: e.bytes, leaf_hash: e.leaf_hash.to_vec() })
                    .collect();
                if tx.blocking_send(Ok(pb::AuditEventBatch { events })).is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn prove_inclusion(
        &self,
        req: Request<pb::ProveInclusionRequest>,
    ) -> Result<Response<pb::ProveInclusionResponse>, Status> {
        peer_operator(&req, READERS)?;
        let seq = req.into_inner().seq;
        let shared = self.0.clone();
        let proof = tokio::task::spawn_blocking(move || -> Result<InclusionProof, Status> {
            let store = &shared.store;
            let size = store.audit_head()?.size;
            if seq >= size {
                return Err(Status::not_found(format!("no event {seq}: the log holds {size} events")));
            }
            let mut latest = store.latest_checkpoint()?;
            if latest.as_ref().is_none_or(|l| l.size <= seq) {
                latest = shared.signer.cover_everything(store, custodian_proto::now_ms())?;
                store.flush_blocking()?;
            }
            let checkpoint = latest.ok_or_else(|| Status::internal("no checkpoint covers the event"))?;
            let leaves = store.audit_leaf_hashes(checkpoint.size)?;
            let path = inclusion_proof(&leaves, seq).map_err(|e| super::internal("prove inclusion", &e))?;
            let entry = store.audit_entry(seq)?.ok_or_else(|| Status::not_found(format!("no event {seq}")))?;
            Ok(InclusionProof {
                seq,
                event: String::from_utf8(entry.bytes).map_err(|e| super::internal("read an event", &e))?,
                checkpoint: checkpoint.text,
                checkpoint_signature: base64::engine::general_purpose::STANDARD.encode(&checkpoint.signature),
                path: path.iter().map(hex::encode).collect(),
            })
        })
        .await
        .map_err(|e| super::internal("prove inclusion", &e))??;
        let proof_json = serde_json::to_string_pretty(&proof).map_err(|e| super::internal("encode a proof", &e))?;
        Ok(Response::new(pb::ProveInclusionResponse { proof_json }))
    }

    async fn device_history(
        &self,
        req: Request<pb::DeviceHistoryRequest>,
    ) -> Result<Response<pb::DeviceHistoryResponse>, Status> {
        peer_operator(&req, READERS)?;
        let device = super::lifecycle::find_one(&self.0, &req.into_inner().query)?;
        let events = self.0.store.device_events(device.device_id)?;
        Ok(Response::new(pb::DeviceHistoryResponse {
            device_id: device.device_id.to_string(),
            events: events.into_iter().map(|e| e.bytes).collect(),
        }))
    }

    async fn prove_consistency(
        &self,
        req: Request<pb::ProveConsistencyRequest>,
    ) -> Result<Response<pb::ProveConsistencyResponse>, Status> {
        peer_operator(&req, READERS)?;
        let first = req.into_inner().first_size;
        let shared = self.0.clone();
        let res = tokio::task::spawn_blocking(move || -> Result<pb::ProveConsistencyResponse, Status> {
            let store = &shared.store;
            if shared.signer.cover_everything(store, custodian_proto::now_ms())?.is_some() {
                store.flush_blocking()?;
            }
            let checkpoint = store.latest_checkpoint()?.ok_or_else(|| Status::not_found("the log is empty"))?;
            let leaves = store.audit_leaf_hashes(checkpoint.size)?;
            let path = consistency_proof(&leaves, first).map_err(|e| Status::invalid_argument(e.to_string()))?;
            Ok(pb::ProveConsistencyResponse {
                checkpoint: checkpoint.text,
                signature: checkpoint.signature,
                path: path.iter().map(hex::encode).collect(),
            })
        })
        .await
        .map_err(|e| super::internal("prove consistency", &e))??;
        Ok(Response::new(res))
    }
}
