//! `Disposal`: destruction records, ghost alerts and the disposal register;
//! plus what the lifecycle handlers need for `sanitised` (the evidence
//! behind the guard) and `disposed` (the route), and the ghost check the
//! Agent service runs when it refuses a call.

use std::sync::Arc;

use custodian_proto::identity::{DeviceId, Role};
use custodian_proto::v1 as pb;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use super::Shared;
use crate::audit::event::Evidence;
use crate::disposal::{Alert, DestructionInput, DestructionRecord, Disposal, check_destruction, is_ghost_state};
use crate::peer::peer_operator;
use crate::sanitisation::{Coverage, sanitisation_coverage};
use crate::store::{AcknowledgeAlertError, DeviceRecord};

pub(super) struct DisposalService(pub(super) Arc<Shared>);

/// Roles that record destructions.
const RECORDERS: &[Role] = &[Role::Engineer, Role::Admin];
/// Roles that acknowledge alerts.
const ACKNOWLEDGERS: &[Role] = &[Role::Engineer, Role::IgAuditor, Role::Admin];
/// Roles that read the disposal register.
const REGISTER_READERS: &[Role] = &[Role::IgAuditor, Role::Admin];
/// Longest note accepted.
const MAX_NOTE_LEN: usize = 1024;

/// The coverage of the device's latest full inventory and the hashes of the
/// evidence behind it (`None`: it has never sent an inventory).
pub(super) fn sanitisation_inputs(
    shared: &Shared,
    device: &DeviceRecord,
) -> Result<Option<(Coverage, Vec<Evidence>)>, Status> {
    let Some(latest) = shared.store.latest_inventory(device.device_id)? else {
        return Ok(None);
    };
    let inventory = latest.decode()?;
    let proof = shared.store.sanitisation_proof(device.device_id, &inventory)?;
    let mut hashes = vec![Evidence::of("latest_inventory", &latest.inventory)];
    hashes.extend(proof.hashes);
    Ok(Some((sanitisation_coverage(&inventory, &proof.evidence), hashes)))
}

/// The disposal a move to `disposed` records, from the request's fields;
/// refuses the fields for any other state.
pub(super) fn disposal_of(
    req: &pb::TransitionDeviceRequest,
    to: crate::lifecycle::LifecycleState,
    actor: &str,
    now_ms: i64,
) -> Result<Option<Disposal>, Status> {
    let given = [&req.disposal_route, &req.contractor, &req.consignment_ref];
    if to != crate::lifecycle::LifecycleState::Disposed {
        if given.iter().any(|v| !v.trim().is_empty()) {
            return Err(Status::invalid_argument("--route, --contractor and --consignment-ref apply only to disposed"));
        }
        return Ok(None);
    }
    let required = |name: &str, value: &str| {
        let value = value.trim();
        if value.is_empty() {
            return Err(Status::invalid_argument(format!("disposed needs {name}")));
        }
        if value.len() > crate::disposal::MAX_FIELD_LEN {
            return Err(Status::invalid_argument(format!(
                "{name} must be at most {} characters",
                crate::disposal::MAX_FIELD_LEN
            )));
        }
        Ok(value.to_owned())
    };
    let route = required("--route (recycle, resale, destruction or return-to-lessor)", &req.disposal_route)?
        .parse()
        .map_err(Status::invalid_argument)?;
    Ok(Some(Disposal {
        route,
        contractor: required("--contractor", &req.contractor)?,
        consignment_ref: required(
            "--consignment-ref (the collection or WEEE consignment reference)",
            &req.consignment_ref,
        )?,
        disposed_at_ms: now_ms,
        disposed_by: actor.to_owned(),
        audit_seq: 0,
    }))
}

/// If `device` is in a state in which it should no longer call (sanitised,
/// disposed, lost), records the call as a ghost alert. Failures are logged:
/// the call is refused either way.
pub(super) fn note_if_ghost(shared: &Shared, device: &DeviceRecord) {
    if !is_ghost_state(device.state) {
        return;
    }
    let device_id = device.device_id;
    match shared.store.record_ghost_call(device_id, device.state, custodian_proto::now_ms()) {
        Ok(alert) => {
            warn!(%device_id, state = %device.state, alert_id = alert.id, calls = alert.calls, "a machine that left called in");
            let store = shared.store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.flush().await {
                    warn!(error = %e, "failed to flush a ghost alert");
                }
            });
        }
        Err(e) => warn!(%device_id, error = %e, "failed to record a ghost alert"),
    }
}

/// [`note_if_ghost`] for a device known only by id.
pub(super) fn note_if_ghost_id(shared: &Shared, device_id: DeviceId) {
    match shared.store.device(device_id) {
        Ok(Some(device)) => note_if_ghost(shared, &device),
        Ok(None) => {}
        Err(e) => warn!(%device_id, error = %e, "failed to read a refused device"),
    }
}

fn to_pb_destruction(record: &DestructionRecord) -> pb::DestructionRecord {
    pb::DestructionRecord {
        serial: record.serial.clone(),
        method: record.method.as_str().to_owned(),
        contractor: record.contractor.clone(),
        certificate_ref: record.certificate_ref.clone(),
        date: record.date.clone(),
        witness: record.witness.clone(),
        recorded_by: record.recorded_by.clone(),
        recorded_at_ms: record.recorded_at_ms,
        sha256: record.sha256_hex(),
    }
}

