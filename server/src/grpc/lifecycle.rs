//! `Register`: adding machines before they enrol, moving them through the
//! lifecycle, notes, and issuing operators; plus the lookup the Operator
//! service shares (find one device by any key).

use std::sync::Arc;

use custodian_proto::identity::{OperatorName, Role};
use custodian_proto::v1 as pb;
use tonic::{Request, Response, Status};
use tracing::info;

use super::Shared;
use super::convert::to_pb_device;
use crate::audit::event::{AuditEvent, EventKind, Evidence};
use crate::compliance::encryption_compliance;
use crate::lifecycle::{GuardInputs, LifecycleState, check_guard};
use crate::peer::peer_operator;
use crate::store::{DeviceRecord, ExpectedDevice, NewDevice, TransitionAttributes, TransitionOutcome, normalise_mac};

pub(super) struct RegisterService(pub(super) Arc<Shared>);

/// Roles that add machines and move them.
const MOVERS: &[Role] = &[Role::Engineer, Role::Admin];
/// Roles that add notes.
const NOTE_TAKERS: &[Role] = &[Role::ServiceDesk, Role::Engineer, Role::Admin];
/// Roles that issue operators.
const ISSUERS: &[Role] = &[Role::Admin];
/// Longest free text accepted (reasons, notes, names).
const MAX_TEXT_LEN: usize = 1024;
/// Most machines in one request.
const MAX_DEVICES_PER_REQUEST: usize = 100_000;

/// The one device `query` (id, hostname, serial, asset tag or MAC) names.
pub(super) fn find_one(shared: &Shared, query: &str) -> Result<DeviceRecord, Status> {
    let query = query.trim();
    if query.is_empty() {
        return Err(Status::invalid_argument("give a device id, hostname, serial, asset tag or MAC address"));
    }
    let mut devices = shared.store.find_devices(query)?;
    if devices.is_empty()
        && let Some(mac) = normalise_mac(query)
    {
        devices = shared.store.find_devices(&mac)?;
    }
    match devices.len() {
        0 => Err(Status::not_found(format!(
            "no device matches {query:?} (by id, hostname, serial, asset tag or MAC address)"
        ))),
        1 => Ok(devices.remove(0)),
        n => {
            let ids: Vec<String> = devices.iter().map(|d| d.device_id.to_string()).collect();
            Err(Status::failed_precondition(format!(
                "{query:?} matches {n} devices ({}); use a device id",
                ids.join(", ")
            )))
        }
    }
}

/// The asset tag a new token is bound to, checked against the register.
pub(super) fn token_asset_tag(shared: &Shared, asset_tag: &str) -> Result<Option<String>, Status> {
    let tag = asset_tag.trim();
    if tag.is_empty() {
        return Ok(None);
    }
    let found = shared
        .store
        .find_devices(tag)?
        .into_iter()
        .any(|d| !d.is_enrolled() && d.asset_tag.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(tag)));
    if !found {
        return Err(Status::failed_precondition(format!(
            "no unenrolled register entry has asset tag {tag}; add it with `custodianctl device add` first"
        )));
    }
    Ok(Some(tag.to_owned()))
}

fn text(field: &str, value: &str, required: bool) -> Result<Option<String>, Status> {
    let value = value.trim();
    if value.len() > MAX_TEXT_LEN {
        return Err(Status::invalid_argument(format!("{field} must be at most {MAX_TEXT_LEN} characters")));
    }
    if value.is_empty() {
        return if required { Err(Status::invalid_argument(format!("{field} is required"))) } else { Ok(None) };
    }
    Ok(Some(value.to_owned()))
}

/// The latest full inventory, if the device has sent one. Heartbeats carry
/// none, so the latest report may well not be the one to judge.
pub(super) fn latest_inventory(shared: &Shared, device: &DeviceRecord) -> Result<Option<LatestFull>, Status> {
    let Some(latest) = shared.store.latest_inventory(device.device_id)? else {
        return Ok(None);
    };
    let inventory = latest.decode().map_err(|e| super::internal("decode a stored inventory", &e))?;
    let payload = shared.store.report(device.device_id, latest.seq)?.map(|envelope| envelope.payload);
    Ok(Some(LatestFull { inventory, seq: latest.seq, payload }))
}

/// The latest full inventory, and the report that carried it.
pub(super) struct LatestFull {
    pub(super) inventory: pb::Inventory,
    seq: u64,
    /// That report's signed payload (the evidence an event names).
    payload: Option<Vec<u8>>,
}

