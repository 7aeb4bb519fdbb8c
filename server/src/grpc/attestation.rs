//! Wipe attestations arriving through `Agent.SubmitReports`: verification
//! (signature under the enrolled key first, then well-formedness), the
//! in-order commit of batches that mix reports and attestations, and the
//! operator-side conversions.

use custodian_proto::envelope::{self, VerifyEnvelopeError, WIPE_ATTESTATION_PAYLOAD_TYPE};
use custodian_proto::identity::DeviceId;
use custodian_proto::v1 as pb;
use ed25519_dalek::VerifyingKey;
use prost::Message;
use tonic::Status;
use tracing::{info, warn};

use super::Shared;
use super::convert::to_pb_envelope;
use crate::store::attestation::{AttestationRecord, DiskCoverage, IncomingAttestation};
use crate::store::{DeviceKind, DeviceRecord, StoredEnvelope};

/// Longest disk serial, model or WWN accepted.
const MAX_IDENTITY_LEN: usize = 256;
/// Most overwrite passes accepted.
const MAX_PASSES: u32 = 35;

/// Why an attestation was refused before it reached the store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VerifyAttestationError {
    /// The envelope's signature or type is wrong.
    #[error(transparent)]
    Envelope(#[from] VerifyEnvelopeError),
    /// The signed payload is not a `WipeAttestation`.
    #[error("payload is not a valid wipe attestation: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// The attestation names a different signer than the certificate.
    #[error("attestation names device {claimed:?} but the client certificate is device {actual}")]
    WrongDevice {
        /// What the attestation claims.
        claimed: String,
        /// The mTLS identity.
        actual: DeviceId,
    },
    /// A field is missing or out of range.
    #[error("attestation is not well-formed: {0}")]
    Invalid(String),
}

/// Verifies an attestation envelope from `device` (the mTLS peer's record)
/// and decodes it. The signature is checked before anything is decoded.
pub(crate) fn verify_attestation(
    key: &VerifyingKey,
    device: &DeviceRecord,
    envelope: pb::SignedEnvelope,
    received_at_ms: i64,
) -> Result<IncomingAttestation, VerifyAttestationError> {
    let payload = envelope::verify(key, &envelope, WIPE_ATTESTATION_PAYLOAD_TYPE)?;
    let att = pb::WipeAttestation::decode(payload)?;
    let device_id = device.device_id;
    if att.device_id != device_id.to_string() {
        return Err(VerifyAttestationError::WrongDevice { claimed: att.device_id, actual: device_id });
    }
    let invalid = |why: String| Err(VerifyAttestationError::Invalid(why));
    if att.seq == 0 {
        return invalid("sequence number must be at least 1".to_owned());
    }
    let Some(disk) = &att.disk else { return invalid("no disk".to_owned()) };
    if disk.apparent_size_bytes == 0 {
        return invalid("disk size is 0".to_owned());
    }
    if disk.native_size_bytes < disk.apparent_size_bytes {
        return invalid("native size is smaller than the apparent size".to_owned());
    }
    if [&disk.serial, &disk.model, &disk.wwn].iter().any(|s| s.len() > MAX_IDENTITY_LEN) {
        return invalid(format!("disk serial, model and WWN must be at most {MAX_IDENTITY_LEN} bytes"));
    }
    let method = pb::WipeMethod::try_from(att.method).unwrap_or(pb::WipeMethod::Unspecified);
    if method == pb::WipeMethod::Unspecified {
        return invalid(format!("unknown method {}", att.method));
    }
    if att.passes > MAX_PASSES {
        return invalid(format!("{} passes is more than {MAX_PASSES}", att.passes));
    }
    if !att.seed.is_empty() && att.seed.len() != 32 {
        return invalid(format!("seed is {} bytes, expected 32", att.seed.len()));
    }
    if att.started_at_ms <= 0 || att.finished_at_ms < att.started_at_ms {
        return invalid(format!("times out of order (started {}, finished {})", att.started_at_ms, att.finished_at_ms));
    }
    if att.finished_at_ms > received_at_ms.saturating_add(24 * 3600 * 1000) {
        return invalid("finished more than a day in the future".to_owned());
    }
    let Some(verification) = &att.verification else { return invalid("no verification".to_owned()) };
    if verification.blocks_checked > verification.blocks_total {
        return invalid("more blocks checked than the disk has".to_owned());
    }
    let Some(result) = &att.result else { return invalid("no result".to_owned()) };
    let outcome = pb::WipeOutcome::try_from(result.outcome).unwrap_or(pb::WipeOutcome::Unspecified);
    if outcome == pb::WipeOutcome::Unspecified {
        return invalid(format!("unknown result {}", result.outcome));
    }
    let mode = pb::VerifyMode::try_from(verification.mode).unwrap_or(pb::VerifyMode::Unspecified);
    let checked =
        mode == pb::VerifyMode::Full || mode == pb::VerifyMode::Sample || method == pb::WipeMethod::PurgeSanitize;
    if outcome == pb::WipeOutcome::Passed
        && (!checked || (mode != pb::VerifyMode::None && verification.blocks_checked == 0))
    {
        return invalid("a passed wipe must say how it was verified".to_owned());
    }
    if outcome == pb::WipeOutcome::Passed
        && let Some(why) = short_of_the_disk(method, mode, disk, verification)
    {
        return invalid(why);
    }
    let source_device = match device.kind {
        DeviceKind::WipeStation => None,
        DeviceKind::Workstation => {
            if att.source_device_id != device_id.to_string() {
                return invalid(format!(
                    "a workstation attests only to its own disks; source is {:?}, not {device_id}",
                    att.source_device_id
                ));
            }
            Some(device_id)
        }
    };
    Ok(IncomingAttestation {
        signer: device_id,
        seq: att.seq,
        disk_serial: disk.serial.trim().to_owned(),
        source_device,
        passed: outcome == pb::WipeOutcome::Passed,
        finished_at_ms: att.finished_at_ms,
        envelope: StoredEnvelope {
            payload: envelope.payload,
            payload_type: envelope.payload_type,
            signature: envelope.signature,
            received_at_ms,
        },
    })
}

