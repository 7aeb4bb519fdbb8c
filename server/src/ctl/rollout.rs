//! `custodianctl rollout`: plans, bookings, the run sheet, progress, exports
//! and the to-collect list. The subcommands are defined here so the binary
//! only names the group.

use std::fmt::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use custodian_proto::v1 as pb;
use pb::rollout_client::RolloutClient;
use serde_json::{Value, json};

use super::{Ctl, format_time, status_error};

/// `custodianctl rollout ...`.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Create a rollout plan (engineer or admin).
    Create {
        /// The plan's name.
        name: String,
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        start: String,
        /// Last day, YYYY-MM-DD.
        #[arg(long)]
        end: String,
        /// Machines one engineer installs per day (default 8; at least 1).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        engineer_capacity: Option<u32>,
    },
    /// Add a site (or a ward of a site) to a plan, or change its daily
    /// capacity: machines that may be installed there per day (engineer or admin).
    Site {
        /// The plan.
        plan: String,
        /// The site.
        site: String,
        /// A ward of the site (the site must already be in the plan).
        #[arg(long)]
        ward: Option<String>,
        /// Machines per day.
        #[arg(long)]
        capacity: u32,
    },
    /// Show a plan: its sites and capacities and every booking.
    Show {
        /// The plan.
        plan: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Book a machine into a plan (engineer or admin).
    Book {
        /// The plan.
        plan: String,
        /// The machine: id, hostname, serial, asset tag or MAC.
        #[arg(long)]
        device: String,
        /// The day, YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// The site.
        #[arg(long)]
        site: String,
        /// The ward.
        #[arg(long)]
        ward: Option<String>,
        /// The engineer who installs it.
        #[arg(long)]
        engineer: Option<String>,
        /// The old machine it replaces (retired when this one is deployed).
        #[arg(long)]
        replaces: Option<String>,
    },
    /// Book a whole wave from a CSV file, all rows or none (engineer or admin).
    Import {
        /// The plan.
        plan: String,
        /// CSV with a header row: device,date,site[,ward,engineer,replaces].
        file: PathBuf,
    },
    /// Cancel a machine's booking (engineer or admin).
    Cancel {
        /// The machine: id, hostname, serial, asset tag or MAC.
        device: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// The run sheet: per engineer, where to go and what to install.
    Today {
        /// Only this engineer's.
        #[arg(long)]
        engineer: Option<String>,
        /// The day, YYYY-MM-DD (default: today, UTC).
        #[arg(long)]
        date: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Export a plan as CSV or iCalendar.
    Export {
        /// The plan.
        plan: String,
        /// The format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
    },
    /// A plan's progress: booked, deployed, overdue, not enrolled,
    /// non-compliant; per site and per day.
    Status {
        /// The plan.
        plan: String,
        /// Compute it as of this day, YYYY-MM-DD (default: today, UTC).
        #[arg(long)]
        as_of: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Mark an old machine the rollout replaced as collected (engineer or admin).
    Collected {
        /// The old machine: id, hostname, serial, asset tag or MAC.
        device: String,
        /// Where it went (kept in the audit trail).
        #[arg(long)]
        note: Option<String>,
    },
    /// Old machines the rollout retired that are waiting to be collected.
    ToCollect {
        /// Only this engineer's.
        #[arg(long)]
        engineer: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// An export format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// CSV, one row per machine.
    Csv,
    /// iCalendar, one event per slot.
    Ical,
}

impl Ctl {
    fn rollout(&self) -> RolloutClient<tonic::transport::Channel> {
        RolloutClient::new(self.channel.clone())
    }
}

/// Runs one `rollout` subcommand, printing its result.
pub async fn run_rollout(ctl: &Ctl, command: RolloutCommand) -> anyhow::Result<()> {
    let mut client = ctl.rollout();
    match command {
        RolloutCommand::Create { name, start, end, engineer_capacity } => {
            let req = pb::CreatePlanRequest { name, start, end, engineer_capacity: engineer_capacity.unwrap_or(0) };
            let plan = client.create_plan(req).await.map_err(status_error)?.into_inner().plan.unwrap_or_default();
            println!(
                "created plan {} ({} to {}, {} machines per engineer per day)",
                plan.name, plan.start, plan.end, plan.engineer_capacity
            );
        }
        RolloutCommand::Site { plan, site, ward, capacity } => {
            let req =
                pb::SetSiteCapacityRequest { plan, site, ward: ward.unwrap_or_default(), daily_capacity: capacity };
            let plan = client.set_site_capacity(req).await.map_err(status_error)?.into_inner().plan.unwrap_or_default();
            print!("{}", render_plan(&plan, &[]));
        }
        RolloutCommand::Show { plan, json } => {
            let res = client.get_plan(pb::GetPlanRequest { plan }).await.map_err(status_error)?.into_inner();
            let plan = res.plan.unwrap_or_default();
            if json {
                let value = json!({
                    "plan": plan_json(&plan),
                    "bookings": res.bookings.iter().map(booking_json).collect::<Vec<_>>(),
                });
                println!("{}", serde_json::to_string_pretty(&value).context("encode JSON")?);
            } else {
                print!("{}", render_plan(&plan, &res.bookings));
            }
        }
        RolloutCommand::Book { plan, device, date, site, ward, engineer, replaces } => {
            let req = pb::BookRequest {
                plan,
                device,
                date,
                site,
                ward: ward.unwrap_or_default(),
                engineer: engineer.unwrap_or_default(),
                replaces: replaces.unwrap_or_default(),
            };
            let res = client.book(req).await.map_err(status_error)?.into_inner();
            for booking in &res.bookings {
                println!("booked {}", booking_line(booking));
            }
        }
        RolloutCommand::Import { plan, file } => {
            let csv = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
            let source = file.display().to_string();
            let res = client.import_wave(pb::ImportWaveRequest { plan, csv, source }).await.map_err(status_error)?;
            let bookings = res.into_inner().bookings;
            for booking in &bookings {
                println!("booked {}", booking_line(booking));
            }
            println!("{} machines booked from {}", bookings.len(), file.display());
        }
        RolloutCommand::Cancel { device, reason } => {
            let res = client.cancel_booking(pb::CancelBookingRequest { device, reason }).await.map_err(status_error)?;
            if let Some(booking) = res.into_inner().booking {
                println!("cancelled {}", booking_line(&booking));
            }
        }
        RolloutCommand::Today { engineer, date, json } => {
            let req = pb::RunSheetRequest { date: date.unwrap_or_default(), engineer: engineer.unwrap_or_default() };
            let sheet = client.run_sheet(req).await.map_err(status_error)?.into_inner();
            if json {
                println!("{}", serde_json::to_string_pretty(&run_sheet_json(&sheet)).context("encode JSON")?);
            } else {
                print!("{}", render_run_sheet(&sheet));
            }
        }
        RolloutCommand::Export { plan, format, out } => {
            let format = match format {
                ExportFormat::Csv => pb::ExportFormat::Csv,
                ExportFormat::Ical => pb::ExportFormat::Ical,
            };
            let req = pb::ExportPlanRequest { plan, format: format.into() };
            let res = client.export_plan(req).await.map_err(status_error)?.into_inner();
            std::fs::write(&out, &res.content).with_context(|| format!("write {}", out.display()))?;
            println!("wrote {} ({}, {} bytes)", out.display(), res.content_type, res.content.len());
        }
        RolloutCommand::Status { plan, as_of, json } => {
            let req = pb::PlanStatusRequest { plan, as_of: as_of.unwrap_or_default() };
            let status = client.status(req).await.map_err(status_error)?.into_inner();
            if json {
                println!("{}", serde_json::to_string_pretty(&status_json(&status)).context("encode JSON")?);
            } else {
                print!("{}", render_status(&status));
            }
        }
        RolloutCommand::Collected { device, note } => {
            let req = pb::MarkCollectedRequest { device, note: note.unwrap_or_default() };
            let res = client.mark_collected(req).await.map_err(status_error)?.into_inner();
            if let Some(old) = res.booking.as_ref().and_then(|b| b.replaces.as_ref()) {
                println!("collected {}; it is off the to-collect list", machine_label(old));
            }
        }
        RolloutCommand::ToCollect { engineer, json } => {
            let req = pb::ToCollectRequest { engineer: engineer.unwrap_or_default() };
            let res = client.to_collect(req).await.map_err(status_error)?.into_inner();
            if json {
                let items: Vec<Value> = res.items.iter().map(collect_json).collect();
                println!("{}", serde_json::to_string_pretty(&items).context("encode JSON")?);
            } else {
                print!("{}", render_to_collect(&res.items));
            }
        }
    }
    Ok(())
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

fn place(site: &str, ward: &str) -> String {
    if ward.is_empty() { site.to_owned() } else { format!("{site} / {ward}") }
}

/// How a machine is shown: asset tag, serial and hostname, whichever are known.
fn machine_label(machine: &pb::RolloutMachine) -> String {
    let mut parts = Vec::new();
    if !machine.asset_tag.is_empty() {
        parts.push(format!("asset tag {}", machine.asset_tag));
    }
    if !machine.serial.is_empty() {
        parts.push(format!("serial {}", machine.serial));
    }
    if !machine.hostname.is_empty() {
        parts.push(format!("hostname {}", machine.hostname));
    }
    if parts.is_empty() {
        parts.push(format!("device {}", machine.device_id));
    }
    parts.join(", ")
}

fn readiness(machine: &pb::RolloutMachine) -> String {
    let enrolled = if machine.enrolled { "enrolled" } else { "NOT ENROLLED" };
    let encryption = match machine.compliance.as_str() {
        "compliant" => "encryption compliant".to_owned(),
        "no_report" => "no report yet".to_owned(),
        other => format!("NOT COMPLIANT ({}: {})", other, machine.compliance_detail),
    };
    let last = if machine.last_seen_ms == 0 {
        "never reported".to_owned()
    } else {
        format!("last report {}", format_time(machine.last_seen_ms))
    };
    format!("{enrolled}; {encryption}; {last}")
}

fn booking_line(booking: &pb::RolloutBooking) -> String {
    let machine = booking.machine.clone().unwrap_or_default();
    let mut line = format!(
        "{} on {} at {} in plan {}",
        machine_label(&machine),
        booking.date,
        place(&booking.site, &booking.ward),
        booking.plan
    );
    if !booking.engineer.is_empty() {
        let _ = write!(line, " (engineer {})", booking.engineer);
    }
    if let Some(old) = &booking.replaces {
        let _ = write!(line, ", replacing {}", machine_label(old));
    }
    line
}

/// A plan and its bookings, for a terminal.
fn render_plan(plan: &pb::RolloutPlan, bookings: &[pb::RolloutBooking]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plan {}: {} to {}; an engineer installs at most {} a day",
        plan.name, plan.start, plan.end, plan.engineer_capacity
    );
    for site in &plan.sites {
        let _ = writeln!(out, "  site {}: {} a day", site.name, site.daily_capacity);
        for ward in &site.wards {
            let _ = writeln!(out, "    ward {}: {} a day", ward.name, ward.daily_capacity);
        }
    }
    for booking in bookings {
        let deployed = if booking.deployed_at_ms != 0 { " [deployed]" } else { "" };
        let _ = writeln!(out, "  {}{deployed}", booking_line(booking));
    }
    out
}

/// The run sheet, for a terminal.
fn render_run_sheet(sheet: &pb::RunSheetResponse) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "run sheet for {}", sheet.date);
    if sheet.engineers.is_empty() {
        let _ = writeln!(out, "  nothing booked");
    }
    for engineer in &sheet.engineers {
        let _ = writeln!(
            out,
            "\nengineer {}",
            if engineer.engineer.is_empty() { "(unassigned)" } else { &engineer.engineer }
        );
        for stop in &engineer.stops {
            let _ = writeln!(out, "  go to {}", place(&stop.site, &stop.ward));
            for m in &stop.machines {
                let machine = m.machine.clone().unwrap_or_default();
                let done = if m.deployed { " [deployed]" } else { "" };
                let _ = writeln!(out, "    install {}{done} (plan {})", machine_label(&machine), m.plan);
                let _ = writeln!(out, "      ready: {}", readiness(&machine));
                if let Some(old) = &m.replaces {
                    let _ = writeln!(out, "      replaces {} ({})", machine_label(old), or_dash(&old.state));
                }
            }
        }
    }
    out
}

fn counts_row(out: &mut String, key: &str, c: &pb::RolloutCounts) {
    let _ = writeln!(
        out,
        "  {key:<24} {:>7} {:>9} {:>8} {:>13} {:>14}",
        c.booked, c.deployed, c.overdue, c.not_enrolled, c.non_compliant
    );
}

/// A plan's progress, for a terminal.
fn render_status(status: &pb::PlanStatusResponse) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "plan {} as of {}", status.plan, status.as_of);
    let header = format!(
        "  {:<24} {:>7} {:>9} {:>8} {:>13} {:>14}",
        "", "booked", "deployed", "overdue", "not enrolled", "non-compliant"
    );
    let _ = writeln!(out, "{header}");
    counts_row(&mut out, "total", &status.total.unwrap_or_default());
    let _ = writeln!(out, "by site");
    for group in &status.by_site {
        counts_row(&mut out, &group.key, &group.counts.unwrap_or_default());
    }
    let _ = writeln!(out, "by day");
    for group in &status.by_day {
        counts_row(&mut out, &group.key, &group.counts.unwrap_or_default());
    }
    if !status.overdue.is_empty() {
        let _ = writeln!(out, "overdue (no report since the slot date)");
        for booking in &status.overdue {
            let _ = writeln!(out, "  {}", booking_line(booking));
        }
    }
    out
}

