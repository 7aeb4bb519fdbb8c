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
use crate::store::{AcknowledgeAlertError, DeviceRecord, EvidenceWindow, StoredCertificate};

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
    let window = evidence_window(shared, device, latest.received_at_ms)?;
    let proof = shared.store.sanitisation_proof(device.device_id, &inventory, window)?;
    let mut hashes = vec![Evidence::of("latest_inventory", &latest.inventory)];
    hashes.extend(proof.hashes);
    Ok(Some((sanitisation_coverage(&inventory, &proof.evidence), hashes)))
}

/// What sanitisation evidence must postdate for `device`, whose latest
/// inventory arrived at `inventory_received_at_ms`: its latest move to
/// `retired`, and that inventory. Only a retired machine can be sanitised,
/// and a sanitised or disposed one has been retired, so a machine with no
/// such move has no window at all.
fn evidence_window(
    shared: &Shared,
    device: &DeviceRecord,
    inventory_received_at_ms: i64,
) -> Result<EvidenceWindow, Status> {
    let retired_at_ms =
        shared.store.last_moved_to(device.device_id, crate::lifecycle::LifecycleState::Retired)?.ok_or_else(|| {
            Status::failed_precondition(format!(
                "device {} has no record of being retired, which sanitisation evidence must follow",
                device.device_id
            ))
        })?;
    Ok(EvidenceWindow { retired_at_ms, inventory_received_at_ms })
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
                certificate_sha256: self
                    .0
                    .store
                    .certificate(device_id)?
                    .map(|c| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&c.json)))
                    .unwrap_or_default(),
            });
        }
        Ok(Response::new(pb::ListDisposalsResponse { disposals }))
    }

    async fn create_manifest(
        &self,
        req: Request<pb::CreateManifestRequest>,
    ) -> Result<Response<pb::ManifestResponse>, Status> {
        let operator = peer_operator(&req, RECORDERS)?;
        let req = req.into_inner();
        let text = |name: &str, value: &str| {
            let value = value.trim();
            if value.is_empty() {
                return Err(Status::invalid_argument(format!("{name} is required")));
            }
            if value.len() > crate::disposal::MAX_FIELD_LEN {
                return Err(Status::invalid_argument(format!("{name} is too long")));
            }
            Ok(value.to_owned())
        };
        let contractor = text("--contractor", &req.contractor)?;
        let collection_ref = text("--collection-ref", &req.collection_ref)?;
        if req.machines.is_empty() && req.disks.is_empty() {
            return Err(Status::invalid_argument("give at least one --machine or --disk"));
        }
        let mut items = Vec::new();
        let mut serials = std::collections::BTreeSet::new();
        for query in &req.machines {
            let device = super::lifecycle::find_one(&self.0, query)?;
            let serial = device.serial.clone().filter(|s| !s.trim().is_empty()).ok_or_else(|| {
                Status::failed_precondition(format!("machine {query} has no serial; the contractor cannot match it"))
            })?;
            items.push(crate::custody::ManifestItem {
                kind: "machine".to_owned(),
                serial,
                device_id: device.device_id.to_string(),
                hostname: device.hostname.clone(),
            });
        }
        for serial in &req.disks {
            items.push(crate::custody::ManifestItem {
                kind: "disk".to_owned(),
                serial: text("--disk", serial)?,
                device_id: String::new(),
                hostname: String::new(),
            });
        }
        for item in &items {
            if !serials.insert(item.serial.to_lowercase()) {
                return Err(Status::invalid_argument(format!("serial {} is listed twice", item.serial)));
            }
        }
        let id = self.0.store.next_manifest_id()?;
        let now = custodian_proto::now_ms();
        let manifest = crate::custody::Manifest {
            format: crate::custody::MANIFEST_FORMAT.to_owned(),
            id,
            contractor,
            collection_ref,
            created_by: operator.actor(),
            created_at_ms: now,
            items,
        };
        let mut json = serde_json::to_vec_pretty(&manifest).map_err(|e| super::internal("encode a manifest", &e))?;
        json.push(b'\n');
        let signature = self.0.signer.sign_file_bytes(&json).to_vec();
        let mut event = crate::audit::event::AuditEvent::new(
            now,
            operator.actor(),
            crate::audit::event::EventKind::CustodyManifestChanged,
            None,
        )
        .with_detail("action", "created")
        .with_detail("manifest_id", id.to_string())
        .with_detail("contractor", manifest.contractor.clone())
        .with_detail("collection_ref", manifest.collection_ref.clone())
        .with_detail("items", manifest.items.len().to_string());
        event.evidence.push(Evidence::of("manifest_json", &json));
        let record = crate::store::ManifestRecord { json, signature, reconciliation: None, closed: None };
        let audit_seq = self.0.store.put_manifest(id, &record, event)?;
        self.0.store.flush().await?;
        info!(manifest_id = id, operator = %operator.actor(), "custody manifest created");
        Ok(Response::new(manifest_response(&self.0, id, &record, audit_seq)?))
    }

    async fn reconcile_manifest(
        &self,
        req: Request<pb::ReconcileManifestRequest>,
    ) -> Result<Response<pb::ManifestResponse>, Status> {
        let operator = peer_operator(&req, ACKNOWLEDGERS)?;
        let req = req.into_inner();
        let record = self
            .0
            .store
            .manifest(req.id)?
            .ok_or_else(|| Status::not_found(format!("no custody manifest {}", req.id)))?;
        let manifest: crate::custody::Manifest =
            serde_json::from_slice(&record.json).map_err(|e| super::internal("read a manifest", &e))?;
        let result = crate::custody::reconcile(&manifest, &req.serials);
        let mut event = crate::audit::event::AuditEvent::new(
            custodian_proto::now_ms(),
            operator.actor(),
            crate::audit::event::EventKind::CustodyManifestChanged,
            None,
        )
        .with_detail("action", "reconciled")
        .with_detail("manifest_id", req.id.to_string())
        .with_detail("source", req.source.chars().take(256).collect::<String>())
        .with_detail("missing", result.missing.join(" "))
        .with_detail("unexpected", result.unexpected.join(" "))
        .with_detail("duplicates", result.duplicates.join(" "));
        if !req.source_sha256.is_empty() {
            event.evidence.push(crate::audit::event::Evidence {
                name: "contractor_return".to_owned(),
                sha256: req.source_sha256.chars().take(64).collect(),
            });
        }
        let (record, audit_seq) = self
            .0
            .store
            .change_manifest(
                req.id,
                |record| {
                    if record.closed.is_some() {
                        return Err(format!("custody manifest {} is closed", req.id));
                    }
                    record.reconciliation = Some(result.clone());
                    Ok(())
                },
                event,
            )
            .map_err(manifest_error)?;
        self.0.store.flush().await?;
        Ok(Response::new(manifest_response(&self.0, req.id, &record, audit_seq)?))
    }

    async fn close_manifest(
        &self,
        req: Request<pb::CloseManifestRequest>,
    ) -> Result<Response<pb::ManifestResponse>, Status> {
        let operator = peer_operator(&req, ACKNOWLEDGERS)?;
        let id = req.into_inner().id;
        let now = custodian_proto::now_ms();
        let event = crate::audit::event::AuditEvent::new(
            now,
            operator.actor(),
            crate::audit::event::EventKind::CustodyManifestChanged,
            None,
        )
        .with_detail("action", "closed")
        .with_detail("manifest_id", id.to_string());
        let actor = operator.actor();
        let (record, audit_seq) = self
            .0
            .store
            .change_manifest(
                id,
                |record| {
                    if record.closed.is_some() {
                        return Err(format!("custody manifest {id} is already closed"));
                    }
                    match &record.reconciliation {
                        None => Err(format!(
                            "custody manifest {id} cannot be closed: the contractor's return has not been reconciled \
                             (custodianctl custody reconcile {id} FILE.csv)"
                        )),
                        Some(r) if !r.is_clean() => Err(format!(
                            "custody manifest {id} cannot be closed while items are open: missing from the return: [{}]; \
                             returned but never handed over: [{}]; duplicates: [{}]",
                            r.missing.join(", "),
                            r.unexpected.join(", "),
                            r.duplicates.join(", ")
                        )),
                        Some(_) => {
                            record.closed = Some((actor.clone(), now));
                            Ok(())
                        }
                    }
                },
                event,
            )
            .map_err(manifest_error)?;
        self.0.store.flush().await?;
        Ok(Response::new(manifest_response(&self.0, id, &record, audit_seq)?))
    }

    async fn get_certificate(
        &self,
        req: Request<pb::GetCertificateRequest>,
    ) -> Result<Response<pb::GetCertificateResponse>, Status> {
        let operator = peer_operator(&req, ACKNOWLEDGERS)?;
        let device = super::lifecycle::find_one(&self.0, &req.into_inner().query)?;
        let device_id = device.device_id;
        let certificate = issue_certificate(&self.0, device).await?;
        info!(%device_id, operator = %operator.actor(), "certificate of sanitisation fetched");
        Ok(Response::new(pb::GetCertificateResponse {
            certificate_json: certificate.json,
            signature: certificate.signature,
            public_key_pem: self.0.signer.public_key_pem().to_owned(),
            evidence: certificate
                .evidence
                .into_iter()
                .map(|(name, content)| pb::CertificateFile { name, content: content.into_vec() })
                .collect(),
        }))
    }
}

