//! Text for the cells of the CSV files operators open in a spreadsheet
//! (device list, disposal register, custody manifest, rollout export).
//!
//! Some of what goes in them comes from machines, not operators: an agent
//! reports its own hostname, and a disk its own serial. A cell that begins
//! with `=`, `+`, `-`, `@`, a tab or a carriage return is read by Excel and
//! LibreOffice as a formula, so a hostname like `=HYPERLINK(...)` would run
//! on the IG auditor's desktop. Such a cell is written with a leading `'`
//! (OWASP's advice for CSV injection), which spreadsheets show as text.

/// `text` made safe to open as a spreadsheet cell (see the module docs);
/// not yet quoted for CSV.
pub fn neutralise(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}").into() } else { text.into() }
}

/// `text` as one CSV field: neutralised, then quoted if it holds a comma,
/// a quote or a line break (RFC 4180).
pub fn csv_field(text: &str) -> String {
    let text = neutralise(text);
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.into_owned() }
}

#[cfg(test)]
mod tests;
