//! `custodianctl` for the register and the lifecycle: adding and importing
//! machines, transitions, notes, history, filtered lists, operators.

use std::fmt::Write;

use anyhow::bail;
use custodian_proto::v1 as pb;
use pb::register_client::RegisterClient;

use super::{Ctl, format_time, status_error};
use crate::audit::event::AuditEvent;

/// The columns `device import` understands (header names, case-insensitive;
/// `-` and spaces read as `_`).
const CSV_COLUMNS: [&str; 7] = ["serial", "asset_tag", "model", "supplier", "order_ref", "site", "state"];
const REQUIRED_COLUMNS: [&str; 3] = ["serial", "asset_tag", "model"];

/// The largest Register message either side accepts: room for an import of
/// the server's limit of 100,000 rows, and for the machines it returns.
pub const REGISTER_MESSAGE_LIMIT: usize = 64 << 20;

impl Ctl {
    fn register(&self) -> RegisterClient<tonic::transport::Channel> {
        // An import of up to 100,000 rows answers with every machine added:
        // well over tonic's default 4 MiB at hospital scale.
        RegisterClient::new(self.channel.clone()).max_decoding_message_size(REGISTER_MESSAGE_LIMIT)
    }

    /// Adds machines, all or none.
    pub async fn add_devices(
        &self,
        devices: Vec<pb::NewDevice>,
        source: &str,
    ) -> anyhow::Result<Vec<pb::DeviceSummary>> {
        let req = pb::AddDevicesRequest { devices, source: source.to_owned() };
        Ok(self.register().add_devices(req).await.map_err(status_error)?.into_inner().devices)
    }

    /// Moves a device through the lifecycle.
    pub async fn transition(&self, req: pb::TransitionDeviceRequest) -> anyhow::Result<pb::TransitionDeviceResponse> {
        Ok(self.register().transition_device(req).await.map_err(status_error)?.into_inner())
    }

    /// Adds a note to a device's history.
    pub async fn add_note(&self, query: &str, text: &str) -> anyhow::Result<pb::AddNoteResponse> {
        let req = pb::AddNoteRequest { query: query.to_owned(), text: text.to_owned() };
        Ok(self.register().add_note(req).await.map_err(status_error)?.into_inner())
    }

    /// Issues an operator identity.
    pub async fn issue_operator(&self, name: &str, role: &str) -> anyhow::Result<pb::IssueOperatorResponse> {
        let req = pb::IssueOperatorRequest { name: name.to_owned(), role: role.to_owned() };
        Ok(self.register().issue_operator(req).await.map_err(status_error)?.into_inner())
    }

    /// One device's events, newest first.
    pub async fn history(&self, query: &str) -> anyhow::Result<(String, Vec<AuditEvent>)> {
        let req = pb::DeviceHistoryRequest { query: query.to_owned() };
        let res = pb::audit_client::AuditClient::new(self.channel.clone())
            .device_history(req)
            .await
            .map_err(status_error)?
            .into_inner();
        let events = res
            .events
            .iter()
            .map(|bytes| {
                AuditEvent::from_bytes(bytes).map_err(|e| anyhow::anyhow!("the server sent an unreadable event: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok((res.device_id, events))
    }
}

/// Splits one CSV line into fields (RFC 4180 quoting; no newlines inside quotes).
fn split_csv_line(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '"') if at_start => quoted = true,
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => {
                quoted = false;
                if !matches!(chars.peek(), None | Some(',')) {
                    return Err("text after a closing quote".to_owned());
                }
            }
            (false, ',') => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
                continue;
            }
            (_, c) => field.push(c),
        }
        at_start = false;
    }
    if quoted {
        return Err("a quoted field is not closed (fields may not span lines)".to_owned());
    }
    fields.push(field);
    Ok(fields)
}

