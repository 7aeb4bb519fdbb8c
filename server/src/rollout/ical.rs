//! A plan as an iCalendar file (RFC 5545) that calendar clients open: one
//! all-day `VEVENT` per slot, its location the site and ward, its
//! description the machines to install and what each replaces.
//!
//! Written by hand: CRLF line endings, lines folded at 75 octets (never
//! inside a UTF-8 character), and TEXT values escaped (`\\`, `\;`, `\,`,
//! `\n`).

use std::collections::BTreeMap;

use custodian_proto::identity::DeviceId;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::runsheet::MachineFacts;
use super::{Booking, Plan, slots};

/// The longest line, in octets, before folding (RFC 5545 §3.1).
const MAX_LINE_OCTETS: usize = 75;

/// The iCalendar text of `plan`'s bookings: one event per slot. `stamp` is
/// the DTSTAMP of every event.
pub fn export_ical(
    plan: &Plan,
    bookings: &[Booking],
    facts: &BTreeMap<DeviceId, MachineFacts>,
    stamp: OffsetDateTime,
) -> String {
    let mut out = String::new();
    let mut line = |text: &str| fold_into(&mut out, text);
    line("BEGIN:VCALENDAR");
    line("VERSION:2.0");
    line("PRODID:-//Custodian//Rollout//EN");
    line("CALSCALE:GREGORIAN");
    line("METHOD:PUBLISH");
    line(&format!("X-WR-CALNAME:{}", escape_text(&format!("Rollout {}", plan.name))));
    let stamp = utc_basic(stamp);
    for slot in slots(bookings) {
        let uid = slot_uid(&plan.name, &slot);
        let n = slot.bookings.len();
        let mut summary = format!("Rollout {}: install {n} machine{} at {}", plan.name, plural(n), slot.place());
        if let Some(engineer) = &slot.engineer {
            summary.push_str(&format!(" ({engineer})"));
        }
        let mut description = Vec::new();
        for booking in &slot.bookings {
            let machine = facts.get(&booking.device_id);
            let mut item = describe(booking.device_id, machine);
            if let Some(old) = booking.replaces {
                item.push_str(&format!(", replaces {}", describe(old, facts.get(&old))));
            }
            if booking.deployed_at_ms.is_some() {
                item.push_str(" [deployed]");
            }
            description.push(item);
        }
        line("BEGIN:VEVENT");
        line(&format!("UID:{uid}"));
        line(&format!("DTSTAMP:{stamp}"));
        line(&format!("DTSTART;VALUE=DATE:{}", date_basic(slot.date)));
        line(&format!("DTEND;VALUE=DATE:{}", date_basic(slot.date.next_day().unwrap_or(slot.date))));
        line(&format!("SUMMARY:{}", escape_text(&summary)));
        line(&format!("LOCATION:{}", escape_text(&slot.place())));
        line(&format!("DESCRIPTION:{}", escape_text(&description.join("\n"))));
        line("TRANSP:TRANSPARENT");
        line("END:VEVENT");
    }
    line("END:VCALENDAR");
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn describe(device_id: DeviceId, machine: Option<&MachineFacts>) -> String {
    let Some(machine) = machine else {
        return format!("device {device_id} (not in the register)");
    };
    let mut parts = Vec::new();
    if let Some(tag) = &machine.asset_tag {
        parts.push(format!("asset tag {tag}"));
    }
    if let Some(serial) = &machine.serial {
        parts.push(format!("serial {serial}"));
    }
    if !machine.hostname.is_empty() {
        parts.push(format!("hostname {}", machine.hostname));
    }
    if parts.is_empty() {
        parts.push(format!("device {device_id}"));
    }
    parts.join(" ")
}

/// A stable, globally unique id for a slot: the same slot keeps its UID
/// across exports, so re-importing updates events instead of duplicating.
fn slot_uid(plan: &str, slot: &super::Slot) -> String {
    let mut hasher = Sha256::new();
    for part in [
        plan,
        &super::format_date(slot.date),
        &slot.site,
        slot.ward.as_deref().unwrap_or(""),
        slot.engineer.as_deref().unwrap_or(""),
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    format!("{}@rollout.custodian", hex::encode(&hasher.finalize()[..16]))
}

fn date_basic(date: time::Date) -> String {
    format!("{:04}{:02}{:02}", date.year(), u8::from(date.month()), date.day())
}

fn utc_basic(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{}T{:02}{:02}{:02}Z", date_basic(t.date()), t.hour(), t.minute(), t.second())
}

/// Escapes a TEXT value (RFC 5545 §3.3.11).
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends `line` to `out`, folded into lines of at most 75 octets (a
/// continuation starts with one space, which counts), each ending in CRLF.
fn fold_into(out: &mut String, line: &str) {
    let mut width = 0;
    for c in line.chars() {
        let len = c.len_utf8();
        if width + len > MAX_LINE_OCTETS {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += len;
    }
    out.push_str("\r\n");
}
