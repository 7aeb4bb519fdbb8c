//! Rollout scheduling: plans, sites and wards with a daily capacity, and the
//! bookings that put a machine into a slot (date, site, ward, engineer).
//!
//! Everything here is pure: the store ([`crate::store`]) reads the plan and
//! the bookings, calls [`check_booking`] or [`check_wave`], and writes the
//! result with its audit event in one transaction. Capacity model:
//!
//! - a **site** has a daily capacity: machines that may be installed there on
//!   one day, across its wards;
//! - a **ward** of a site may have its own, smaller daily capacity;
//! - an **engineer** installs at most the plan's `engineer_capacity` machines
//!   a day, counted across every plan.
//!
//! A slot is the set of bookings sharing date, site, ward and engineer; it is
//! derived from the bookings ([`slots`]), not stored.

pub mod csv;
pub mod ical;
pub mod runsheet;
pub mod status;

use std::collections::BTreeMap;
use std::fmt;

use custodian_proto::identity::DeviceId;
use serde::{Deserialize, Serialize};
use time::Date;

use crate::lifecycle::LifecycleState;

/// Longest plan, site, ward or engineer name accepted.
pub const MAX_NAME_LEN: usize = 128;
/// The engineer capacity a plan gets when none is given.
pub const DEFAULT_ENGINEER_CAPACITY: u32 = 8;

/// A rollout plan: a date range and the sites it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The plan's name, unique on the server.
    pub name: String,
    /// First day machines may be booked.
    #[serde(with = "date_text")]
    pub start: Date,
    /// Last day machines may be booked.
    #[serde(with = "date_text")]
    pub end: Date,
    /// Machines one engineer may install per day.
    pub engineer_capacity: u32,
    /// The sites, by name.
    pub sites: BTreeMap<String, SiteCapacity>,
    /// Who created it, as `name (role)`.
    pub created_by: String,
    /// When, Unix ms.
    pub created_at_ms: i64,
}

/// A site's daily capacity, and its wards'.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteCapacity {
    /// Machines that may be installed at the site on one day.
    pub daily: u32,
    /// Wards with their own daily capacity.
    pub wards: BTreeMap<String, u32>,
}

/// One machine booked into a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    /// The plan.
    pub plan: String,
    /// The machine to install.
    pub device_id: DeviceId,
    /// The day.
    #[serde(with = "date_text")]
    pub date: Date,
    /// Where.
    pub site: String,
    /// Which ward, if given.
    pub ward: Option<String>,
    /// Who installs it, if assigned.
    pub engineer: Option<String>,
    /// The old machine it replaces, which the rollout retires.
    pub replaces: Option<DeviceId>,
    /// Who booked it, as `name (role)`.
    pub booked_by: String,
    /// When, Unix ms.
    pub booked_at_ms: i64,
    /// When the machine was confirmed deployed, Unix ms.
    pub deployed_at_ms: Option<i64>,
    /// When the machine it replaces was retired by the rollout, Unix ms.
    pub replaced_retired_at_ms: Option<i64>,
    /// When the machine it replaces was marked collected, Unix ms.
    #[serde(default)]
    pub replaced_collected_at_ms: Option<i64>,
}

/// A slot: the bookings that share a date, site, ward and engineer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The day.
    pub date: Date,
    /// Where.
    pub site: String,
    /// Which ward.
    pub ward: Option<String>,
    /// Who.
    pub engineer: Option<String>,
    /// The machines booked into it.
    pub bookings: Vec<Booking>,
}

/// A machine as booking sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineRef {
    /// Its id.
    pub device_id: DeviceId,
    /// How people know it: asset tag, hostname or serial.
    pub label: String,
    /// Its lifecycle state now.
    pub state: LifecycleState,
}

/// A booking asked for, with the machines already looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRequest {
    /// The machine to install.
    pub machine: MachineRef,
    /// The day.
    pub date: Date,
    /// Where.
    pub site: String,
    /// Which ward.
    pub ward: Option<String>,
    /// Who installs it.
    pub engineer: Option<String>,
    /// The old machine it replaces.
    pub replaces: Option<MachineRef>,
}

