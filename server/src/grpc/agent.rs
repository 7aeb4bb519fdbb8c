//! `Agent`: signed reports and certificate renewal, for enrolled devices.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use custodian_proto::envelope::{self, REPORT_PAYLOAD_TYPE, VerifyEnvelopeError};
use custodian_proto::identity::DeviceId;
use custodian_proto::v1 as pb;
use ed25519_dalek::VerifyingKey;
use prost::Message;
use sha2::Digest;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use super::Shared;
use crate::intake::{BatchOutcome, IntakeError};
use crate::peer::{peer_device, peer_device_renewing};
use crate::store::{CommitOutcome, CommitReportError, DeviceRecord, IncomingReport, ReportContent, StoredEnvelope};

pub(super) struct AgentService {
    shared: Arc<Shared>,
    /// Enrolled keys already checked and decompressed, by device. A device's
    /// key never changes (re-enrolment makes a new device), so an entry
    /// stays valid; revocation is still seen on the very next call, because
    /// the commit checks it in the same transaction that stores the report
    /// and a revoked device's entry is dropped (see `submit_reports`).
    keys: RwLock<HashMap<DeviceId, VerifyingKey>>,
}

impl AgentService {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared, keys: RwLock::default() }
    }

    /// The device's enrolled key: from the cache, or else from the store,
    /// refusing unknown and revoked devices.
    fn enrolled_key(&self, device_id: DeviceId) -> Result<VerifyingKey, Status> {
        if let Some(key) = self.keys.read().unwrap_or_else(|e| e.into_inner()).get(&device_id) {
            return Ok(*key);
        }
        let device = active_device(&self.shared, device_id)?;
        let key =
            VerifyingKey::from_bytes(&device.public_key).map_err(|e| super::internal("load an enrolled key", &e))?;
        self.keys.write().unwrap_or_else(|e| e.into_inner()).insert(device_id, key);
        Ok(key)
    }

    fn forget_key(&self, device_id: DeviceId) {
        self.keys.write().unwrap_or_else(|e| e.into_inner()).remove(&device_id);
    }
}

/// Most envelopes accepted in one `SubmitReports` call.
const MAX_ENVELOPES_PER_CALL: usize = 1000;

/// Why one envelope was refused before it reached the store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VerifyReportError {
    /// The envelope's signature or type is wrong.
    #[error(transparent)]
    Envelope(#[from] VerifyEnvelopeError),
    /// The signed payload is not a `Report`.
    #[error("payload is not a valid report: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// The report names a different device than the certificate.
    #[error("report names device {claimed:?} but the client certificate is device {actual}")]
    WrongDevice {
        /// What the report claims.
        claimed: String,
        /// The mTLS identity.
        actual: DeviceId,
    },
    /// Sequence numbers start at 1.
    #[error("report sequence number must be at least 1")]
    ZeroSeq,
    /// A report needs an inventory with a hostname.
    #[error("report has no inventory hostname")]
    MissingHostname,
    /// A report carries both an inventory and a heartbeat, or neither.
    #[error("report must carry exactly one of an inventory and a heartbeat")]
    InventoryOrHeartbeat,
    /// A heartbeat's hash is not 32 bytes.
    #[error("heartbeat inventory hash must be 32 bytes, got {0}")]
    BadHeartbeatHash(usize),
}

/// The bytes of the `inventory` field (5) exactly as they are in a `Report`
/// payload, so its hash is the one the agent computed, whatever fields this
/// server's schema knows.
/// `None` when the field is absent or the bytes are not well-formed protobuf.
fn raw_inventory_bytes(mut payload: &[u8]) -> Option<&[u8]> {
    use prost::encoding::decode_varint;
    let mut found = None;
    while !payload.is_empty() {
        let key = decode_varint(&mut payload).ok()?;
        let skip = match key & 7 {
            0 => {
                decode_varint(&mut payload).ok()?;
                0
            }
            1 => 8,
            2 => {
                let len = usize::try_from(decode_varint(&mut payload).ok()?).ok()?;
                if key >> 3 == 5 {
                    found = Some(payload.get(..len)?);
                }
                len
            }
            5 => 4,
            _ => return None,
        };
        payload = payload.get(skip..)?;
    }
    found
}

/// Verifies an envelope from `device_id` under `key` and decodes it.
pub(crate) fn verify_report(
    key: &VerifyingKey,
    device_id: DeviceId,
    envelope: pb::SignedEnvelope,
    received_at_ms: i64,
) -> Result<IncomingReport, VerifyReportError> {
    envelope::verify(key, &envelope, REPORT_PAYLOAD_TYPE)?;
    decode_report(device_id, envelope, received_at_ms)
}