/// The certificate of sanitisation of a disposed machine: the one issued
/// when it was disposed of, or, if there is none (its issue failed), one
/// issued and stored now. Flushes before it returns.
pub(super) async fn issue_certificate(shared: &Arc<Shared>, device: DeviceRecord) -> Result<StoredCertificate, Status> {
    if let Some(stored) = shared.store.certificate(device.device_id)? {
        return Ok(stored);
    }
    let shared2 = shared.clone();
    let certificate = tokio::task::spawn_blocking(move || build_certificate(&shared2, &device))
        .await
        .map_err(|e| super::internal("build a certificate", &e))??;
    let stored =
        shared.store.put_certificate(certificate_device_id(&certificate)?, &certificate, custodian_proto::now_ms())?;
    shared.store.flush().await?;
    Ok(stored)
}

fn certificate_device_id(certificate: &StoredCertificate) -> Result<DeviceId, Status> {
    let parsed: crate::certificate::Certificate =
        serde_json::from_slice(&certificate.json).map_err(|e| super::internal("read a certificate", &e))?;
    parsed.device.device_id.parse().map_err(|e| super::internal("read a certificate's device id", &e))
}

/// Builds and signs the certificate of sanitisation of a disposed machine.
fn build_certificate(shared: &Shared, device: &DeviceRecord) -> Result<StoredCertificate, Status> {
    use base64::Engine;
    use custodian_proto::readable_value;
    use prost::Message;

    use crate::certificate::{
        AttestationFile, CERTIFICATE_FORMAT, Certificate, CertificateDevice, CertificateDisk, CertificateDisposal,
        CertificateEvidence,
    };
    let store = &shared.store;
    let device_id = device.device_id;
    let disposal = store.disposal(device_id)?.filter(|_| device.state == crate::lifecycle::LifecycleState::Disposed);
    let Some(disposal) = disposal else {
        return Err(Status::failed_precondition(format!(
            "device {device_id} is {}; only a disposed machine has a certificate of sanitisation",
            device.state
        )));
    };
    let Some(latest) = store.latest_inventory(device_id)? else {
        return Err(Status::failed_precondition("the machine never sent an inventory"));
    };
    let inventory = latest.decode()?;
    // The evidence the sanitised guard counted: the same window.
    let window = evidence_window(shared, device, latest.received_at_ms)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let source_machine = format!("{} ({device_id})", device.hostname);
    let mut disks = Vec::new();
    let mut files = Vec::new();
    for disk in inventory.storage.iter().filter(|d| !d.removable) {
        let serial = readable_value(disk.serial.as_ref()).unwrap_or_default().to_owned();
        let model = readable_value(disk.model.as_ref()).unwrap_or_default().to_owned();
        let media_type = format!(
            "fixed disk ({}{})",
            if disk.transport.is_empty() { "unknown transport" } else { &disk.transport },
            if disk.rotational { ", rotational" } else { ", solid state" }
        );
        let safe: String =
            serial.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        let base = CertificateDisk {
            media_type,
            model,
            serial: serial.clone(),
            size_bytes: disk.size_bytes,
            source_machine: source_machine.clone(),
            category: String::new(),
            method: String::new(),
            tool: String::new(),
            verification: String::new(),
            person: String::new(),
            organisation: String::new(),
            date: String::new(),
            destination: format!(
                "{} via {} (consignment {})",
                disposal.route, disposal.contractor, disposal.consignment_ref
            ),
            evidence: CertificateEvidence {
                kind: String::new(),
                file: String::new(),
                sha256: String::new(),
                signer_public_key_hex: String::new(),
            },
        };
        if serial.trim().is_empty() {
            return Err(Status::failed_precondition(format!("disk {} has no readable serial", disk.name)));
        }
        if let Some(att) = store.covering_attestation(device_id, &serial, window.retired_at_ms)? {
            let payload = pb::WipeAttestation::decode(att.envelope.payload.as_slice())
                .map_err(|e| super::internal("decode a stored attestation", &e))?;
            let method_name = custodian_proto::json::wipe_method_name(payload.method);
            let category = if method_name.starts_with("purge") { "Purge" } else { "Clear" };
            let verification = payload
                .verification
                .as_ref()
                .map(|v| {
                    let mode =
                        pb::VerifyMode::try_from(v.mode).map(|m| m.as_str_name()).unwrap_or("VERIFY_MODE_UNSPECIFIED");
                    format!(
                        "{}: {} of {} blocks of {} bytes read back; result passed",
                        mode.trim_start_matches("VERIFY_MODE_").to_lowercase(),
                        v.blocks_checked,
                        v.blocks_total,
                        v.block_size
                    )
                })
                .unwrap_or_else(|| "none recorded; result passed".to_owned());
            let signer = store.device(att.signer)?;
            let file = format!("evidence/wipe-attestation-{safe}.json");
            let content = serde_json::to_vec_pretty(&AttestationFile {
                payload_type: att.envelope.payload_type.clone(),
                payload: b64.encode(&att.envelope.payload),
                signature: b64.encode(&att.envelope.signature),
            })
            .map_err(|e| super::internal("encode an attestation", &e))?;
            files.push(pb::CertificateFile { name: file.clone(), content });
            disks.push(CertificateDisk {
                category: category.to_owned(),
                method: format!("{method_name}, {} pass(es)", payload.passes),
                tool: format!("custodian-agent wipe {}", payload.tool_version),
                verification,
                person: payload.operator.clone(),
                organisation: match &signer {
                    Some(s) if s.device_id == device_id => format!("the machine itself ({})", s.hostname),
                    Some(s) => format!("wipe station {} ({})", s.hostname, s.device_id),
                    None => format!("device {}", att.signer),
                },
                date: crate::ctl::format_time(att.finished_at_ms),
                evidence: CertificateEvidence {
                    kind: "wipe_attestation".to_owned(),
                    file,
                    sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&att.envelope.payload)),
                    signer_public_key_hex: signer.map(|s| hex::encode(s.public_key)).unwrap_or_default(),
                },
                ..base
            });
        } else if let Some(record) =
            store.destruction(&serial)?.filter(|r| r.recorded_at_ms >= window.inventory_received_at_ms)
        {
            let file = format!("evidence/destruction-record-{safe}.json");
            files.push(pb::CertificateFile { name: file.clone(), content: record.canonical_bytes() });
            disks.push(CertificateDisk {
                category: "Destroy".to_owned(),
                method: record.method.as_str().to_owned(),
                tool: format!("contractor {}", record.contractor),
                verification: format!("witnessed by {}", record.witness),
                person: record.witness.clone(),
                organisation: format!("{} (certificate of destruction {})", record.contractor, record.certificate_ref),
                date: record.date.clone(),
                evidence: CertificateEvidence {
                    kind: "destruction_record".to_owned(),
                    file,
                    sha256: record.sha256_hex(),
                    signer_public_key_hex: String::new(),
                },
                ..base
            });
        } else {
            return Err(Status::failed_precondition(format!(
                "disk {} (serial {serial}) has no wipe attestation or destruction record that counts (one done \
                 after the machine was retired, or recorded after it last reported the disk)",
                disk.name
            )));
        }
    }
    let audit = inclusion_proof(shared, disposal.audit_seq)?;
    let system = inventory.system.unwrap_or_default();
    let certificate = Certificate {
        format: CERTIFICATE_FORMAT.to_owned(),
        issued_at_ms: custodian_proto::now_ms(),
        device: CertificateDevice {
            device_id: device_id.to_string(),
            hostname: device.hostname.clone(),
            serial: device.serial.clone().unwrap_or_default(),
            asset_tag: device.asset_tag.clone().unwrap_or_default(),
            manufacturer: readable_value(system.vendor.as_ref()).unwrap_or_default().to_owned(),
            model: readable_value(system.model.as_ref()).unwrap_or_default().to_owned(),
        },
        disposal: CertificateDisposal {
            route: disposal.route.as_str().to_owned(),
            contractor: disposal.contractor,
            consignment_ref: disposal.consignment_ref,
            disposed_at_ms: disposal.disposed_at_ms,
            disposed_by: disposal.disposed_by,
            audit_seq: disposal.audit_seq,
        },
        disks,
        audit,
    };
    let mut bytes = serde_json::to_vec_pretty(&certificate).map_err(|e| super::internal("encode a certificate", &e))?;
    bytes.push(b'\n');
    let signature = shared.signer.sign_file_bytes(&bytes);
    Ok(StoredCertificate {
        json: bytes,
        signature: signature.to_vec(),
        evidence: files.into_iter().map(|f| (f.name, serde_bytes::ByteBuf::from(f.content))).collect(),
    })
}

