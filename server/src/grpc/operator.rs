//! `Operator`: the register, tokens and revocation, for people with operator
//! certificates. Every call checks the caller's role.

use std::sync::Arc;
use std::time::Duration;

use custodian_proto::identity::Role;
use custodian_proto::v1 as pb;
use prost::Message;
use tonic::{Request, Response, Status};
use tracing::info;

use super::Shared;
use super::convert::{to_pb_device, to_pb_envelope};
use crate::peer::peer_operator;
use crate::store::{DeviceRecord, Revocation, TokenRecord};

pub(super) struct OperatorService(pub(super) Arc<Shared>);

/// Roles that may change things: tokens and revocation.
const WRITERS: &[Role] = &[Role::Engineer, Role::Admin];
/// Roles that may read the register.
const READERS: &[Role] = &Role::ALL;

/// Longest site name accepted.
const MAX_SITE_LEN: usize = 128;

impl OperatorService {
    /// The one device `query` names, or a clear refusal.
    fn find_one(&self, query: &str) -> Result<DeviceRecord, Status> {
        super::lifecycle::find_one(&self.0, query)
    }
}

#[tonic::async_trait]
impl pb::operator_server::Operator for OperatorService {
    async fn create_enrollment_token(
        &self,
        req: Request<pb::CreateEnrollmentTokenRequest>,
    ) -> Result<Response<pb::CreateEnrollmentTokenResponse>, Status> {
        let operator = peer_operator(&req, WRITERS)?;
        let req = req.into_inner();
        let config = &self.0.config;
        let ttl = match req.ttl_seconds {
            0 => config.enrollment_token_ttl,
            secs => Duration::from_secs(secs),
        };
        if ttl > config.max_enrollment_token_ttl {
            return Err(Status::invalid_argument(format!(
                "ttl {} is longer than the server's maximum of {}",
                humantime::format_duration(ttl),
                humantime::format_duration(config.max_enrollment_token_ttl)
            )));
        }
        let site = req.site.trim();
        if site.len() > MAX_SITE_LEN {
            return Err(Status::invalid_argument(format!("site must be at most {MAX_SITE_LEN} characters")));
        }
        let token = crate::token::generate();
        let now = custodian_proto::now_ms();
        let expires_at_ms = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let record = TokenRecord {
            created_at_ms: now,
            expires_at_ms,
            created_by: operator.actor(),
            site: (!site.is_empty()).then(|| site.to_owned()),
            used: None,
            asset_tag: super::lifecycle::token_asset_tag(&self.0, &req.asset_tag)?,
            kind: super::attestation::from_pb_kind(req.kind)?,
        };
        self.0.store.create_token(&crate::token::hash(&token), &record)?;
        self.0.store.flush().await?;
        info!(operator = %operator.actor(), site = ?record.site, kind = ?record.kind, expires_at_ms, "enrolment token created");
        Ok(Response::new(pb::CreateEnrollmentTokenResponse { token, expires_at_ms }))
    }

    async fn list_devices(
        &self,
        req: Request<pb::ListDevicesRequest>,
    ) -> Result<Response<pb::ListDevicesResponse>, Status> {
        peer_operator(&req, READERS)?;
        let page = super::list_devices_page(&self.0.store, req.get_ref(), custodian_proto::now_ms())?;
        Ok(Response::new(page))
    }

    async fn get_device(&self, req: Request<pb::GetDeviceRequest>) -> Result<Response<pb::GetDeviceResponse>, Status> {
        peer_operator(&req, READERS)?;
        let device = self.find_one(&req.into_inner().query)?;
        // Heartbeats carry no inventory: show the latest report that does.
        let latest_inventory_seq = self.0.store.latest_inventory(device.device_id)?.map(|l| l.seq);
        let latest = match latest_inventory_seq.unwrap_or(device.last_seq) {
            0 => None,
            seq => self.0.store.report(device.device_id, seq)?,
        };
        // Stored reports were verified before they were stored; decoding one
        // that no longer decodes is an internal error, not the caller's.
        let latest_report = latest
            .as_ref()
            .map(|envelope| pb::Report::decode(envelope.payload.as_slice()))
            .transpose()
            .map_err(|e| super::internal("decode a stored report", &e))?;
        let mut summary = to_pb_device(&device);
        super::inventory::add_compliance(&self.0.store, &mut summary, &device)?;
        let changes = self.0.store.inventory_changes(device.device_id, super::inventory::RECENT_CHANGES)?;
        Ok(Response::new(pb::GetDeviceResponse {
            device: Some(summary),
            latest_envelope: latest.as_ref().map(to_pb_envelope),
            latest_report,
            inventory_changes: changes.iter().map(super::inventory::to_pb_change).collect(),
            allowed_states: device.state.allowed().iter().map(|s| s.as_str().to_owned()).collect(),
            disks: super::attestation::disks(&self.0, &device)?,
        }))
    }

    async fn revoke_device(
        &self,
        req: Request<pb::RevokeDeviceRequest>,
    ) -> Result<Response<pb::RevokeDeviceResponse>, Status> {
        let operator = peer_operator(&req, WRITERS)?;
        let req = req.into_inner();
        let reason = req.reason.trim();
        if reason.is_empty() {
            return Err(Status::invalid_argument("a revocation needs a reason"));
        }
        let device = self.find_one(&req.query)?;
        let revocation = Revocation {
            revoked_at_ms: custodian_proto::now_ms(),
            revoked_by: operator.actor(),
            reason: reason.to_owned(),
        };
        let (device, revoked_now) = self
            .0
            .store
            .revoke(device.device_id, revocation)?
            .ok_or_else(|| Status::not_found("the device disappeared while being revoked"))?;
        if !revoked_now {
            return Err(Status::failed_precondition(format!("device {} is already revoked", device.device_id)));
        }
        self.0.store.flush().await?;
        info!(device_id = %device.device_id, operator = %operator.actor(), %reason, "device revoked");
        Ok(Response::new(pb::RevokeDeviceResponse { device: Some(to_pb_device(&device)) }))
    }

    async fn list_unmatched_attestations(
        &self,
        req: Request<pb::ListUnmatchedAttestationsRequest>,
    ) -> Result<Response<pb::ListUnmatchedAttestationsResponse>, Status> {
        peer_operator(&req, READERS)?;
        Ok(Response::new(super::attestation::unmatched(&self.0)?))
    }
}
