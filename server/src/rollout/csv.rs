//! Waves as CSV: importing a whole wave of bookings, and exporting a plan.
//!
//! A wave file has a header row naming its columns, in any order:
//! `device`, `date` and `site` are required; `ward`, `engineer` and
//! `replaces` are optional. `device` and `replaces` take anything
//! `device show` does (id, hostname, serial, asset tag). The columns the
//! export adds (`plan`, `asset_tag`, `serial`, `hostname`, `deployed_at`,
//! `replaced_retired_at`, `replaced_collected_at`) are ignored, so an export imports again; any other
//! column is refused, so a typo in a header fails closed.

use std::collections::BTreeMap;

use time::Date;

use super::runsheet::MachineFacts;
use super::{Booking, WaveError, check_name, check_optional_name, format_date, parse_date};
use crate::ctl::format_time;

const REQUIRED: [&str; 3] = ["device", "date", "site"];
const OPTIONAL: [&str; 3] = ["ward", "engineer", "replaces"];
const IGNORED: [&str; 7] =
    ["plan", "asset_tag", "serial", "hostname", "deployed_at", "replaced_retired_at", "replaced_collected_at"];

/// Longest wave accepted, in rows.
pub const MAX_ROWS: usize = 10_000;

/// One row of a wave file, checked for form but not yet against the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawWaveRow {
    /// 1-based line in the file, counting the header.
    pub line: u64,
    /// The machine to install (a device query).
    pub device: String,
    /// The day.
    pub date: Date,
    /// Where.
    pub site: String,
    /// Which ward.
    pub ward: Option<String>,
    /// Who installs it.
    pub engineer: Option<String>,
    /// The old machine it replaces (a device query).
    pub replaces: Option<String>,
}

/// Parses a wave file. The first problem found is returned with its line.
pub fn parse_wave(bytes: &[u8]) -> Result<Vec<RawWaveRow>, WaveError> {
    let mut reader = ::csv::ReaderBuilder::new().has_headers(true).trim(::csv::Trim::All).from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| WaveError { line: 1, reason: format!("the header row does not parse: {e}") })?
        .clone();
    let mut columns = BTreeMap::new();
    for (idx, name) in headers.iter().enumerate() {
        let name = name.to_ascii_lowercase();
        if !(REQUIRED.contains(&name.as_str()) || OPTIONAL.contains(&name.as_str()) || IGNORED.contains(&name.as_str()))
        {
            return Err(WaveError {
                line: 1,
                reason: format!(
                    "unknown column {name:?} in the header; columns are {} (required) and {}",
                    REQUIRED.join(", "),
                    OPTIONAL.join(", ")
                ),
            });
        }
        if columns.insert(name.clone(), idx).is_some() {
            return Err(WaveError { line: 1, reason: format!("column {name:?} appears twice in the header") });
        }
    }
    for required in REQUIRED {
        if !columns.contains_key(required) {
            return Err(WaveError {
                line: 1,
                reason: format!("the header has no {required:?} column (required: {})", REQUIRED.join(", ")),
            });
        }
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| WaveError {
            line: e.position().map(|p| p.line()).unwrap_or(0),
            reason: format!("the row does not parse: {e}"),
        })?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if rows.len() >= MAX_ROWS {
            return Err(WaveError { line, reason: format!("a wave holds at most {MAX_ROWS} rows") });
        }
        let field = |name: &str| columns.get(name).and_then(|idx| record.get(*idx)).unwrap_or("").to_owned();
        let bad = |reason: String| WaveError { line, reason };
        let device = field("device");
        if device.is_empty() {
            return Err(bad("the device column is empty".to_owned()));
        }
        let date = parse_date(&field("date")).map_err(bad)?;
        let site = check_name("site", &field("site")).map_err(|e| bad(e.to_string()))?;
        let ward = check_optional_name("ward", &field("ward")).map_err(|e| bad(e.to_string()))?;
        let engineer = check_optional_name("engineer", &field("engineer")).map_err(|e| bad(e.to_string()))?;
        let replaces = Some(field("replaces")).filter(|r| !r.is_empty());
        rows.push(RawWaveRow { line, device, date, site, ward, engineer, replaces });
    }
    Ok(rows)
}

/// A plan's bookings as CSV, one row per machine, ordered by date, site,
/// ward, engineer. `facts` gives each machine's identifiers.
pub fn export_csv(bookings: &[Booking], facts: &BTreeMap<custodian_proto::identity::DeviceId, MachineFacts>) -> String {
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    let header = [
        "plan",
        "date",
        "site",
        "ward",
        "engineer",
        "device",
        "asset_tag",
        "serial",
        "hostname",
        "replaces",
        "deployed_at",
        "replaced_retired_at",
        "replaced_collected_at",
    ];
    writer.write_record(header).expect("writing to memory cannot fail");
    for slot in super::slots(bookings) {
        for booking in &slot.bookings {
            let machine = facts.get(&booking.device_id);
            let text = |f: fn(&MachineFacts) -> Option<&str>| machine.and_then(f).unwrap_or("").to_owned();
            let time = |ms: Option<i64>| ms.map(format_time).unwrap_or_default();
            writer
                .write_record(
                    [
                        booking.plan.clone(),
                        format_date(booking.date),
                        booking.site.clone(),
                        booking.ward.clone().unwrap_or_default(),
                        booking.engineer.clone().unwrap_or_default(),
                        booking.device_id.to_string(),
                        text(|m| m.asset_tag.as_deref()),
                        text(|m| m.serial.as_deref()),
                        text(|m| Some(m.hostname.as_str()).filter(|h| !h.is_empty())),
                        booking.replaces.map(|r| r.to_string()).unwrap_or_default(),
                        time(booking.deployed_at_ms),
                        time(booking.replaced_retired_at_ms),
                        time(booking.replaced_collected_at_ms),
                    ]
                    .map(|cell| crate::spreadsheet::neutralise(&cell).into_owned()),
                )
                .expect("writing to memory cannot fail");
        }
    }
    let bytes = writer.into_inner().expect("flushing to memory cannot fail");
    String::from_utf8(bytes).expect("every field written is a String")
}