/// Decodes a report envelope from `device_id` whose signature has been
/// verified.
fn decode_report(
    device_id: DeviceId,
    envelope: pb::SignedEnvelope,
    received_at_ms: i64,
) -> Result<IncomingReport, VerifyReportError> {
    let payload = envelope.payload.as_slice();
    let report = pb::Report::decode(payload)?;
    if report.device_id != device_id.to_string() {
        return Err(VerifyReportError::WrongDevice { claimed: report.device_id, actual: device_id });
    }
    if report.seq == 0 {
        return Err(VerifyReportError::ZeroSeq);
    }
    let (content, hostname, system) = match (report.inventory, report.heartbeat) {
        (Some(inventory), None) => {
            let hostname = inventory.hostname.trim().to_owned();
            if hostname.is_empty() {
                return Err(VerifyReportError::MissingHostname);
            }
            let raw = raw_inventory_bytes(payload).ok_or(VerifyReportError::InventoryOrHeartbeat)?;
            let sha256: [u8; 32] = sha2::Sha256::digest(raw).into();
            let system = inventory.system.clone().unwrap_or_default();
            (ReportContent::Inventory { inventory: Box::new(inventory), sha256 }, hostname, system)
        }
        (None, Some(heartbeat)) => {
            let len = heartbeat.inventory_sha256.len();
            let inventory_sha256 =
                heartbeat.inventory_sha256.try_into().map_err(|_| VerifyReportError::BadHeartbeatHash(len))?;
            (ReportContent::Heartbeat { inventory_sha256 }, String::new(), pb::SystemInfo::default())
        }
        _ => return Err(VerifyReportError::InventoryOrHeartbeat),
    };
    let text = |r: Option<pb::Readable>| custodian_proto::readable_value(r.as_ref()).map(str::to_owned);
    Ok(IncomingReport {
        device_id,
        seq: report.seq,
        hostname,
        serial: text(system.serial),
        vendor: text(system.vendor),
        model: text(system.model),
        content,
        envelope: StoredEnvelope {
            payload: envelope.payload,
            payload_type: envelope.payload_type,
            signature: envelope.signature,
            received_at_ms,
        },
    })
}

/// The calling device's record, refusing unknown and revoked devices.
fn active_device(shared: &Shared, device_id: DeviceId) -> Result<DeviceRecord, Status> {
    let device = shared.store.device(device_id)?.ok_or_else(|| not_enrolled(device_id))?;
    // Disposal (issue 7): a machine that left and still calls is a ghost;
    // its call is refused and raises an alert.
    if crate::disposal::is_ghost_state(device.state) {
        super::disposal::note_if_ghost(shared, &device);
        return Err(refused_state(device_id, device.state));
    }
    if let Some(revocation) = &device.revocation {
        warn!(%device_id, reason = %revocation.reason, "refused a call from a revoked device");
        return Err(revoked(device_id));
    }
    if device.state.refuses_device() {
        warn!(%device_id, state = %device.state, "refused a call from a lost or disposed device");
        return Err(refused_state(device_id, device.state));
    }
    Ok(device)
}

fn refused_state(device_id: DeviceId, state: crate::lifecycle::LifecycleState) -> Status {
    Status::permission_denied(format!("device {device_id} is {state}; its certificate is refused"))
}

fn not_enrolled(device_id: DeviceId) -> Status {
    Status::unauthenticated(format!("device {device_id} is not enrolled"))
}

fn revoked(device_id: DeviceId) -> Status {
    Status::permission_denied(format!("device {device_id} has been revoked; it must be re-enrolled"))
}

fn rejected(seq: u64, detail: String) -> pb::EnvelopeResult {
    pb::EnvelopeResult { seq, outcome: pb::Outcome::Rejected.into(), detail, ..Default::default() }
}

/// The wire result for one committed envelope (report or attestation).
pub(super) fn to_pb_result(
    device_id: DeviceId,
    seq: u64,
    outcome: Result<CommitOutcome, CommitReportError>,
) -> pb::EnvelopeResult {
    let result = |outcome: pb::Outcome, detail: &str, send_full_inventory| pb::EnvelopeResult {
        seq,
        outcome: outcome.into(),
        detail: detail.to_owned(),
        send_full_inventory,
        ..Default::default()
    };
    match outcome {
        Ok(CommitOutcome::Accepted) => result(pb::Outcome::Accepted, "", false),
        Ok(CommitOutcome::AcceptedWantsInventory) => {
            info!(%device_id, seq, "heartbeat does not match the latest inventory; asking for a full one");
            result(pb::Outcome::Accepted, "inventory hash unknown; send a full inventory", true)
        }
        Ok(CommitOutcome::Duplicate) => result(pb::Outcome::Duplicate, "already accepted", false),
        Err(e) => {
            warn!(%device_id, seq, error = %e, "rejected an envelope");
            let last_accepted_seq = match e {
                CommitReportError::Replayed { last_seq, .. } => last_seq,
                _ => 0,
            };
            pb::EnvelopeResult { last_accepted_seq, ..rejected(seq, e.to_string()) }
        }
    }
}

/// Each envelope's verification (its report's sequence number, or why it
/// was refused), in order, and the commit's outcome for the verified ones.
type VerifiedAndCommitted = (Vec<Result<u64, VerifyReportError>>, Result<BatchOutcome, IntakeError>);

