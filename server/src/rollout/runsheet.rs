//! The run sheet: for one day, per engineer, where to go and which machines
//! to install, what each replaces, and whether each is ready (enrolled,
//! encryption compliant, reporting). Also the "to collect" list of old
//! machines the rollout retired and nobody has taken away yet.

use std::collections::BTreeMap;

use custodian_proto::identity::DeviceId;
use time::Date;

use super::Booking;
use crate::compliance::Compliance;
use crate::lifecycle::LifecycleState;

/// What the rollout needs to know about one machine, read from the register
/// and its latest report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineFacts {
    /// Its id.
    pub device_id: DeviceId,
    /// Hostname from its latest report (empty before enrolment).
    pub hostname: String,
    /// System serial.
    pub serial: Option<String>,
    /// Asset tag.
    pub asset_tag: Option<String>,
    /// Lifecycle state.
    pub state: LifecycleState,
    /// Whether an agent has enrolled as it.
    pub enrolled: bool,
    /// When its agent last reported, Unix ms.
    pub last_seen_ms: Option<i64>,
    /// Encryption compliance of its latest report (`None`: no report).
    pub compliance: Option<Compliance>,
}

impl MachineFacts {
    /// How people know it: asset tag, else hostname, else serial, else id.
    pub fn label(&self) -> String {
        self.asset_tag
            .clone()
            .or_else(|| Some(self.hostname.clone()).filter(|h| !h.is_empty()))
            .or_else(|| self.serial.clone())
            .unwrap_or_else(|| self.device_id.to_string())
    }

    /// Whether it is enrolled and its latest report shows it compliant.
    pub fn is_ready(&self) -> bool {
        self.enrolled && self.compliance.as_ref().is_some_and(Compliance::is_compliant)
    }
}

/// One machine on the sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetMachine {
    /// The machine to install.
    pub machine: MachineFacts,
    /// The old machine it replaces.
    pub replaces: Option<MachineFacts>,
    /// Whether it is already confirmed deployed.
    pub deployed: bool,
    /// The plan it is booked in.
    pub plan: String,
}

/// One place an engineer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    /// Site.
    pub site: String,
    /// Ward.
    pub ward: Option<String>,
    /// The machines to install there.
    pub machines: Vec<SheetMachine>,
}

/// One engineer's day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineerSheet {
    /// The engineer (`None`: bookings nobody is assigned to).
    pub engineer: Option<String>,
    /// Where to go, in site and ward order.
    pub stops: Vec<Stop>,
}

/// Site and ward.
type Place = (String, Option<String>);

/// Builds the run sheet for `date`: bookings of that day (of every plan),
/// only `engineer`'s if given, grouped per engineer and place. Machines
/// missing from `facts` (deleted from the register) are left out.
pub fn run_sheet(
    date: Date,
    engineer: Option<&str>,
    bookings: &[Booking],
    facts: &BTreeMap<DeviceId, MachineFacts>,
) -> Vec<EngineerSheet> {
    let mut sheets: BTreeMap<Option<String>, BTreeMap<Place, Vec<SheetMachine>>> = BTreeMap::new();
    for booking in bookings.iter().filter(|b| b.date == date) {
        if engineer.is_some() && booking.engineer.as_deref() != engineer {
            continue;
        }
        let Some(machine) = facts.get(&booking.device_id) else {
            continue;
        };
        let replaces = booking.replaces.and_then(|id| facts.get(&id)).cloned();
        let deployed = booking.deployed_at_ms.is_some() || machine.state == LifecycleState::Deployed;
        sheets
            .entry(booking.engineer.clone())
            .or_default()
            .entry((booking.site.clone(), booking.ward.clone()))
            .or_default()
            .push(SheetMachine { machine: machine.clone(), replaces, deployed, plan: booking.plan.clone() });
    }
    sheets
        .into_iter()
        .map(|(engineer, stops)| EngineerSheet {
            engineer,
            stops: stops
                .into_iter()
                .map(|((site, ward), mut machines)| {
                    machines.sort_by_key(|m| m.machine.label());
                    Stop { site, ward, machines }
                })
                .collect(),
        })
        .collect()
}

/// An old machine the rollout retired, waiting to be collected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToCollect {
    /// The old machine.
    pub machine: MachineFacts,
    /// The machine that replaced it.
    pub replaced_by: DeviceId,
    /// The plan.
    pub plan: String,
    /// The day of the booking.
    pub date: Date,
    /// Where it is.
    pub site: String,
    /// Which ward.
    pub ward: Option<String>,
    /// The engineer of the booking.
    pub engineer: Option<String>,
}

/// Old machines still waiting to be collected: replaced by a booking, still
/// `retired`, and not marked collected (collection moves them on, e.g. to
/// `sanitised`, or marks them collected). Only
/// `engineer`'s if given; ordered by date, site, ward.
pub fn to_collect(
    engineer: Option<&str>,
    bookings: &[Booking],
    facts: &BTreeMap<DeviceId, MachineFacts>,
) -> Vec<ToCollect> {
    let mut out: Vec<ToCollect> = bookings
        .iter()
        .filter(|b| engineer.is_none() || b.engineer.as_deref() == engineer)
        .filter(|b| b.replaced_collected_at_ms.is_none())
        .filter_map(|b| {
            let old = facts.get(&b.replaces?)?;
            (old.state == LifecycleState::Retired).then(|| ToCollect {
                machine: old.clone(),
                replaced_by: b.device_id,
                plan: b.plan.clone(),
                date: b.date,
                site: b.site.clone(),
                ward: b.ward.clone(),
                engineer: b.engineer.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        (a.date, &a.site, &a.ward, a.machine.label()).cmp(&(b.date, &b.site, &b.ward, b.machine.label()))
    });
    out
}