/// Why a booking was refused. Each message says the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    /// The date is before the plan's start or after its end.
    #[error("{date} is outside plan {plan}, which runs from {start} to {end}")]
    DateOutsidePlan {
        /// The plan.
        plan: String,
        /// The date asked for.
        date: Date,
        /// Its first day.
        start: Date,
        /// Its last day.
        end: Date,
    },
    /// The site is not in the plan.
    #[error("site {site:?} is not in plan {plan}; add it with `rollout site` (sites: {known})")]
    UnknownSite {
        /// The plan.
        plan: String,
        /// The site asked for.
        site: String,
        /// The plan's sites, comma-separated.
        known: String,
    },
    /// The ward is not one of the site's wards.
    #[error(
        "ward {ward:?} is not a ward of site {site} in this plan; add it with `rollout site --ward` (wards: {known})"
    )]
    UnknownWard {
        /// The site.
        site: String,
        /// The ward asked for.
        ward: String,
        /// The site's wards, comma-separated.
        known: String,
    },
    /// Only machines in `staged` or `in_stock` can be booked.
    #[error("machine {machine} is {state}; only machines in staged or in_stock can be booked")]
    WrongState {
        /// The machine.
        machine: String,
        /// Its state.
        state: LifecycleState,
    },
    /// The machine is booked already (in this plan or another).
    #[error("machine {machine} is already booked in plan {plan} on {date} at {site}; cancel that booking first")]
    AlreadyBooked {
        /// The machine.
        machine: String,
        /// The plan it is booked in.
        plan: String,
        /// The date it is booked for.
        date: Date,
        /// The site it is booked at.
        site: String,
    },
    /// A machine cannot replace itself.
    #[error("machine {machine} cannot replace itself")]
    ReplacesItself {
        /// The machine.
        machine: String,
    },
    /// The old machine is already being replaced by another booking.
    #[error("machine {replaced} is already being replaced by machine {by} in plan {plan}")]
    AlreadyReplaced {
        /// The old machine.
        replaced: String,
        /// The machine booked to replace it (its id).
        by: DeviceId,
        /// The plan.
        plan: String,
    },
    /// The old machine cannot be retired from its state.
    #[error("machine {replaced} is {state} and cannot be retired, so it cannot be replaced")]
    ReplacedNotRetirable {
        /// The old machine.
        replaced: String,
        /// Its state.
        state: LifecycleState,
    },
    /// The site, or the ward, is fully booked that day.
    #[error("slot over capacity: {place} takes {capacity} machines a day and {date} is fully booked")]
    OverCapacity {
        /// `site` or `site / ward`.
        place: String,
        /// The date.
        date: Date,
        /// Its daily capacity.
        capacity: u32,
    },
    /// The engineer already has their daily capacity of machines that day.
    #[error(
        "engineer {engineer} is double-booked: already {booked} machines on {date}, and installs at most {capacity} a day"
    )]
    EngineerOverCapacity {
        /// The engineer.
        engineer: String,
        /// The date.
        date: Date,
        /// Machines already booked to them that day, in every plan.
        booked: u32,
        /// Their daily capacity.
        capacity: u32,
    },
}

/// A bad row of a wave: its line in the file and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}; nothing from the file was applied")]
pub struct WaveError {
    /// 1-based line in the file, counting the header.
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

/// Why a name (plan, site, ward, engineer) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty after trimming.
    #[error("{what} must not be empty")]
    Empty {
        /// What was being named.
        what: &'static str,
    },
    /// Too long.
    #[error("{what} must be at most {MAX_NAME_LEN} characters")]
    TooLong {
        /// What was being named.
        what: &'static str,
    },
    /// Holds a control character.
    #[error("{what} must not contain control characters")]
    Control {
        /// What was being named.
        what: &'static str,
    },
}