/// The to-collect list, for a terminal.
fn render_to_collect(items: &[pb::CollectItem]) -> String {
    let mut out = String::new();
    if items.is_empty() {
        let _ = writeln!(out, "nothing to collect");
    }
    for item in items {
        let machine = item.machine.clone().unwrap_or_default();
        let by = item.replaced_by.clone().unwrap_or_default();
        let _ = writeln!(
            out,
            "collect {} from {} (replaced on {} by {}, plan {}, engineer {})",
            machine_label(&machine),
            place(&item.site, &item.ward),
            item.date,
            machine_label(&by),
            item.plan,
            or_dash(&item.engineer)
        );
    }
    out
}

fn machine_json(m: &pb::RolloutMachine) -> Value {
    json!({
        "device_id": m.device_id,
        "asset_tag": m.asset_tag,
        "serial": m.serial,
        "hostname": m.hostname,
        "state": m.state,
        "enrolled": m.enrolled,
        "last_seen_ms": m.last_seen_ms,
        "compliance": m.compliance,
        "compliance_detail": m.compliance_detail,
    })
}

fn plan_json(plan: &pb::RolloutPlan) -> Value {
    json!({
        "name": plan.name,
        "start": plan.start,
        "end": plan.end,
        "engineer_capacity": plan.engineer_capacity,
        "sites": plan.sites.iter().map(|s| json!({
            "name": s.name,
            "daily_capacity": s.daily_capacity,
            "wards": s.wards.iter().map(|w| json!({"name": w.name, "daily_capacity": w.daily_capacity})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "created_by": plan.created_by,
        "created_at_ms": plan.created_at_ms,
    })
}

fn booking_json(b: &pb::RolloutBooking) -> Value {
    json!({
        "plan": b.plan,
        "machine": b.machine.as_ref().map(machine_json),
        "date": b.date,
        "site": b.site,
        "ward": b.ward,
        "engineer": b.engineer,
        "replaces": b.replaces.as_ref().map(machine_json),
        "booked_by": b.booked_by,
        "booked_at_ms": b.booked_at_ms,
        "deployed_at_ms": b.deployed_at_ms,
        "replaced_retired_at_ms": b.replaced_retired_at_ms,
        "replaced_collected_at_ms": b.replaced_collected_at_ms,
    })
}

fn counts_json(c: &pb::RolloutCounts) -> Value {
    json!({
        "booked": c.booked,
        "deployed": c.deployed,
        "overdue": c.overdue,
        "not_enrolled": c.not_enrolled,
        "non_compliant": c.non_compliant,
    })
}

/// A plan's progress as JSON.
fn status_json(status: &pb::PlanStatusResponse) -> Value {
    let groups = |groups: &[pb::RolloutGroupCounts]| {
        groups
            .iter()
            .map(|g| (g.key.clone(), counts_json(&g.counts.unwrap_or_default())))
            .collect::<serde_json::Map<String, Value>>()
    };
    json!({
        "plan": status.plan,
        "as_of": status.as_of,
        "total": counts_json(&status.total.unwrap_or_default()),
        "by_site": groups(&status.by_site),
        "by_day": groups(&status.by_day),
        "overdue": status.overdue.iter().map(booking_json).collect::<Vec<_>>(),
    })
}

fn run_sheet_json(sheet: &pb::RunSheetResponse) -> Value {
    json!({
        "date": sheet.date,
        "engineers": sheet.engineers.iter().map(|e| json!({
            "engineer": e.engineer,
            "stops": e.stops.iter().map(|s| json!({
                "site": s.site,
                "ward": s.ward,
                "machines": s.machines.iter().map(|m| json!({
                    "plan": m.plan,
                    "machine": m.machine.as_ref().map(machine_json),
                    "replaces": m.replaces.as_ref().map(machine_json),
                    "deployed": m.deployed,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn collect_json(item: &pb::CollectItem) -> Value {
    json!({
        "machine": item.machine.as_ref().map(machine_json),
        "replaced_by": item.replaced_by.as_ref().map(machine_json),
        "plan": item.plan,
        "date": item.date,
        "site": item.site,
        "ward": item.ward,
        "engineer": item.engineer,
    })
}
