//! `Agent`: signed reports and certificate renewal, for enrolled devices.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use custodian_proto::envelope::{self, REPORT_PAYLOAD_TYPE, VerifyEnvelopeError};
use custodian_proto::identity::DeviceId;
use custodian_proto::v1 as pb;
use ed25519_dalek::VerifyingKey;
use prost::Message;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use super::Shared;
use crate::peer::peer_device;
use crate::store::{CommitOutcome, CommitReportError, DeviceRecord, IncomingReport, StoredEnvelope};

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
}

/// Verifies an envelope from `device_id` under `key` and decodes it.
pub(crate) fn verify_report(
    key: &VerifyingKey,
    device_id: DeviceId,
    envelope: pb::SignedEnvelope,
    received_at_ms: i64,
) -> Result<IncomingReport, VerifyReportError> {
    let payload = envelope::verify(key, &envelope, REPORT_PAYLOAD_TYPE)?;
    let report = pb::Report::decode(payload)?;
    if report.device_id != device_id.to_string() {
        return Err(VerifyReportError::WrongDevice { claimed: report.device_id, actual: device_id });
    }
    if report.seq == 0 {
        return Err(VerifyReportError::ZeroSeq);
    }
    let inventory = report.inventory.unwrap_or_default();
    let hostname = inventory.hostname.trim().to_owned();
    if hostname.is_empty() {
        return Err(VerifyReportError::MissingHostname);
    }
    let system = inventory.system.unwrap_or_default();
    let text = |r: Option<pb::Readable>| custodian_proto::readable_value(r.as_ref()).map(str::to_owned);
    Ok(IncomingReport {
        device_id,
        seq: report.seq,
        hostname,
        serial: text(system.serial),
        vendor: text(system.vendor),
        model: text(system.model),
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
    if let Some(revocation) = &device.revocation {
        warn!(%device_id, reason = %revocation.reason, "refused a call from a revoked device");
        return Err(revoked(device_id));
    }
    Ok(device)
}

fn not_enrolled(device_id: DeviceId) -> Status {
    Status::unauthenticated(format!("device {device_id} is not enrolled"))
}

fn revoked(device_id: DeviceId) -> Status {
    Status::permission_denied(format!("device {device_id} has been revoked; it must be re-enrolled"))
}

fn rejected(seq: u64, detail: String) -> pb::EnvelopeResult {
    pb::EnvelopeResult { seq, outcome: pb::Outcome::Rejected.into(), detail }
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
        let now = custodian_proto::now_ms();
        let mut results: Vec<Option<pb::EnvelopeResult>> = Vec::with_capacity(envelopes.len());
        let mut verified = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            match verify_report(&key, device_id, envelope, now) {
                Ok(report) => {
                    verified.push(report);
                    results.push(None);
                }
                Err(e) => {
                    warn!(%device_id, error = %e, "rejected a report");
                    results.push(Some(rejected(0, e.to_string())));
                }
            }
        }
        if verified.is_empty() {
            // Nothing reaches the commit, which is where a cached key's device
            // is checked; refuse unknown and revoked devices here instead.
            active_device(shared, device_id)?;
        }
        let seqs: Vec<u64> = verified.iter().map(|r| r.seq).collect();
        let outcomes = shared.intake.accept(verified).await?;
        for outcome in &outcomes {
            match outcome {
                Err(CommitReportError::Revoked(_)) => {
                    warn!(%device_id, "refused a call from a revoked device");
                    self.forget_key(device_id);
                    return Err(revoked(device_id));
                }
                Err(CommitReportError::UnknownDevice(_)) => {
                    self.forget_key(device_id);
                    return Err(not_enrolled(device_id));
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
                    match outcome {
                        Ok(CommitOutcome::Accepted) => {
                            pb::EnvelopeResult { seq, outcome: pb::Outcome::Accepted.into(), detail: String::new() }
                        }
                        Ok(CommitOutcome::Duplicate) => pb::EnvelopeResult {
                            seq,
                            outcome: pb::Outcome::Duplicate.into(),
                            detail: "already accepted".to_owned(),
                        },
                        Err(e) => {
                            warn!(%device_id, seq, error = %e, "rejected a report");
                            rejected(seq, e.to_string())
                        }
                    }
                })
            })
            .collect();
        Ok(Response::new(pb::SubmitReportsResponse { results }))
    }

    async fn renew(&self, req: Request<pb::RenewRequest>) -> Result<Response<pb::RenewResponse>, Status> {
        let device_id = peer_device(&req)?;
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