/// Why a passed wipe does not reach the whole disk, if it does not. An
/// overwrite (Clear) sanitises only what it wrote: a hidden area beyond the
/// apparent size (HPA/DCO) is left as it was, and its verification must span
/// the disk; a full verification must have checked every block. Purge
/// methods act on the whole device and verify what they changed, so only
/// the last rule applies to them.
fn short_of_the_disk(
    method: pb::WipeMethod,
    mode: pb::VerifyMode,
    disk: &pb::WipedDisk,
    verification: &pb::WipeVerification,
) -> Option<String> {
    let clear =
        matches!(method, pb::WipeMethod::ClearZero | pb::WipeMethod::ClearRandom | pb::WipeMethod::ClearMultipass);
    if clear && disk.native_size_bytes > disk.apparent_size_bytes {
        return Some(format!(
            "a clear wipe that passed must cover the whole disk, but {} bytes beyond its apparent size (a hidden \
             area: {}) were not written; remove the hidden area and wipe again",
            disk.native_size_bytes - disk.apparent_size_bytes,
            if disk.hidden_area.is_empty() { "not described" } else { &disk.hidden_area }
        ));
    }
    let spanned = verification.blocks_total.saturating_mul(verification.block_size);
    if clear && spanned < disk.apparent_size_bytes {
        return Some(format!(
            "the verification spans {spanned} bytes ({} blocks of {}), less than the disk's {}",
            verification.blocks_total, verification.block_size, disk.apparent_size_bytes
        ));
    }
    if mode == pb::VerifyMode::Full && verification.blocks_checked != verification.blocks_total {
        return Some(format!(
            "a full verification must check every block, but checked {} of {}",
            verification.blocks_checked, verification.blocks_total
        ));
    }
    None
}

fn rejected(detail: String) -> pb::EnvelopeResult {
    pb::EnvelopeResult { seq: 0, outcome: pb::Outcome::Rejected.into(), detail, ..Default::default() }
}

/// Commits a batch that holds at least one attestation, one envelope at a
/// time in the order sent (reports and attestations share the sequence, so
/// order matters), each durable before its result is given.
pub(super) async fn submit_in_order(
    shared: &Shared,
    device: &DeviceRecord,
    key: &VerifyingKey,
    envelopes: Vec<pb::SignedEnvelope>,
) -> Result<Vec<pb::EnvelopeResult>, Status> {
    let device_id = device.device_id;
    let mut results = Vec::with_capacity(envelopes.len());
    for envelope in envelopes {
        let now = custodian_proto::now_ms();
        let (seq, outcome) = if envelope.payload_type == WIPE_ATTESTATION_PAYLOAD_TYPE {
            match verify_attestation(key, device, envelope, now) {
                Ok(att) => {
                    let outcome = shared.store.commit_attestation(&att)?;
                    shared.store.flush().await?;
                    if outcome.is_ok() {
                        info!(%device_id, seq = att.seq, serial = %att.disk_serial, passed = att.passed, "wipe attestation accepted");
                    }
                    (att.seq, outcome)
                }
                Err(e) => {
                    warn!(%device_id, error = %e, "rejected a wipe attestation");
                    results.push(rejected(e.to_string()));
                    continue;
                }
            }
        } else {
            match super::agent::verify_report(key, device_id, envelope, now) {
                Ok(report) => {
                    let seq = report.seq;
                    let mut outcomes = shared.intake.accept(vec![report]).await?;
                    (seq, outcomes.pop().expect("one outcome per report"))
                }
                Err(e) => {
                    warn!(%device_id, error = %e, "rejected a report");
                    results.push(rejected(e.to_string()));
                    continue;
                }
            }
        };
        results.push(super::agent::to_pb_result(device_id, seq, outcome));
    }
    Ok(results)
}