fn to_pb_alert(shared: &Shared, alert: &Alert) -> Result<pb::Alert, Status> {
    let hostname = shared.store.device(alert.device_id)?.map(|d| d.hostname).unwrap_or_default();
    let ack = alert.acknowledgement.as_ref();
    Ok(pb::Alert {
        id: alert.id,
        device_id: alert.device_id.to_string(),
        hostname,
        state: alert.state.as_str().to_owned(),
        severity: crate::disposal::GHOST_SEVERITY.to_owned(),
        first_seen_ms: alert.first_seen_ms,
        last_seen_ms: alert.last_seen_ms,
        calls: alert.calls,
        audit_seq: alert.audit_seq,
        acknowledged_by: ack.map(|a| a.by.clone()).unwrap_or_default(),
        acknowledged_at_ms: ack.map(|a| a.at_ms).unwrap_or(0),
        note: ack.map(|a| a.note.clone()).unwrap_or_default(),
    })
}

#[tonic::async_trait]
impl pb::disposal_server::Disposal for DisposalService {
    async fn record_destruction(
        &self,
        req: Request<pb::RecordDestructionRequest>,
    ) -> Result<Response<pb::RecordDestructionResponse>, Status> {
        let operator = peer_operator(&req, RECORDERS)?;
        let req = req.into_inner();
        let input = DestructionInput {
            serial: req.serial,
            method: req.method,
            contractor: req.contractor,
            certificate_ref: req.certificate_ref,
            date: req.date,
            witness: req.witness,
        };
        let record = check_destruction(&input, &operator.actor(), custodian_proto::now_ms())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let audit_seq =
            self.0.store.record_destruction(&record)?.map_err(|e| Status::failed_precondition(e.to_string()))?;
        self.0.store.flush().await?;
        info!(serial = %record.serial, method = %record.method, operator = %operator.actor(), audit_seq, "disk destruction recorded");
        Ok(Response::new(pb::RecordDestructionResponse { record: Some(to_pb_destruction(&record)), audit_seq }))
    }

    async fn list_alerts(
        &self,
        req: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::ListAlertsResponse>, Status> {
        peer_operator(&req, &Role::ALL)?;
        let alerts = self.0.store.alerts(req.into_inner().all)?;
        let alerts = alerts.iter().map(|a| to_pb_alert(&self.0, a)).collect::<Result<_, _>>()?;
        Ok(Response::new(pb::ListAlertsResponse { alerts }))
    }

    async fn acknowledge_alert(
        &self,
        req: Request<pb::AcknowledgeAlertRequest>,
    ) -> Result<Response<pb::AcknowledgeAlertResponse>, Status> {
        let operator = peer_operator(&req, ACKNOWLEDGERS)?;
        let req = req.into_inner();
        let note = req.note.trim();
        if note.is_empty() {
            return Err(Status::invalid_argument("--note is required: say what was found or done"));
        }
        if note.len() > MAX_NOTE_LEN {
            return Err(Status::invalid_argument(format!("the note must be at most {MAX_NOTE_LEN} characters")));
        }
        let (alert, audit_seq) =
            self.0.store.acknowledge_alert(req.id, &operator.actor(), note, custodian_proto::now_ms()).map_err(
                |e| match e {
                    AcknowledgeAlertError::Unknown(_) => Status::not_found(e.to_string()),
                    AcknowledgeAlertError::AlreadyAcknowledged { .. } => Status::failed_precondition(e.to_string()),
                    AcknowledgeAlertError::Store(e) => e.into(),
                },
            )?;
        self.0.store.flush().await?;
        info!(alert_id = alert.id, device_id = %alert.device_id, operator = %operator.actor(), audit_seq, "alert acknowledged");
        Ok(Response::new(pb::AcknowledgeAlertResponse { alert: Some(to_pb_alert(&self.0, &alert)?), audit_seq }))
    }

    async fn list_disposals(
        &self,
        req: Request<pb::ListDisposalsRequest>,
    ) -> Result<Response<pb::ListDisposalsResponse>, Status> {
        peer_operator(&req, REGISTER_READERS)?;
        let since = req.into_inner().since;
        let since_ms = match since.trim() {
            "" => i64::MIN,
            date => crate::rollout::date_start_ms(crate::rollout::parse_date(date).map_err(Status::invalid_argument)?),
        };
        let mut disposals = Vec::new();
        for (device_id, disposal) in self.0.store.disposals()? {
            if disposal.disposed_at_ms < since_ms {
                continue;
            }
            let device = self.0.store.device(device_id)?;
            let text = |f: fn(&DeviceRecord) -> Option<String>| device.as_ref().and_then(f).unwrap_or_default();
            disposals.push(pb::DisposalEntry {
                device_id: device_id.to_string(),
                hostname: device.as_ref().map(|d| d.hostname.clone()).unwrap_or_default(),
                serial: text(|d| d.serial.clone()),
                asset_tag: text(|d| d.asset_tag.clone()),
                route: disposal.route.as_str().to_owned(),
                contractor: disposal.contractor,
                consignment_ref: disposal.consignment_ref,
                disposed_at_ms: disposal.disposed_at_ms,
                disposed_by: disposal.disposed_by,
                audit_seq: disposal.audit_seq,
            });
        }
        Ok(Response::new(pb::ListDisposalsResponse { disposals }))
    }
}
