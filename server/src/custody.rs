//! Chain of custody to a contractor (issue 7): a manifest of the machines and
//! loose disks (by serial) handed over in one collection, signed with the
//! server's signing key, and its reconciliation against the contractor's
//! return: serials missing from the return, serials returned that were never
//! handed over, and duplicates. A manifest closes only when its latest
//! reconciliation left none of those open.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The `format` of manifests this build writes.
pub const MANIFEST_FORMAT: &str = "custodian-custody-manifest/1";

/// What was handed to a contractor in one collection (`manifest.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// The manifest's id.
    pub id: u64,
    /// The contractor.
    pub contractor: String,
    /// The collection or WEEE consignment reference.
    pub collection_ref: String,
    /// Who handed it over (`name (role)`).
    pub created_by: String,
    /// When, Unix ms.
    pub created_at_ms: i64,
    /// The machines and loose disks.
    pub items: Vec<ManifestItem>,
}

/// One machine or loose disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestItem {
    /// `machine` or `disk`.
    pub kind: String,
    /// Its serial.
    pub serial: String,
    /// For machines: the device id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub device_id: String,
    /// For machines: the hostname.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
}

/// The outcome of matching a return against a manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciliation {
    /// Handed over, not in the return.
    pub missing: Vec<String>,
    /// In the return, never handed over.
    pub unexpected: Vec<String>,
    /// In the return more than once.
    pub duplicates: Vec<String>,
}

impl Reconciliation {
    /// Whether nothing is left open.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.duplicates.is_empty()
    }
}

fn norm(serial: &str) -> String {
    serial.trim().to_lowercase()
}

/// Matches the serials of a contractor's return against a manifest's items
/// (case-insensitive, surrounding spaces ignored, empty entries skipped).
pub fn reconcile(manifest: &Manifest, returned: &[String]) -> Reconciliation {
    let handed: BTreeMap<String, &str> = manifest.items.iter().map(|i| (norm(&i.serial), i.serial.as_str())).collect();
    let mut seen: BTreeMap<String, (&str, usize)> = BTreeMap::new();
    for serial in returned.iter().filter(|s| !s.trim().is_empty()) {
        seen.entry(norm(serial)).or_insert((serial.trim(), 0)).1 += 1;
    }
    let returned_set: BTreeSet<&String> = seen.keys().collect();
    Reconciliation {
        missing: handed.iter().filter(|(k, _)| !returned_set.contains(k)).map(|(_, v)| (*v).to_owned()).collect(),
        unexpected: seen.iter().filter(|(k, _)| !handed.contains_key(*k)).map(|(_, (v, _))| (*v).to_owned()).collect(),
        duplicates: seen.values().filter(|(_, n)| *n > 1).map(|(v, _)| (*v).to_owned()).collect(),
    }
}

/// The manifest as CSV with a header row, for the paperwork.
pub fn manifest_csv(manifest: &Manifest) -> String {
    let field = crate::spreadsheet::csv_field;
    let mut out = String::from("manifest_id,contractor,collection_ref,kind,serial,hostname,device_id\n");
    for item in &manifest.items {
        let row = [
            manifest.id.to_string(),
            manifest.contractor.clone(),
            manifest.collection_ref.clone(),
            item.kind.clone(),
            item.serial.clone(),
            item.hostname.clone(),
            item.device_id.clone(),
        ];
        out.push_str(&row.iter().map(|v| field(v)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

/// Reads the serials from a contractor's return CSV: the column headed
/// `serial` (case-insensitive). Quoted fields (`"OptiPlex 7010, SFF"`) and
/// the byte-order mark Excel writes are read as a spreadsheet would.
pub fn parse_return_csv(text: &str) -> Result<Vec<String>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = ::csv::ReaderBuilder::new().flexible(true).trim(::csv::Trim::All).from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| format!("cannot read the header row: {e}"))?.clone();
    if header.is_empty() {
        return Err("the return file is empty".to_owned());
    }
    let Some(col) = header.iter().position(|c| c.eq_ignore_ascii_case("serial")) else {
        return Err(format!(
            "the return file has no `serial` column (header: {:?})",
            header.iter().collect::<Vec<_>>()
        ));
    };
    let mut serials = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("{e}"))?;
        if let Some(serial) = record.get(col).filter(|s| !s.is_empty()) {
            serials.push(serial.to_owned());
        }
    }
    Ok(serials)
}

#[cfg(test)]
mod tests;