/// The inclusion proof of event `seq` against the latest checkpoint, signing
/// one that covers it if none does yet.
fn inclusion_proof(shared: &Shared, seq: u64) -> Result<crate::audit::verify::InclusionProof, Status> {
    use base64::Engine;
    let store = &shared.store;
    let mut latest = store.latest_checkpoint()?;
    if latest.as_ref().is_none_or(|l| l.size <= seq) {
        latest = shared.signer.cover_everything(store, custodian_proto::now_ms())?;
        store.flush_blocking()?;
    }
    let checkpoint = latest.ok_or_else(|| Status::internal("no checkpoint covers the disposal event"))?;
    let leaves = store.audit_leaf_hashes(checkpoint.size)?;
    let path =
        crate::audit::merkle::inclusion_proof(&leaves, seq).map_err(|e| super::internal("prove inclusion", &e))?;
    let entry = store.audit_entry(seq)?.ok_or_else(|| Status::not_found(format!("no event {seq}")))?;
    Ok(crate::audit::verify::InclusionProof {
        seq,
        event: String::from_utf8(entry.bytes).map_err(|e| super::internal("read an event", &e))?,
        checkpoint: checkpoint.text,
        checkpoint_signature: base64::engine::general_purpose::STANDARD.encode(&checkpoint.signature),
        path: path.iter().map(hex::encode).collect(),
    })
}