#[tonic::async_trait]
impl pb::register_server::Register for RegisterService {
    async fn add_devices(
        &self,
        req: Request<pb::AddDevicesRequest>,
    ) -> Result<Response<pb::AddDevicesResponse>, Status> {
        let operator = peer_operator(&req, MOVERS)?;
        let req = req.into_inner();
        if req.devices.is_empty() || req.devices.len() > MAX_DEVICES_PER_REQUEST {
            return Err(Status::invalid_argument(format!("give 1 to {MAX_DEVICES_PER_REQUEST} devices")));
        }
        let mut problems = Vec::new();
        let mut rows = Vec::with_capacity(req.devices.len());
        for device in req.devices {
            let line = (device.line > 0).then_some(device.line);
            let state = match device.state.trim() {
                "" => LifecycleState::Ordered,
                state => match state.parse() {
                    Ok(state) => state,
                    Err(e) => {
                        problems.push((line, format!("{e}")));
                        LifecycleState::Ordered
                    }
                },
            };
            let long =
                [&device.serial, &device.asset_tag, &device.model, &device.supplier, &device.order_ref, &device.site]
                    .iter()
                    .any(|v| v.len() > MAX_TEXT_LEN);
            if long {
                problems.push((line, format!("a field is longer than {MAX_TEXT_LEN} characters")));
            }
            let opt = |s: String| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
            rows.push(NewDevice {
                line,
                serial: device.serial,
                asset_tag: device.asset_tag,
                model: device.model,
                supplier: opt(device.supplier),
                order_ref: opt(device.order_ref),
                site: opt(device.site),
                state,
            });
        }
        let source = text("source", &req.source, false)?.unwrap_or_else(|| "device add".to_owned());
        let now = custodian_proto::now_ms();
        let added = if problems.is_empty() {
            self.0.store.add_devices(&rows, &operator.actor(), now, &source)?
        } else {
            Err(crate::store::AddDevicesError { problems })
        };
        let added = added.map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.0.store.flush().await?;
        info!(operator = %operator.actor(), n = added.len(), %source, "devices added to the register");
        Ok(Response::new(pb::AddDevicesResponse { devices: added.iter().map(to_pb_device).collect() }))
    }

    async fn transition_device(
        &self,
        req: Request<pb::TransitionDeviceRequest>,
    ) -> Result<Response<pb::TransitionDeviceResponse>, Status> {
        let operator = peer_operator(&req, MOVERS)?;
        let req = req.into_inner();
        let target: LifecycleState = req.state.parse().map_err(|e| Status::invalid_argument(format!("{e}")))?;
        let reason = text("reason", &req.reason, true)?.expect("required");
        let override_reason = text("override reason", &req.override_reason, false)?;
        if override_reason.is_some() && target != LifecycleState::Deployed {
            return Err(Status::invalid_argument(
                "--override applies only to the encryption guard of deployed; other guards cannot be overridden",
            ));
        }
        let mut attributes = TransitionAttributes {
            site: text("site", &req.site, false)?,
            ward: text("ward", &req.ward, false)?,
            assigned_to: text("assigned to", &req.assigned_to, false)?,
        };
        let device = find_one(&self.0, &req.query)?;
        let from = device.state;
        let to = from.move_to(target).map_err(|e| Status::failed_precondition(e.to_string()))?;
        // Rollout (issue 6): a booked machine deployed goes where its slot is,
        // unless the request says otherwise.
        if to == LifecycleState::Deployed {
            super::rollout::slot_attributes(&self.0, device.device_id, &mut attributes)?;
        }
        let latest = latest_inventory(&self.0, &device)?;
        // Disposal (issue 7): the sanitised guard reads the latest full
        // inventory and the wipe attestations and destruction records.
        let sanitisation = match to {
            LifecycleState::Sanitised => super::disposal::sanitisation_inputs(&self.0, &device)?,
            _ => None,
        };
        let inputs = GuardInputs {
            compliance: latest.as_ref().map(|latest| encryption_compliance(&latest.inventory)),
            coverage: sanitisation.as_ref().map(|(coverage, _)| coverage.clone()),
        };
        let overridden = check_guard(to, &inputs, override_reason.is_some())
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let now = custodian_proto::now_ms();
        let disposal = super::disposal::disposal_of(&req, to, &operator.actor(), now)?;
        let mut event = AuditEvent::new(now, operator.actor(), EventKind::DeviceTransitioned, Some(device.device_id))
            .with_reason(reason);
        if let Some((_, hashes)) = &sanitisation {
            event.evidence.extend(hashes.iter().cloned());
        }
        if let Some(disposal) = &disposal {
            event = event
                .with_detail("disposal_route", disposal.route.as_str())
                .with_detail("contractor", disposal.contractor.clone())
                .with_detail("consignment_ref", disposal.consignment_ref.clone());
        }
        if let Some(latest) = &latest {
            if let Some(payload) = &latest.payload {
                event.evidence.push(Evidence::of("latest_report_payload", payload));
            }
            event = event.with_detail("latest_inventory_seq", latest.seq.to_string());
        }
        if let Some(refusal) = &overridden {
            event.override_reason = override_reason.clone();
            event = event.with_detail("overridden_guard", refusal.to_string());
        }
        // The guards were checked on the device as read above: the store
        // writes nothing if it has moved or reported since.
        let expected = ExpectedDevice { state: from, last_seq: Some(device.last_seq) };
        let (moved, audit_seq) = match self.0.store.transition_recording(
            device.device_id,
            expected,
            to,
            &attributes,
            event,
            disposal.as_ref(),
        )? {
            None => return Err(Status::not_found("the device disappeared while being moved")),
            Some(TransitionOutcome::StateChanged(now_in)) => {
                return Err(Status::aborted(format!(
                    "the device moved to {now_in} while this request was checked; nothing was written; try again"
                )));
            }
            Some(TransitionOutcome::ReportedMeanwhile { last_seq }) => {
                info!(device_id = %device.device_id, checked_seq = device.last_seq, last_seq, %to, "transition raced a report; refused");
                return Err(Status::aborted(
                    "the device reported while this move was checked; nothing was written; try again",
                ));
            }
            Some(TransitionOutcome::Moved(device, seq)) => (*device, seq),
        };
        // Rollout (issue 6): a booked machine confirmed deployed is recorded in
        // its slot, and the machine it replaces is retired (audited, the
        // rollout named as the reason) and put on the to-collect list.
        let mut warnings = Vec::new();
        if to == LifecycleState::Deployed {
            warnings.extend(super::rollout::on_deployed(&self.0, moved.device_id, &operator.actor(), now));
        }
        // Disposal (issue 7): the certificate of sanitisation is issued with
        // the disposal (and stored; `certificate get` issues it later if this fails).
        if to == LifecycleState::Disposed
            && let Err(status) = super::disposal::issue_certificate(&self.0, moved.clone()).await
        {
            tracing::error!(device_id = %moved.device_id, error = %status.message(), "failed to issue a certificate of sanitisation");
            warnings.push(format!(
                "the certificate of sanitisation was not issued ({}); `custodianctl certificate get` issues it",
                status.message()
            ));
        }
        self.0.store.flush().await?;
        info!(device_id = %moved.device_id, operator = %operator.actor(), %from, %to, overridden = overridden.is_some(), "device transitioned");
        Ok(Response::new(pb::TransitionDeviceResponse { device: Some(to_pb_device(&moved)), audit_seq, warnings }))
    }

