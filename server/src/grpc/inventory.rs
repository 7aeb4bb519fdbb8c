//! The inventory side of the Operator service: compliance verdicts and
//! staleness for the device list, and inventory changes for `device show`.

use custodian_proto::v1 as pb;
use tonic::Status;

use super::Shared;
use crate::compliance::{Compliance, encryption_compliance};
use crate::inventory::ChangeKind;
use crate::store::{DeviceRecord, InventoryChange};

/// How many changes `GetDevice` returns.
pub(super) const RECENT_CHANGES: usize = 50;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Fills a summary's compliance and last-inventory fields from the store.
pub(super) fn add_compliance(
    shared: &Shared,
    summary: &mut pb::DeviceSummary,
    device: &DeviceRecord,
) -> Result<(), Status> {
    let latest = shared.store.latest_inventory(device.device_id)?;
    let compliance = match &latest {
        Some(latest) => {
            let inventory = latest.decode().map_err(|e| super::internal("decode a stored inventory", &e))?;
            encryption_compliance(&inventory)
        }
        None => Compliance::Unknown { reason: "no inventory received yet".to_owned() },
    };
    summary.last_inventory_ms = latest.map_or(0, |l| l.received_at_ms);
    summary.encryption_compliance = Some(to_pb_verdict(&compliance));
    Ok(())
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
