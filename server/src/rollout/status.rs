//! A plan's progress: how many machines are booked, deployed, overdue, not
//! yet enrolled and not compliant, in total, per site and per day.
//!
//! A machine is **deployed** once the slot recorded its confirmation (or it
//! is `deployed` in the register); **overdue** when it is not deployed, its
//! slot date has passed, and its agent has not reported since the start of
//! that date.

use std::collections::BTreeMap;

use custodian_proto::identity::DeviceId;
use serde::Serialize;
use time::Date;

use super::runsheet::MachineFacts;
use super::{Booking, Plan, date_start_ms, format_date};
use crate::compliance::Compliance;
use crate::lifecycle::LifecycleState;

/// Counts for a group of bookings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Machines booked.
    pub booked: u64,
    /// Confirmed deployed.
    pub deployed: u64,
    /// Not deployed, slot date passed, no report since it.
    pub overdue: u64,
    /// No agent enrolled yet.
    pub not_enrolled: u64,
    /// Enrolled, but the latest report does not show it compliant (or there is none).
    pub non_compliant: u64,
}

/// Where one booked machine stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingProgress {
    /// Confirmed deployed.
    pub deployed: bool,
    /// Overdue.
    pub overdue: bool,
    /// Enrolled.
    pub enrolled: bool,
    /// Compliant by its latest report.
    pub compliant: bool,
}

/// A plan's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanStatus {
    /// The plan.
    pub plan: String,
    /// The day it was computed for.
    pub today: String,
    /// Every booking.
    pub total: Counts,
    /// Per site.
    pub by_site: BTreeMap<String, Counts>,
    /// Per day (`YYYY-MM-DD`).
    pub by_day: BTreeMap<String, Counts>,
    /// The overdue machines.
    pub overdue: Vec<DeviceId>,
}

/// Where `booking` stands on `today`.
pub fn progress(booking: &Booking, machine: Option<&MachineFacts>, today: Date) -> BookingProgress {
    let deployed = booking.deployed_at_ms.is_some() || machine.is_some_and(|m| m.state == LifecycleState::Deployed);
    let reported_since_slot = machine.and_then(|m| m.last_seen_ms).is_some_and(|ms| ms >= date_start_ms(booking.date));
    BookingProgress {
        deployed,
        overdue: !deployed && booking.date < today && !reported_since_slot,
        enrolled: machine.is_some_and(|m| m.enrolled),
        compliant: machine.and_then(|m| m.compliance.as_ref()).is_some_and(Compliance::is_compliant),
    }
}

impl Counts {
    fn add(&mut self, p: BookingProgress) {
        self.booked += 1;
        self.deployed += u64::from(p.deployed);
        self.overdue += u64::from(p.overdue);
        self.not_enrolled += u64::from(!p.enrolled);
        self.non_compliant += u64::from(p.enrolled && !p.compliant);
    }
}

/// Computes a plan's progress on `today` from its bookings.
pub fn plan_status(
    plan: &Plan,
    bookings: &[Booking],
    facts: &BTreeMap<DeviceId, MachineFacts>,
    today: Date,
) -> PlanStatus {
    let mut status = PlanStatus {
        plan: plan.name.clone(),
        today: format_date(today),
        total: Counts::default(),
        by_site: BTreeMap::new(),
        by_day: BTreeMap::new(),
        overdue: Vec::new(),
    };
    for booking in bookings.iter().filter(|b| b.plan == plan.name) {
        let p = progress(booking, facts.get(&booking.device_id), today);
        status.total.add(p);
        status.by_site.entry(booking.site.clone()).or_default().add(p);
        status.by_day.entry(format_date(booking.date)).or_default().add(p);
        if p.overdue {
            status.overdue.push(booking.device_id);
        }
    }
    status
}