/// Trims and checks a name: not empty, not too long, no control characters.
pub fn check_name(what: &'static str, name: &str) -> Result<String, NameError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(NameError::Empty { what });
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(NameError::TooLong { what });
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control { what });
    }
    Ok(name.to_owned())
}

/// Like [`check_name`], but an empty name means none.
pub fn check_optional_name(what: &'static str, name: &str) -> Result<Option<String>, NameError> {
    if name.trim().is_empty() { Ok(None) } else { check_name(what, name).map(Some) }
}

/// Parses a calendar date, `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Result<Date, String> {
    Date::parse(text.trim(), DATE_FORMAT).map_err(|e| format!("{:?} is not a date (YYYY-MM-DD): {e}", text.trim()))
}

/// Formats a calendar date as `YYYY-MM-DD`.
pub fn format_date(date: Date) -> String {
    date.format(DATE_FORMAT).expect("a date always formats as YYYY-MM-DD")
}

const DATE_FORMAT: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// Unix ms of the start of `date` (UTC).
pub fn date_start_ms(date: Date) -> i64 {
    let seconds = date.midnight().assume_utc().unix_timestamp();
    seconds.saturating_mul(1000)
}

/// The UTC calendar date of Unix ms.
pub fn date_of_ms(ms: i64) -> Date {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map(|t| t.date()).unwrap_or(Date::MIN)
}

impl Plan {
    /// The machines `site` (and `ward`) may take a day, as `(place, capacity)`
    /// pairs to check: the site's, then the ward's if it has one.
    fn capacities(&self, site: &str, ward: Option<&str>) -> Vec<(String, u32, Option<String>)> {
        let Some(capacity) = self.sites.get(site) else {
            return Vec::new();
        };
        let mut out = vec![(site.to_owned(), capacity.daily, None)];
        if let Some(ward) = ward
            && let Some(ward_capacity) = capacity.wards.get(ward)
        {
            out.push((format!("{site} / {ward}"), *ward_capacity, Some(ward.to_owned())));
        }
        out
    }
}

fn join_names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() { "none yet".to_owned() } else { names.join(", ") }
}

/// Checks a booking against the plan and every existing booking (of every
/// plan), and returns the booking to write. Nothing is written here.
pub fn check_booking(
    plan: &Plan,
    existing: &[Booking],
    req: &BookingRequest,
    booked_by: &str,
    now_ms: i64,
) -> Result<Booking, BookError> {
    if req.date < plan.start || req.date > plan.end {
        return Err(BookError::DateOutsidePlan {
            plan: plan.name.clone(),
            date: req.date,
            start: plan.start,
            end: plan.end,
        });
    }
    let Some(site) = plan.sites.get(&req.site) else {
        return Err(BookError::UnknownSite {
            plan: plan.name.clone(),
            site: req.site.clone(),
            known: join_names(plan.sites.keys()),
        });
    };
    if let Some(ward) = &req.ward
        && !site.wards.contains_key(ward)
    {
        return Err(BookError::UnknownWard {
            site: req.site.clone(),
            ward: ward.clone(),
            known: join_names(site.wards.keys()),
        });
    }
    let machine = &req.machine;
    if !matches!(machine.state, LifecycleState::Staged | LifecycleState::InStock) {
        return Err(BookError::WrongState { machine: machine.label.clone(), state: machine.state });
    }
    if let Some(other) = existing.iter().find(|b| b.device_id == machine.device_id) {
        return Err(BookError::AlreadyBooked {
            machine: machine.label.clone(),
            plan: other.plan.clone(),
            date: other.date,
            site: other.site.clone(),
        });
    }
    if let Some(replaced) = &req.replaces {
        if replaced.device_id == machine.device_id {
            return Err(BookError::ReplacesItself { machine: machine.label.clone() });
        }
        if let Some(other) = existing.iter().find(|b| b.replaces == Some(replaced.device_id)) {
            return Err(BookError::AlreadyReplaced {
                replaced: replaced.label.clone(),
                by: other.device_id,
                plan: other.plan.clone(),
            });
        }
        if replaced.state.move_to(LifecycleState::Retired).is_err() {
            return Err(BookError::ReplacedNotRetirable { replaced: replaced.label.clone(), state: replaced.state });
        }
    }
    for (place, capacity, ward) in plan.capacities(&req.site, req.ward.as_deref()) {
        let booked = existing
            .iter()
            .filter(|b| b.plan == plan.name && b.date == req.date && b.site == req.site)
            .filter(|b| ward.is_none() || b.ward == ward)
            .count();
        if booked as u64 >= u64::from(capacity) {
            return Err(BookError::OverCapacity { place, date: req.date, capacity });
        }
    }
    if let Some(engineer) = &req.engineer {
        let booked = existing.iter().filter(|b| b.date == req.date && b.engineer.as_ref() == Some(engineer)).count();
        let booked = u32::try_from(booked).unwrap_or(u32::MAX);
        if booked >= plan.engineer_capacity {
            return Err(BookError::EngineerOverCapacity {
                engineer: engineer.clone(),
                date: req.date,
                booked,
                capacity: plan.engineer_capacity,
            });
        }
    }
    Ok(Booking {
        plan: plan.name.clone(),
        device_id: machine.device_id,
        date: req.date,
        site: req.site.clone(),
        ward: req.ward.clone(),
        engineer: req.engineer.clone(),
        replaces: req.replaces.as_ref().map(|r| r.device_id),
        booked_by: booked_by.to_owned(),
        booked_at_ms: now_ms,
        deployed_at_ms: None,
        replaced_retired_at_ms: None,
        replaced_collected_at_ms: None,
    })
}