    async fn add_note(&self, req: Request<pb::AddNoteRequest>) -> Result<Response<pb::AddNoteResponse>, Status> {
        let operator = peer_operator(&req, NOTE_TAKERS)?;
        let req = req.into_inner();
        let note = text("note", &req.text, true)?.expect("required");
        let device = find_one(&self.0, &req.query)?;
        let event =
            AuditEvent::new(custodian_proto::now_ms(), operator.actor(), EventKind::NoteAdded, Some(device.device_id))
                .with_reason(note);
        let audit_seq = self.0.store.record_event(event)?;
        self.0.store.flush().await?;
        info!(device_id = %device.device_id, operator = %operator.actor(), audit_seq, "note added");
        Ok(Response::new(pb::AddNoteResponse { device_id: device.device_id.to_string(), audit_seq }))
    }

    async fn issue_operator(
        &self,
        req: Request<pb::IssueOperatorRequest>,
    ) -> Result<Response<pb::IssueOperatorResponse>, Status> {
        let operator = peer_operator(&req, ISSUERS)?;
        let req = req.into_inner();
        let name: OperatorName = req.name.parse().map_err(|e| Status::invalid_argument(format!("{e}")))?;
        let role: Role = req.role.parse().map_err(|e| Status::invalid_argument(format!("{e}")))?;
        let shared = &self.0;
        let (cert, key_pem) = shared
            .ca
            .issue_operator(&name, role, shared.config.operator_cert_lifetime)
            .map_err(|e| super::internal("issue an operator certificate", &e))?;
        let event = crate::operators::issued_event(&operator.actor(), &name, role, &cert);
        shared.store.record_event(event)?;
        shared.store.flush().await?;
        info!(operator = %operator.actor(), new_operator = %name, %role, "operator issued");
        Ok(Response::new(pb::IssueOperatorResponse {
            ca_pem: shared.ca.cert_pem().to_owned(),
            cert_pem: cert.pem,
            key_pem,
            not_after_ms: cert.not_after_ms,
        }))
    }
}
