//! Wipe stations and wipe attestations for `custodianctl`: station tokens,
//! the per-disk wipe status of `device show`, and `attestations unmatched`.
//! Each attestation's signature is re-checked here against the signer's
//! key, rather than taken from the server.

use std::fmt::Write;

use custodian_proto::envelope::WIPE_ATTESTATION_PAYLOAD_TYPE;
use custodian_proto::json::wipe_method_name;
use custodian_proto::v1 as pb;
use serde_json::{Value, json};

use super::signed::{self, Checked, Verdict};
use super::{Ctl, format_time, status_error};

impl Ctl {
    /// Attestations whose disk is in no machine's latest inventory.
    pub async fn unmatched_attestations(&mut self) -> anyhow::Result<Vec<pb::StoredAttestation>> {
        let res = self
            .client
            .list_unmatched_attestations(pb::ListUnmatchedAttestationsRequest {})
            .await
            .map_err(status_error)?;
        Ok(res.into_inner().attestations)
    }
}

fn verification(att: &pb::WipeAttestation) -> String {
    let Some(v) = &att.verification else { return "not verified".to_owned() };
    match pb::VerifyMode::try_from(v.mode) {
        Ok(pb::VerifyMode::Full) => format!("full read-back ({} of {} blocks)", v.blocks_checked, v.blocks_total),
        Ok(pb::VerifyMode::Sample) => {
            format!("sampled read-back {}% ({} of {} blocks)", v.sample_percent, v.blocks_checked, v.blocks_total)
        }
        Ok(pb::VerifyMode::None) => "drive status only".to_owned(),
        _ => "unknown".to_owned(),
    }
}

fn outcome(att: &pb::WipeAttestation) -> String {
    let Some(r) = &att.result else { return "unknown".to_owned() };
    match pb::WipeOutcome::try_from(r.outcome) {
        Ok(pb::WipeOutcome::Passed) => "PASSED".to_owned(),
        Ok(pb::WipeOutcome::Failed) => match r.first_mismatch_offset {
            Some(offset) => format!("FAILED at byte {offset}: {}", r.reason),
            None => format!("FAILED: {}", r.reason),
        },
        Ok(pb::WipeOutcome::Interrupted) => format!("INTERRUPTED: {}", r.reason),
        _ => "unknown".to_owned(),
    }
}

/// The attestation as its signer signed it, checked here under the
/// signer's enrolled key rather than taken from the server.
fn checked(stored: &pb::StoredAttestation) -> Checked<pb::WipeAttestation> {
    let server_copy = stored.attestation.clone().unwrap_or_default();
    match &stored.envelope {
        Some(envelope) => {
            signed::check(&stored.signer_public_key_hex, envelope, WIPE_ATTESTATION_PAYLOAD_TYPE, &server_copy)
        }
        None => Checked {
            content: server_copy,
            verdict: Verdict::DoesNotVerify("the server sent no signed envelope".to_owned()),
        },
    }
}

/// One line describing an attestation, as [`checked`] found it.
fn summary(stored: &pb::StoredAttestation, checked: &Checked<pb::WipeAttestation>) -> String {
    if stored.attestation.is_none() && stored.envelope.is_none() {
        return "no attestation".to_owned();
    }
    let Checked { content: att, verdict } = checked;
    let by = match pb::DeviceKind::try_from(stored.signer_kind) {
        Ok(pb::DeviceKind::WipeStation) => format!("wipe station {}", stored.signer_device_id),
        _ => "the machine itself".to_owned(),
    };
    let signature = format!("signature {}", verdict.text());
    format!(
        "{} by {} on {} ({}, operator {}), verified by {}; {}; {signature}",
        wipe_method_name(att.method),
        by,
        format_time(att.finished_at_ms),
        if att.passes > 0 { format!("{} pass(es), {}", att.passes, att.pattern) } else { att.pattern.clone() },
        if att.operator.is_empty() { "-" } else { &att.operator },
        verification(att),
        outcome(att),
    )
}

/// The `Disks` section of `device show`.
pub(super) fn render_disks(disks: &[pb::DiskWipeStatus], out: &mut String) {
    if disks.is_empty() {
        return;
    }
    let _ = writeln!(out, "Disks (wipe status)");
    for disk in disks {
        let serial = if disk.serial.is_empty() { "unknown" } else { &disk.serial };
        let _ = writeln!(
            out,
            "  {}: serial {serial}, model {}, {} ({} bytes)",
            disk.name,
            or_dash(&disk.model),
            custodian_proto::json::format_bytes(disk.size_bytes),
            disk.size_bytes
        );
        match (&disk.passed, &disk.latest) {
            (Some(passed), _) => {
                let checked = checked(passed);
                match signed_pass(disk, &checked) {
                    Ok(()) => {
                        let _ = writeln!(out, "    wiped: {}", summary(passed, &checked));
                        if !disk.not_counted.is_empty() {
                            let _ = writeln!(out, "    DOES NOT COUNT: {}", disk.not_counted);
                        }
                    }
                    Err(why) => {
                        let summary = summary(passed, &checked);
                        let _ = writeln!(out, "    NOT wiped as far as custodianctl can tell: {why}; {summary}");
                    }
                }
            }
            (None, Some(latest)) => {
                let _ = writeln!(out, "    NOT wiped; last attempt: {}", summary(latest, &checked(latest)));
            }
            (None, None) => {
                let _ = writeln!(out, "    NOT wiped: no attestation");
            }
        }
    }
}

