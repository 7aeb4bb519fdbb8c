//! The inventory side of the Operator service: compliance verdicts and
//! staleness for the device list, and inventory changes for `device show`.

use custodian_proto::v1 as pb;
use tonic::Status;

use crate::compliance::{Compliance, encryption_compliance};
use crate::inventory::ChangeKind;
use crate::store::{DeviceRecord, InventoryChange, Store};

/// How many changes `GetDevice` returns.
pub(super) const RECENT_CHANGES: usize = 50;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Fills a summary's compliance and last-inventory fields: from the verdict
/// the record keeps, or, for a record written before it kept one, from the
/// latest inventory read and decoded from the store.
pub(super) fn add_compliance(
    store: &Store,
    summary: &mut pb::DeviceSummary,
    device: &DeviceRecord,
) -> Result<(), Status> {
    let (compliance, last_inventory_ms) = match &device.inventory_verdict {
        Some(verdict) => (verdict.encryption.clone(), verdict.received_at_ms),
        // No report yet, so no inventory: nothing to read.
        None if device.last_seq == 0 => (no_inventory(), 0),
        None => match store.latest_inventory(device.device_id)? {
            Some(latest) => {
                let inventory = latest.decode().map_err(|e| super::internal("decode a stored inventory", &e))?;
                (encryption_compliance(&inventory), latest.received_at_ms)
            }
            None => (no_inventory(), 0),
        },
    };
    summary.last_inventory_ms = last_inventory_ms;
    summary.encryption_compliance = Some(to_pb_verdict(&compliance));
    Ok(())
}

fn no_inventory() -> Compliance {
    Compliance::Unknown { reason: "no inventory received yet".to_owned() }
}

fn to_pb_verdict(compliance: &Compliance) -> pb::ComplianceVerdict {
    match compliance {
        Compliance::Compliant => pb::ComplianceVerdict { state: "compliant".to_owned(), ..Default::default() },
        Compliance::NonCompliant { volumes } => pb::ComplianceVerdict {
            state: "noncompliant".to_owned(),
            unencrypted_volumes: volumes.clone(),
            reason: String::new(),
        },
        Compliance::Unknown { reason } => pb::ComplianceVerdict {
            state: "unknown".to_owned(),
            unencrypted_volumes: Vec::new(),
            reason: reason.clone(),
        },
    }
}

/// Whether a summary passes the list filters: `--stale DAYS` (no check-in
/// for that long, counting from enrolment if never) and `--noncompliant`
/// (anything but a compliant verdict, since an unknown one is not proof).
pub(super) fn passes(summary: &pb::DeviceSummary, req: &pb::ListDevicesRequest, now_ms: i64) -> bool {
    if req.stale_days > 0 {
        let last = if summary.last_seen_ms > 0 { summary.last_seen_ms } else { summary.enrolled_at_ms };
        if now_ms.saturating_sub(last) < i64::from(req.stale_days) * DAY_MS {
            return false;
        }
    }
    if req.noncompliant && summary.encryption_compliance.as_ref().is_some_and(|v| v.state == "compliant") {
        return false;
    }
    true
}

/// A recorded change as a wire type.
pub(super) fn to_pb_change(change: &InventoryChange) -> pb::InventoryChange {
    pb::InventoryChange {
        seq: change.seq,
        at_ms: change.at_ms,
        kind: match change.change.kind {
            ChangeKind::Added => pb::InventoryChangeKind::Added,
            ChangeKind::Removed => pb::InventoryChangeKind::Removed,
            ChangeKind::Changed => pb::InventoryChangeKind::Changed,
        }
        .into(),
        subject: change.change.subject.clone(),
        before: change.change.before.clone().unwrap_or_default(),
        after: change.change.after.clone().unwrap_or_default(),
        flagged: change.change.flag.is_some(),
        flag_reason: change.change.flag.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests;