/// Checks a call's report envelopes and commits the verified ones. The
/// verifier thread decodes and prepares them itself and hands them straight
/// to the committer, whose thread answers here once they are durable: the
/// handler is woken once, not once after the check and again after the
/// commit (each wake costs the connection's task a poll).
async fn verify_and_commit(
    shared: &Shared,
    device_id: DeviceId,
    key: VerifyingKey,
    envelopes: Vec<pb::SignedEnvelope>,
) -> Result<VerifiedAndCommitted, Status> {
    let now = custodian_proto::now_ms();
    let (reply, rx) = tokio::sync::oneshot::channel();
    let intake = shared.intake.clone();
    shared
        .verifier
        .check_then(key, envelopes, move |checked| {
            let mut verified = Vec::with_capacity(checked.len());
            let mut reports = Vec::with_capacity(checked.len());
            for (envelope, result) in checked {
                match result.map_err(VerifyReportError::from).and_then(|()| decode_report(device_id, envelope, now)) {
                    Ok(report) => {
                        verified.push(Ok(report.seq));
                        reports.push(report);
                    }
                    Err(e) => verified.push(Err(e)),
                }
            }
            intake.submit(reports, move |committed| {
                // The handler may have gone (its client hung up); nothing to do.
                let _ = reply.send((verified, committed));
            });
        })
        .await?;
    rx.await.map_err(|_| Status::from(IntakeError::Stopped))
}

#[tonic::async_trait]
impl pb::agent_server::Agent for AgentService {
    async fn submit_reports(
        &self,
        req: Request<pb::SubmitReportsRequest>,
    ) -> Result<Response<pb::SubmitReportsResponse>, Status> {
        let device_id = peer_device(&req)?;
        let shared = &self.shared;
        let key = self.enrolled_key(device_id)?;
        let envelopes = req.into_inner().envelopes;
        if envelopes.len() > MAX_ENVELOPES_PER_CALL {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_ENVELOPES_PER_CALL} envelopes per call, got {}",
                envelopes.len()
            )));
        }
        if envelopes.iter().any(|e| e.payload_type == custodian_proto::envelope::WIPE_ATTESTATION_PAYLOAD_TYPE) {
            // Attestations are rare and need the device's kind: read the record.
            let device = active_device(shared, device_id)?;
            let results = super::attestation::submit_in_order(shared, &device, &key, envelopes).await?;
            return Ok(Response::new(pb::SubmitReportsResponse { results }));
        }
        let (verified, outcomes) = verify_and_commit(shared, device_id, key, envelopes).await?;
        let mut results: Vec<Option<pb::EnvelopeResult>> = Vec::with_capacity(verified.len());
        let mut seqs = Vec::with_capacity(verified.len());
        for checked in verified {
            match checked {
                Ok(seq) => {
                    seqs.push(seq);
                    results.push(None);
                }
                Err(e) => {
                    warn!(%device_id, error = %e, "rejected a report");
                    results.push(Some(rejected(0, e.to_string())));
                }
            }
        }
        if seqs.is_empty() {
            // Nothing reached the commit, which is where a cached key's device
            // is checked; refuse unknown and revoked devices here instead.
            active_device(shared, device_id)?;
        }
        let outcomes = outcomes?;
        for outcome in &outcomes {
            match outcome {
                Err(CommitReportError::Revoked(_)) => {
                    warn!(%device_id, "refused a call from a revoked device");
                    super::disposal::note_if_ghost_id(shared, device_id);
                    self.forget_key(device_id);
                    return Err(revoked(device_id));
                }
                Err(CommitReportError::UnknownDevice(_)) => {
                    self.forget_key(device_id);
                    return Err(not_enrolled(device_id));
                }
                Err(CommitReportError::Refused { state, .. }) => {
                    warn!(%device_id, %state, "refused a call from a lost or disposed device");
                    super::disposal::note_if_ghost_id(shared, device_id);
                    self.forget_key(device_id);
                    return Err(refused_state(device_id, *state));
                }
                _ => {}
            }
        }
        let mut committed = seqs.into_iter().zip(outcomes);
        let results = results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| {
                    let (seq, outcome) = committed.next().expect("one outcome per verified report");
                    to_pb_result(device_id, seq, outcome)
                })
            })
            .collect();
        Ok(Response::new(pb::SubmitReportsResponse { results }))
    }

    async fn renew(&self, req: Request<pb::RenewRequest>) -> Result<Response<pb::RenewResponse>, Status> {
        let device_id = peer_device_renewing(&req)?;
        let shared = &self.shared;
        let device = active_device(shared, device_id)?;
        let (cert, key) =
            shared.ca.issue_device_cert(&req.into_inner().csr_pem, device_id, shared.config.device_cert_lifetime)?;
        if key.to_bytes() != device.public_key {
            warn!(%device_id, "refused a renewal for a key other than the enrolled one");
            return Err(Status::permission_denied(
                "the CSR's key is not this device's enrolled key; re-enrol to change keys",
            ));
        }
        shared.store.set_cert_expiry(device_id, cert.not_after_ms)?;
        shared.store.flush().await?;
        info!(%device_id, not_after_ms = cert.not_after_ms, "device certificate renewed");
        Ok(Response::new(pb::RenewResponse { certificate_pem: cert.pem, not_after_ms: cert.not_after_ms }))
    }
}