/// The wire form of a store's device kind.
pub(super) fn to_pb_kind(kind: DeviceKind) -> pb::DeviceKind {
    match kind {
        DeviceKind::Workstation => pb::DeviceKind::Workstation,
        DeviceKind::WipeStation => pb::DeviceKind::WipeStation,
    }
}

/// The store's device kind for a token request (unspecified: workstation).
pub(super) fn from_pb_kind(kind: i32) -> Result<DeviceKind, Status> {
    match pb::DeviceKind::try_from(kind) {
        Ok(pb::DeviceKind::Unspecified | pb::DeviceKind::Workstation) => Ok(DeviceKind::Workstation),
        Ok(pb::DeviceKind::WipeStation) => Ok(DeviceKind::WipeStation),
        Err(_) => Err(Status::invalid_argument(format!("unknown device kind {kind}"))),
    }
}

/// A stored attestation for operators. It was verified before it was
/// stored; one that no longer decodes is an internal error.
pub(super) fn to_pb_attestation(shared: &Shared, record: &AttestationRecord) -> Result<pb::StoredAttestation, Status> {
    let attestation = pb::WipeAttestation::decode(record.envelope.payload.as_slice())
        .map_err(|e| super::internal("decode a stored attestation", &e))?;
    let signer = shared.store.device(record.signer)?;
    let signer_kind = signer.as_ref().map(|d| d.kind).unwrap_or_default();
    Ok(pb::StoredAttestation {
        envelope: Some(to_pb_envelope(&record.envelope)),
        attestation: Some(attestation),
        signer_device_id: record.signer.to_string(),
        signer_kind: to_pb_kind(signer_kind).into(),
        received_at_ms: record.envelope.received_at_ms,
        signer_public_key_hex: signer.map(|d| hex::encode(d.public_key)).unwrap_or_default(),
    })
}

/// Per-disk wipe status of a device for `GetDevice`. For a machine that
/// has been retired (or gone further), a passing wipe from before its
/// retirement is marked as not counting, as the `sanitised` guard sees it.
pub(super) fn disks(shared: &Shared, device: &DeviceRecord) -> Result<Vec<pb::DiskWipeStatus>, Status> {
    use crate::lifecycle::LifecycleState as S;
    let device_id = device.device_id;
    let coverage: Vec<DiskCoverage> = shared.store.wipe_coverage(device_id)?;
    let retired_at = match device.state {
        S::Retired | S::Sanitised | S::Disposed => shared.store.last_moved_to(device_id, S::Retired)?,
        _ => None,
    };
    coverage
        .into_iter()
        .map(|disk| {
            let not_counted = match (&disk.passed, retired_at) {
                (Some(att), Some(retired_at)) if !crate::store::done_since(att, retired_at) => format!(
                    "this wipe is from before the machine was retired ({}), so it does not count towards \
                     sanitised: wipe the disk again",
                    crate::ctl::format_time(retired_at)
                ),
                _ => String::new(),
            };
            Ok(pb::DiskWipeStatus {
                not_counted,
                name: disk.name,
                serial: disk.serial.unwrap_or_default(),
                model: disk.model.unwrap_or_default(),
                size_bytes: disk.size_bytes,
                passed: disk.passed.as_ref().map(|a| to_pb_attestation(shared, a)).transpose()?,
                latest: disk.latest.as_ref().map(|a| to_pb_attestation(shared, a)).transpose()?,
            })
        })
        .collect()
}

/// Attestations that match no machine, for `ListUnmatchedAttestations`.
pub(super) fn unmatched(shared: &Shared) -> Result<pb::ListUnmatchedAttestationsResponse, Status> {
    let attestations = shared
        .store
        .unmatched_attestations()?
        .iter()
        .map(|a| to_pb_attestation(shared, a))
        .collect::<Result<_, _>>()?;
    Ok(pb::ListUnmatchedAttestationsResponse { attestations })
}

#[cfg(test)]
mod tests;