fn manifest_error(e: crate::store::ChangeManifestError) -> Status {
    match e {
        crate::store::ChangeManifestError::Unknown(_) => Status::not_found(e.to_string()),
        crate::store::ChangeManifestError::Refused(_) => Status::failed_precondition(e.to_string()),
        crate::store::ChangeManifestError::Store(e) => e.into(),
    }
}

fn manifest_response(
    shared: &Shared,
    id: u64,
    record: &crate::store::ManifestRecord,
    audit_seq: u64,
) -> Result<pb::ManifestResponse, Status> {
    let manifest: crate::custody::Manifest =
        serde_json::from_slice(&record.json).map_err(|e| super::internal("read a manifest", &e))?;
    let reconciliation = record.reconciliation.clone().unwrap_or_default();
    let status = match (&record.closed, &record.reconciliation) {
        (Some(_), _) => "closed",
        (None, Some(r)) if r.is_clean() => "reconciled",
        _ => "open",
    };
    Ok(pb::ManifestResponse {
        manifest_json: record.json.clone(),
        signature: record.signature.clone(),
        public_key_pem: shared.signer.public_key_pem().to_owned(),
        csv: crate::custody::manifest_csv(&manifest),
        missing: reconciliation.missing,
        unexpected: reconciliation.unexpected,
        duplicates: reconciliation.duplicates,
        status: status.to_owned(),
        id,
        audit_seq,
    })
}
