//! Rendering devices for a terminal and as JSON.

use std::fmt::Write;

use custodian_proto::envelope::REPORT_PAYLOAD_TYPE;
use custodian_proto::readable_value;
use custodian_proto::v1 as pb;
use serde_json::{Value, json};

/// An RFC 3339 UTC time for Unix milliseconds (`-` for 0, meaning never).
pub fn format_time(ms: i64) -> String {
    if ms == 0 {
        return "-".to_owned();
    }
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{ms} ms"))
}

fn status(device: &pb::DeviceSummary) -> String {
    match &device.revocation {
        None => "active".to_owned(),
        Some(r) => format!("REVOKED {} by {}: {}", format_time(r.revoked_at_ms), r.revoked_by, r.reason),
    }
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

/// The latest report as the device signed it, checked here by the CLI
/// under the device's enrolled key rather than taken from the server.
fn checked_report(
    device: &pb::DeviceSummary,
    report: &pb::Report,
    envelope: &pb::SignedEnvelope,
) -> super::signed::Checked<pb::Report> {
    super::signed::check(&device.public_key_hex, envelope, REPORT_PAYLOAD_TYPE, report)
}

/// The device list as an aligned table.
pub fn render_device_list(devices: &[pb::DeviceSummary]) -> String {
    let mut rows = vec![[
        "DEVICE ID".to_owned(),
        "HOSTNAME".to_owned(),
        "SERIAL".to_owned(),
        "MODEL".to_owned(),
        "LAST SEEN".to_owned(),
        "STATUS".to_owned(),
        "ENCRYPTION".to_owned(),
    ]];
    for d in devices {
        rows.push([
            d.device_id.clone(),
            d.hostname.clone(),
            or_dash(&d.serial).to_owned(),
            or_dash(&d.model).to_owned(),
            format_time(d.last_seen_ms),
            if d.revocation.is_some() {
                format!("{} (revoked)", or_dash(&d.state))
            } else {
                or_dash(&d.state).to_owned()
            },
            d.encryption_compliance.as_ref().map_or("-".to_owned(), |v| v.state.clone()),
        ]);
    }
    let widths: Vec<usize> = (0..7).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    let _ = writeln!(out, "{} device(s)", devices.len());
    out
}

fn device_json(d: &pb::DeviceSummary) -> Value {
    json!({
        "device_id": d.device_id,
        "hostname": d.hostname,
        "serial": d.serial,
        "vendor": d.vendor,
        "model": d.model,
        "site": d.site,
        "status": if d.revocation.is_some() { "revoked" } else { "active" },
        "enrolled_at": format_time(d.enrolled_at_ms),
        "last_seen": if d.last_seen_ms == 0 { Value::Null } else { json!(format_time(d.last_seen_ms)) },
        "last_seq": d.last_seq,
        "n_reports": d.n_reports,
        "cert_not_after": format_time(d.cert_not_after_ms),
        "public_key": d.public_key_hex,
        "state": d.state,
        "asset_tag": d.asset_tag,
        "ward": d.ward,
        "assigned_to": d.assigned_to,
        "supplier": d.supplier,
        "order_ref": d.order_ref,
        "registered_model": d.registered_model,
        "macs": d.macs,
        "revocation": d.revocation.as_ref().map(|r| json!({
            "revoked_at": format_time(r.revoked_at_ms),
            "revoked_by": r.revoked_by,
            "reason": r.reason,
        })),
        "encryption_compliance": d.encryption_compliance.as_ref().map(|v| json!({
            "state": v.state,
            "unencrypted_volumes": v.unencrypted_volumes,
            "reason": v.reason,
        })),
        "last_inventory": if d.last_inventory_ms == 0 { Value::Null } else { json!(format_time(d.last_inventory_ms)) },
    })
}

/// The device list as JSON (an array).
pub fn render_device_list_json(devices: &[pb::DeviceSummary]) -> String {
    let list: Vec<Value> = devices.iter().map(device_json).collect();
    serde_json::to_string_pretty(&list).expect("JSON values always serialise")
}

/// One device and its latest report, for a terminal.
pub fn render_device(res: &pb::GetDeviceResponse) -> String {
    let mut out = String::new();
    let Some(d) = &res.device else {
        return "the server sent no device\n".to_owned();
    };
    let _ = writeln!(out, "Device {}", d.device_id);
    let mut field = |name: &str, value: &str| {
        let _ = writeln!(out, "  {name:<14}{value}");
    };
    field("hostname", &d.hostname);
    field("serial", or_dash(&d.serial));
    field("vendor", or_dash(&d.vendor));
    field("model", or_dash(&d.model));
    field("site", or_dash(&d.site));
    field("status", &status(d));
    field("state", or_dash(&d.state));
    field("asset tag", or_dash(&d.asset_tag));
    field("ward", or_dash(&d.ward));
    field("assigned to", or_dash(&d.assigned_to));
    field("MACs", &if d.macs.is_empty() { "-".to_owned() } else { d.macs.join(", ") });
    field("enrolled", &format_time(d.enrolled_at_ms));
    field("last seen", &format_time(d.last_seen_ms));
    field("reports", &format!("{} (last seq {})", d.n_reports, d.last_seq));
    field("certificate", &format!("expires {}", format_time(d.cert_not_after_ms)));
    field("public key", &d.public_key_hex);
    match (&res.latest_report, &res.latest_envelope) {
        (Some(server_copy), Some(envelope)) => {
            let checked = checked_report(d, server_copy, envelope);
            let report = &checked.content;
            // Every report after the latest inventory was a heartbeat, which
            // carries no inventory of its own.
            let since = match d.last_seq.saturating_sub(report.seq) {
                0 => String::new(),
                1 => format!("; report {} since was a heartbeat", d.last_seq),
                _ => format!("; reports {} to {} since were heartbeats", report.seq + 1, d.last_seq),
            };
            let _ = writeln!(
                out,
                "Latest inventory (report seq {}, collected {}{since})",
                report.seq,
                format_time(report.collected_at_ms)
            );
            out.push_str(&custodian_proto::json::inventory_text(&report.inventory.clone().unwrap_or_default(), "  "));
            let _ = writeln!(out, "  {:<14}{}", "signature", checked.verdict.text());
        }
        _ => {
            let _ = writeln!(out, "No report received yet.");
        }
    }
    out.push_str(&render_compliance_and_changes(res));
    super::attestation::render_disks(&res.disks, &mut out);
    out
}

/// The compliance verdict and recent inventory changes, for a terminal.
fn render_compliance_and_changes(res: &pb::GetDeviceResponse) -> String {
    let mut out = String::new();
    if let Some(verdict) = res.device.as_ref().and_then(|d| d.encryption_compliance.as_ref()) {
        let text = match verdict.state.as_str() {
            "compliant" => "compliant: every fixed data volume is encrypted".to_owned(),
            "noncompliant" => {
                format!("NOT COMPLIANT: {}", custodian_proto::json::describe_noncompliant(&verdict.unencrypted_volumes))
            }
            _ => format!("UNKNOWN: {}", verdict.reason),
        };
        let _ = writeln!(out, "Compliance (decided by the server)\n  {text}");
    }
    if res.inventory_changes.is_empty() {
        return out;
    }
    let _ = writeln!(out, "Recent inventory changes (newest first)");
    for change in &res.inventory_changes {
        let what = match change.kind() {
            pb::InventoryChangeKind::Added => format!("added {}: {}", change.subject, change.after),
            pb::InventoryChangeKind::Removed => format!("REMOVED {}: {}", change.subject, change.before),
            _ => format!("changed {}: {} -> {}", change.subject, change.before, change.after),
        };
        let flag = if change.flagged { format!("  [FLAGGED: {}]", change.flag_reason) } else { String::new() };
        let _ = writeln!(out, "  {} seq {:<5} {what}{flag}", format_time(change.at_ms), change.seq);
    }
    out
}

fn change_json(change: &pb::InventoryChange) -> Value {
    json!({
        "seq": change.seq,
        "at": format_time(change.at_ms),
        "kind": match change.kind() {
            pb::InventoryChangeKind::Added => "added",
            pb::InventoryChangeKind::Removed => "removed",
            _ => "changed",
        },
        "subject": change.subject,
        "before": if change.before.is_empty() { Value::Null } else { json!(change.before) },
        "after": if change.after.is_empty() { Value::Null } else { json!(change.after) },
        "flagged": change.flagged,
        "flag_reason": if change.flagged { json!(change.flag_reason) } else { Value::Null },
    })
}

/// One device and its latest report, as JSON.
pub fn render_device_json(res: &pb::GetDeviceResponse) -> String {
    let mut value = res.device.as_ref().map(device_json).unwrap_or(Value::Null);
    if let (Some(server_copy), Some(envelope), Some(d)) = (&res.latest_report, &res.latest_envelope, &res.device) {
        let checked = checked_report(d, server_copy, envelope);
        let report = &checked.content;
        let inventory = report.inventory.clone().unwrap_or_default();
        let serial = inventory.system.as_ref().and_then(|s| s.serial.as_ref());
        value["reported_serial"] = json!(readable_value(serial));
        value["latest_report"] = json!({
            "seq": report.seq,
            "collected_at": format_time(report.collected_at_ms),
            "agent_version": report.agent_version,
            "signature_verified": checked.verdict.signature_verifies(),
            "server_copy_matches_signed": checked.verdict == super::signed::Verdict::Verified,
            "inventory": custodian_proto::json::inventory(&inventory),
        });
    }
    if !value.is_null() {
        value["inventory_changes"] = json!(res.inventory_changes.iter().map(change_json).collect::<Vec<_>>());
        value["disks"] = super::attestation::disks_json(&res.disks);
    }
    serde_json::to_string_pretty(&value).expect("JSON values always serialise")
}

#[cfg(test)]
mod tests;