/// A row of a wave: its line and either the request or why it could not be
/// made (a machine that could not be found, a bad date).
pub type WaveRow = (u64, Result<BookingRequest, String>);

/// Checks every row of a wave in order, each against the existing bookings
/// and the rows before it. Returns every booking to write, or the first bad
/// row; nothing is written here.
pub fn check_wave(
    plan: &Plan,
    existing: &[Booking],
    rows: &[WaveRow],
    booked_by: &str,
    now_ms: i64,
) -> Result<Vec<Booking>, WaveError> {
    if rows.is_empty() {
        return Err(WaveError { line: 1, reason: "the file has no bookings".to_owned() });
    }
    let mut all = existing.to_vec();
    let mut new = Vec::with_capacity(rows.len());
    for (line, row) in rows {
        let req = row.as_ref().map_err(|reason| WaveError { line: *line, reason: reason.clone() })?;
        let booking = check_booking(plan, &all, req, booked_by, now_ms)
            .map_err(|e| WaveError { line: *line, reason: e.to_string() })?;
        all.push(booking.clone());
        new.push(booking);
    }
    Ok(new)
}

/// Date, site, ward, engineer.
type SlotKey = (Date, String, Option<String>, Option<String>);

/// Groups bookings into slots, ordered by date, site, ward, engineer.
pub fn slots(bookings: &[Booking]) -> Vec<Slot> {
    let mut by_slot: BTreeMap<SlotKey, Vec<Booking>> = BTreeMap::new();
    for booking in bookings {
        let key = (booking.date, booking.site.clone(), booking.ward.clone(), booking.engineer.clone());
        by_slot.entry(key).or_default().push(booking.clone());
    }
    by_slot
        .into_iter()
        .map(|((date, site, ward, engineer), bookings)| Slot { date, site, ward, engineer, bookings })
        .collect()
}

impl Slot {
    /// `site` or `site / ward`.
    pub fn place(&self) -> String {
        match &self.ward {
            Some(ward) => format!("{} / {ward}", self.site),
            None => self.site.clone(),
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", format_date(self.date), self.place())?;
        if let Some(engineer) = &self.engineer {
            write!(f, " ({engineer})")?;
        }
        Ok(())
    }
}

/// Dates as `YYYY-MM-DD` text in stored records.
mod date_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::Date;

    pub(super) fn serialize<S: Serializer>(date: &Date, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_date(*date))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Date, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_date(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