/// Reads a register import file: a header row naming the columns (any of
/// `CSV_COLUMNS`; serial, asset_tag and model required), then one machine
/// per line. Every bad line is reported with its number; blank lines are skipped.
pub fn parse_device_csv(text: &str) -> anyhow::Result<Vec<pb::NewDevice>> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i as u64 + 1, l.trim_end_matches('\r')));
    let Some((_, header)) = lines.next() else {
        bail!("the file is empty; it needs a header row naming the columns: {}", CSV_COLUMNS.join(","));
    };
    let header = split_csv_line(header).map_err(|e| anyhow::anyhow!("line 1: {e}"))?;
    let columns: Vec<String> = header.iter().map(|h| h.trim().to_lowercase().replace(['-', ' '], "_")).collect();
    let mut problems = Vec::new();
    for column in &columns {
        if !CSV_COLUMNS.contains(&column.as_str()) {
            problems.push(format!("line 1: unknown column {column:?} (known: {})", CSV_COLUMNS.join(", ")));
        }
    }
    for required in REQUIRED_COLUMNS {
        if !columns.iter().any(|c| c == required) {
            problems.push(format!("line 1: the header has no {required} column"));
        }
    }
    let mut devices = Vec::new();
    for (line_no, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields = match split_csv_line(line) {
            Ok(fields) => fields,
            Err(e) => {
                problems.push(format!("line {line_no}: {e}"));
                continue;
            }
        };
        if fields.len() != columns.len() {
            problems.push(format!("line {line_no}: {} fields, but the header names {}", fields.len(), columns.len()));
            continue;
        }
        let mut device = pb::NewDevice { line: line_no, ..Default::default() };
        for (column, value) in columns.iter().zip(fields) {
            let value = value.trim().to_owned();
            match column.as_str() {
                "serial" => device.serial = value,
                "asset_tag" => device.asset_tag = value,
                "model" => device.model = value,
                "supplier" => device.supplier = value,
                "order_ref" => device.order_ref = value,
                "site" => device.site = value,
                "state" => device.state = value,
                _ => {}
            }
        }
        for (name, value) in [("serial", &device.serial), ("asset_tag", &device.asset_tag), ("model", &device.model)] {
            if value.is_empty() {
                problems.push(format!("line {line_no}: {name} is empty"));
            }
        }
        devices.push(device);
    }
    if !problems.is_empty() {
        bail!("nothing was imported:\n  {}", problems.join("\n  "));
    }
    if devices.is_empty() {
        bail!("the file has a header but no machines");
    }
    Ok(devices)
}

/// Writes an identity issued by the server into `out` (`ca.pem`,
/// `cert.pem`, `key.pem` at 0600), refusing to overwrite one.
pub fn write_identity(out: &std::path::Path, identity: &pb::IssueOperatorResponse) -> anyhow::Result<()> {
    use crate::operators::{IDENTITY_CA, IDENTITY_CERT, IDENTITY_KEY};
    use anyhow::Context;
    use custodian_proto::files::{write_private, write_public};
    for file in [IDENTITY_CA, IDENTITY_CERT, IDENTITY_KEY] {
        if out.join(file).exists() {
            bail!("{} already exists; refusing to overwrite an operator identity", out.join(file).display());
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    write_private(&out.join(IDENTITY_KEY), identity.key_pem.as_bytes()).context("write operator key")?;
    write_public(&out.join(IDENTITY_CERT), identity.cert_pem.as_bytes()).context("write operator certificate")?;
    write_public(&out.join(IDENTITY_CA), identity.ca_pem.as_bytes()).context("write CA certificate")?;
    Ok(())
}

/// The device list as CSV with a header row.
pub fn render_device_list_csv(devices: &[pb::DeviceSummary]) -> String {
    let mut out = String::from(
        "device_id,hostname,serial,asset_tag,model,registered_model,site,ward,assigned_to,state,last_seen,revoked\n",
    );
    for d in devices {
        let row = [
            d.device_id.as_str(),
            &d.hostname,
            &d.serial,
            &d.asset_tag,
            &d.model,
            &d.registered_model,
            &d.site,
            &d.ward,
            &d.assigned_to,
            &d.state,
            &if d.last_seen_ms == 0 { String::new() } else { format_time(d.last_seen_ms) },
            if d.revocation.is_some() { "yes" } else { "no" },
        ];
        let _ = writeln!(out, "{}", row.iter().map(|f| crate::spreadsheet::csv_field(f)).collect::<Vec<_>>().join(","));
    }
    out
}

/// A device's history for a terminal, newest first.
pub fn render_history(device_id: &str, events: &[AuditEvent]) -> String {
    let mut out = format!("History of device {device_id} ({} events, newest first)\n", events.len());
    for e in events {
        let mut line = format!("{}  #{:<6} {:<20} {}", format_time(e.time_ms), e.seq, e.kind.as_str(), e.actor);
        if let (Some(from), Some(to)) = (&e.from, &e.to) {
            let _ = write!(line, "  {from} -> {to}");
        } else if let Some(to) = &e.to {
            let _ = write!(line, "  -> {to}");
        }
        if let Some(reason) = &e.reason {
            let _ = write!(line, "  \"{reason}\"");
        }
        if let Some(reason) = &e.override_reason {
            let _ = write!(line, "  OVERRIDE: \"{reason}\"");
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

#[cfg(test)]
mod tests;