/// Whether the attestation the server gives as a disk's passing wipe says
/// so itself, signed: that it is of this disk, and that the wipe passed.
/// The server picks the attestation; the signature is what to believe.
fn signed_pass(disk: &pb::DiskWipeStatus, checked: &Checked<pb::WipeAttestation>) -> Result<(), String> {
    let Checked { content, verdict } = checked;
    if !verdict.signature_verifies() {
        return Err("its attestation's signature does not verify".to_owned());
    }
    let serial = content.disk.as_ref().map_or("", |d| d.serial.as_str());
    if !crate::sanitisation::same_serial(serial, &disk.serial) {
        return Err(format!("the attestation given for it is of disk {serial:?}"));
    }
    let outcome = content.result.as_ref().map_or(pb::WipeOutcome::Unspecified, |r| r.outcome());
    if outcome != pb::WipeOutcome::Passed {
        return Err(format!(
            "the signed attestation says {}",
            outcome.as_str_name().trim_start_matches("WIPE_OUTCOME_")
        ));
    }
    Ok(())
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

fn attestation_json(stored: &pb::StoredAttestation) -> Value {
    attestation_json_checked(stored, &checked(stored))
}

/// An attestation as JSON, as [`checked`] found it.
fn attestation_json_checked(stored: &pb::StoredAttestation, checked: &Checked<pb::WipeAttestation>) -> Value {
    let Checked { content: att, verdict } = checked;
    let disk = att.disk.clone().unwrap_or_default();
    json!({
        "signer_device_id": stored.signer_device_id,
        "signer_kind": if stored.signer_kind == i32::from(pb::DeviceKind::WipeStation) { "wipe-station" } else { "workstation" },
        "seq": att.seq,
        "received_at": format_time(stored.received_at_ms),
        "disk": { "serial": disk.serial, "model": disk.model, "wwn": disk.wwn,
                  "apparent_size_bytes": disk.apparent_size_bytes, "native_size_bytes": disk.native_size_bytes,
                  "hidden_area": disk.hidden_area },
        "method": wipe_method_name(att.method),
        "passes": att.passes,
        "pattern": att.pattern,
        "seed": hex::encode(&att.seed),
        "verification": verification(att),
        "result": outcome(att),
        "started_at": format_time(att.started_at_ms),
        "finished_at": format_time(att.finished_at_ms),
        "tool_version": att.tool_version,
        "tool_sha256": att.tool_sha256,
        "operator": att.operator,
        "source_device_id": att.source_device_id,
        "signature_verified": verdict.signature_verifies(),
        "server_copy_matches_signed": *verdict == Verdict::Verified,
    })
}

/// Per-disk wipe status as JSON.
pub(super) fn disks_json(disks: &[pb::DiskWipeStatus]) -> Value {
    Value::Array(
        disks
            .iter()
            .map(|d| {
                let passed = d.passed.as_ref().map(|stored| (stored, checked(stored)));
                json!({
                    "name": d.name,
                    "serial": d.serial,
                    "model": d.model,
                    "size_bytes": d.size_bytes,
                    "wiped": passed.as_ref().is_some_and(|(_, checked)| signed_pass(d, checked).is_ok()),
                    "passed": passed.as_ref().map(|(stored, checked)| attestation_json_checked(stored, checked)),
                    "latest": d.latest.as_ref().map(attestation_json),
                    "not_counted": if d.not_counted.is_empty() { Value::Null } else { json!(d.not_counted) },
                })
            })
            .collect(),
    )
}

/// Unmatched attestations for a terminal.
pub fn render_unmatched(list: &[pb::StoredAttestation]) -> String {
    let mut out = String::new();
    for stored in list {
        let checked = checked(stored);
        let att = &checked.content;
        let disk = att.disk.clone().unwrap_or_default();
        let serial = if disk.serial.is_empty() { "serial unknown".to_owned() } else { disk.serial.clone() };
        let _ = writeln!(
            out,
            "{serial} ({}, {} bytes), seq {} of {}",
            or_dash(&disk.model),
            disk.apparent_size_bytes,
            att.seq,
            stored.signer_device_id
        );
        let _ = writeln!(out, "    {}", summary(stored, &checked));
    }
    let _ = writeln!(out, "{} unmatched attestation(s)", list.len());
    out
}

/// Unmatched attestations as JSON (an array).
pub fn render_unmatched_json(list: &[pb::StoredAttestation]) -> String {
    serde_json::to_string_pretty(&Value::Array(list.iter().map(attestation_json).collect()))
        .expect("JSON values always serialise")
}
