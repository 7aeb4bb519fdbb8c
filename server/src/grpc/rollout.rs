//! `Rollout`: plans, bookings, the run sheet, progress, exports and the
//! to-collect list. Engineers and admins change plans and bookings; every
//! operator reads them.
//!
//! [`on_deployed`] is the lifecycle's hook: the `Register` service calls it
//! after it moves a machine to `deployed`, so the machine's slot records the
//! confirmation and the machine it replaces is retired.

use std::collections::BTreeMap;
use std::sync::Arc;

use custodian_proto::identity::{DeviceId, Role};
use custodian_proto::v1 as pb;
use tonic::{Request, Response, Status};
use tracing::{error, info, warn};

use super::Shared;
use super::lifecycle::find_one;
use crate::audit::event::{AuditEvent, EventKind};
use crate::compliance::{Compliance, encryption_compliance};
use crate::lifecycle::{GuardInputs, LifecycleState, check_guard};
use crate::peer::peer_operator;
use crate::rollout::runsheet::{MachineFacts, run_sheet, to_collect};
use crate::rollout::status::{Counts, plan_status};
use crate::rollout::{
    Booking, BookingRequest, DEFAULT_ENGINEER_CAPACITY, MachineRef, Plan, WaveRow, check_name, check_optional_name,
    date_of_ms, format_date, parse_date,
};
use crate::store::{ChangeRolloutError, DeviceRecord, TransitionAttributes, TransitionOutcome};

pub(super) struct RolloutService(pub(super) Arc<Shared>);

/// Roles that change plans and bookings.
const PLANNERS: &[Role] = &[Role::Engineer, Role::Admin];
/// Roles that read them.
const READERS: &[Role] = &Role::ALL;
/// Longest reason accepted.
const MAX_REASON_LEN: usize = 1024;
/// Largest wave file accepted, in bytes.
const MAX_WAVE_BYTES: usize = 4 * 1024 * 1024;

impl From<ChangeRolloutError> for Status {
    fn from(e: ChangeRolloutError) -> Self {
        match e {
            ChangeRolloutError::UnknownPlan(_)
            | ChangeRolloutError::NotBooked(_)
            | ChangeRolloutError::NotReplaced(_) => Status::not_found(e.to_string()),
            ChangeRolloutError::PlanExists(_) => Status::already_exists(e.to_string()),
            ChangeRolloutError::EndsBeforeStart { .. } | ChangeRolloutError::ZeroCapacity => {
                Status::invalid_argument(e.to_string())
            }
            ChangeRolloutError::WardOfUnknownSite(_)
            | ChangeRolloutError::Book(_)
            | ChangeRolloutError::Wave(_)
            | ChangeRolloutError::AlreadyDeployed { .. }
            | ChangeRolloutError::NotRetiredYet(_)
            | ChangeRolloutError::AlreadyCollected(_) => Status::failed_precondition(e.to_string()),
            ChangeRolloutError::MachineChanged(_) => Status::aborted(e.to_string()),
            ChangeRolloutError::Store(e) => e.into(),
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

fn today() -> time::Date {
    date_of_ms(custodian_proto::now_ms())
}

fn date_or_today(text: &str) -> Result<time::Date, Status> {
    if text.trim().is_empty() { Ok(today()) } else { parse_date(text).map_err(invalid) }
}

/// How people know a machine: asset tag, hostname, serial or id.
fn label(device: &DeviceRecord) -> String {
    device
        .asset_tag
        .clone()
        .or_else(|| Some(device.hostname.clone()).filter(|h| !h.is_empty()))
        .or_else(|| device.serial.clone())
        .unwrap_or_else(|| device.device_id.to_string())
}

fn machine_ref(device: &DeviceRecord) -> MachineRef {
    MachineRef { device_id: device.device_id, label: label(device), state: device.state }
}

/// What the rollout needs to know of a machine, from its record and latest
/// full inventory: the latest report is often a heartbeat, which carries
/// none. Judged as the `deployed` guard judges it.
fn facts_of(shared: &Shared, device: &DeviceRecord) -> Result<MachineFacts, Status> {
    let compliance =
        super::lifecycle::latest_inventory(shared, device)?.map(|latest| encryption_compliance(&latest.inventory));
    Ok(MachineFacts {
        device_id: device.device_id,
        hostname: device.hostname.clone(),
        serial: device.serial.clone(),
        asset_tag: device.asset_tag.clone(),
        state: device.state,
        enrolled: device.is_enrolled(),
        last_seen_ms: device.last_seen_ms,
        compliance,
    })
}

/// Facts for every machine the bookings name (booked or replaced).
fn facts_for(shared: &Shared, bookings: &[Booking]) -> Result<BTreeMap<DeviceId, MachineFacts>, Status> {
    let mut facts = BTreeMap::new();
    for device_id in bookings.iter().flat_map(|b| [Some(b.device_id), b.replaces]).flatten() {
        if facts.contains_key(&device_id) {
            continue;
        }
        if let Some(device) = shared.store.device(device_id)? {
            facts.insert(device_id, facts_of(shared, &device)?);
        }
    }
    Ok(facts)
}

fn to_pb_machine(device_id: DeviceId, facts: Option<&MachineFacts>) -> pb::RolloutMachine {
    let Some(m) = facts else {
        return pb::RolloutMachine { device_id: device_id.to_string(), ..Default::default() };
    };
    let (compliance, detail) = match &m.compliance {
        None => ("no_report", String::new()),
        Some(Compliance::Compliant) => ("compliant", String::new()),
        Some(Compliance::NonCompliant { volumes }) => {
            ("non_compliant", custodian_proto::json::describe_noncompliant(volumes))
        }
        Some(Compliance::Unknown { reason }) => ("unknown", reason.clone()),
    };
    pb::RolloutMachine {
        device_id: device_id.to_string(),
        asset_tag: m.asset_tag.clone().unwrap_or_default(),
        serial: m.serial.clone().unwrap_or_default(),
        hostname: m.hostname.clone(),
        state: m.state.as_str().to_owned(),
        enrolled: m.enrolled,
        last_seen_ms: m.last_seen_ms.unwrap_or(0),
        compliance: compliance.to_owned(),
        compliance_detail: detail,
    }
}

fn to_pb_booking(booking: &Booking, facts: &BTreeMap<DeviceId, MachineFacts>) -> pb::RolloutBooking {
    pb::RolloutBooking {
        plan: booking.plan.clone(),
        machine: Some(to_pb_machine(booking.device_id, facts.get(&booking.device_id))),
        date: format_date(booking.date),
        site: booking.site.clone(),
        ward: booking.ward.clone().unwrap_or_default(),
        engineer: booking.engineer.clone().unwrap_or_default(),
        replaces: booking.replaces.map(|id| to_pb_machine(id, facts.get(&id))),
        booked_by: booking.booked_by.clone(),
        booked_at_ms: booking.booked_at_ms,
        deployed_at_ms: booking.deployed_at_ms.unwrap_or(0),
        replaced_retired_at_ms: booking.replaced_retired_at_ms.unwrap_or(0),
        replaced_collected_at_ms: booking.replaced_collected_at_ms.unwrap_or(0),
    }
}

fn to_pb_plan(plan: &Plan) -> pb::RolloutPlan {
    pb::RolloutPlan {
        name: plan.name.clone(),
        start: format_date(plan.start),
        end: format_date(plan.end),
        engineer_capacity: plan.engineer_capacity,
        sites: plan
            .sites
            .iter()
            .map(|(name, capacity)| pb::RolloutSite {
                name: name.clone(),
                daily_capacity: capacity.daily,
                wards: capacity
                    .wards
                    .iter()
                    .map(|(ward, daily)| pb::RolloutWard { name: ward.clone(), daily_capacity: *daily })
                    .collect(),
            })
            .collect(),
        created_by: plan.created_by.clone(),
        created_at_ms: plan.created_at_ms,
    }
}

fn to_pb_counts(counts: &Counts) -> pb::RolloutCounts {
    pb::RolloutCounts {
        booked: counts.booked,
        deployed: counts.deployed,
        overdue: counts.overdue,
        not_enrolled: counts.not_enrolled,
        non_compliant: counts.non_compliant,
    }
}

impl RolloutService {
    fn plan(&self, name: &str) -> Result<Plan, Status> {
        let name = check_name("plan name", name).map_err(invalid)?;
        self.0.store.rollout_plan(&name)?.ok_or_else(|| ChangeRolloutError::UnknownPlan(name).into())
    }

    fn plan_bookings(&self, plan: &Plan) -> Result<Vec<Booking>, Status> {
        Ok(self.0.store.rollout_bookings()?.into_iter().filter(|b| b.plan == plan.name).collect())
    }

    /// The booking a request asks for, with the machines looked up.
    fn request(
        &self,
        device: &str,
        date: time::Date,
        site: String,
        ward: Option<String>,
        engineer: Option<String>,
        replaces: Option<&str>,
    ) -> Result<BookingRequest, Status> {
        let machine = machine_ref(&find_one(&self.0, device)?);
        let replaces = replaces.map(|query| find_one(&self.0, query)).transpose()?.map(|d| machine_ref(&d));
        Ok(BookingRequest { machine, date, site, ward, engineer, replaces })
    }

    async fn booked(&self, bookings: Vec<Booking>) -> Result<Response<pb::BookResponse>, Status> {
        self.0.store.flush().await?;
        let facts = facts_for(&self.0, &bookings)?;
        Ok(Response::new(pb::BookResponse { bookings: bookings.iter().map(|b| to_pb_booking(b, &facts)).collect() }))
    }
}

#[tonic::async_trait]
impl pb::rollout_server::Rollout for RolloutService {
    async fn create_plan(&self, req: Request<pb::CreatePlanRequest>) -> Result<Response<pb::PlanResponse>, Status> {
        let operator = peer_operator(&req, PLANNERS)?;
        let req = req.into_inner();
        let plan = Plan {
            name: check_name("plan name", &req.name).map_err(invalid)?,
            start: parse_date(&req.start).map_err(invalid)?,
            end: parse_date(&req.end).map_err(invalid)?,
            engineer_capacity: match req.engineer_capacity {
                0 => DEFAULT_ENGINEER_CAPACITY,
                n => n,
            },
            sites: BTreeMap::new(),
            created_by: operator.actor(),
            created_at_ms: custodian_proto::now_ms(),
        };
        let plan = self.0.store.create_rollout_plan(&plan)?;
        self.0.store.flush().await?;
        info!(plan = %plan.name, operator = %operator.actor(), "rollout plan created");
        Ok(Response::new(pb::PlanResponse { plan: Some(to_pb_plan(&plan)) }))
    }

    async fn set_site_capacity(
        &self,
        req: Request<pb::SetSiteCapacityRequest>,
    ) -> Result<Response<pb::PlanResponse>, Status> {
        let operator = peer_operator(&req, PLANNERS)?;
        let req = req.into_inner();
        let plan = check_name("plan name", &req.plan).map_err(invalid)?;
        let site = check_name("site", &req.site).map_err(invalid)?;
        let ward = check_optional_name("ward", &req.ward).map_err(invalid)?;
        let plan = self.0.store.set_rollout_capacity(
            &plan,
            &site,
            ward.as_deref(),
            req.daily_capacity,
            &operator.actor(),
            custodian_proto::now_ms(),
        )?;
        self.0.store.flush().await?;
        info!(plan = %plan.name, %site, ward = ?ward, capacity = req.daily_capacity, "rollout capacity set");
        Ok(Response::new(pb::PlanResponse { plan: Some(to_pb_plan(&plan)) }))
    }

    async fn get_plan(&self, req: Request<pb::GetPlanRequest>) -> Result<Response<pb::GetPlanResponse>, Status> {
        peer_operator(&req, READERS)?;
        let plan = self.plan(&req.into_inner().plan)?;
        let mut bookings = self.plan_bookings(&plan)?;
        bookings.sort_by(|a, b| (a.date, &a.site, &a.ward, &a.engineer).cmp(&(b.date, &b.site, &b.ward, &b.engineer)));
        let facts = facts_for(&self.0, &bookings)?;
        Ok(Response::new(pb::GetPlanResponse {
            plan: Some(to_pb_plan(&plan)),
            bookings: bookings.iter().map(|b| to_pb_booking(b, &facts)).collect(),
        }))
    }

    async fn book(&self, req: Request<pb::BookRequest>) -> Result<Response<pb::BookResponse>, Status> {
        let operator = peer_operator(&req, PLANNERS)?;
        let req = req.into_inner();
        let plan = check_name("plan name", &req.plan).map_err(invalid)?;
        let request = self.request(
            &req.device,
            parse_date(&req.date).map_err(invalid)?,
            check_name("site", &req.site).map_err(invalid)?,
            check_optional_name("ward", &req.ward).map_err(invalid)?,
            check_optional_name("engineer", &req.engineer).map_err(invalid)?,
            Some(req.replaces.as_str()).filter(|r| !r.trim().is_empty()),
        )?;
        let rows: Vec<WaveRow> = vec![(0, Ok(request))];
        let now = custodian_proto::now_ms();
        let bookings = self.0.store.book_rollout(&plan, &rows, false, &operator.actor(), now, "rollout book")?;
        for booking in &bookings {
            info!(%plan, operator = %operator.actor(), device_id = %booking.device_id, "machine booked");
        }
        self.booked(bookings).await
    }

    async fn import_wave(&self, req: Request<pb::ImportWaveRequest>) -> Result<Response<pb::BookResponse>, Status> {
        let operator = peer_operator(&req, PLANNERS)?;
        let req = req.into_inner();
        let plan = check_name("plan name", &req.plan).map_err(invalid)?;
        if req.csv.len() > MAX_WAVE_BYTES {
            return Err(invalid(format!("a wave file may be at most {MAX_WAVE_BYTES} bytes")));
        }
        let raw = crate::rollout::csv::parse_wave(&req.csv).map_err(|e| Status::failed_precondition(e.to_string()))?;
        let rows: Vec<WaveRow> = raw
            .into_iter()
            .map(|row| {
                let req = self
                    .request(&row.device, row.date, row.site, row.ward, row.engineer, row.replaces.as_deref())
                    .map_err(|status| status.message().to_owned());
                (row.line, req)
            })
            .collect();
        let source = match req.source.trim() {
            "" => "rollout import".to_owned(),
            file => format!("rollout import {}", file.chars().take(MAX_REASON_LEN).collect::<String>()),
        };
        let now = custodian_proto::now_ms();
        let bookings = self.0.store.book_rollout(&plan, &rows, true, &operator.actor(), now, &source)?;
        info!(%plan, operator = %operator.actor(), n = bookings.len(), "wave booked");
        self.booked(bookings).await
    }

    async fn cancel_booking(
        &self,
        req: Request<pb::CancelBookingRequest>,
    ) -> Result<Response<pb::CancelBookingResponse>, Status> {
        let operator = peer_operator(&req, PLANNERS)?;
        let req = req.into_inner();
        let reason = req.reason.trim();
        if reason.is_empty() || reason.len() > MAX_REASON_LEN {
            return Err(invalid(format!("give a reason of 1 to {MAX_REASON_LEN} characters")));
        }
        let device = find_one(&self.0, &req.device)?;
        let now = custodian_proto::now_ms();
        let booking =
            self.0.store.cancel_rollout_booking(device.device_id, &label(&device), &operator.actor(), now, reason)?;
        self.0.store.flush().await?;
        info!(plan = %booking.plan, device_id = %booking.device_id, operator = %operator.actor(), "booking cancelled");
        let facts = facts_for(&self.0, std::slice::from_ref(&booking))?;
        Ok(Response::new(pb::CancelBookingResponse { booking: Some(to_pb_booking(&booking, &facts)) }))
    }

    async fn run_sheet(&self, req: Request<pb::RunSheetRequest>) -> Result<Response<pb::RunSheetResponse>, Status> {
        peer_operator(&req, READERS)?;
        let req = req.into_inner();
        let date = date_or_today(&req.date)?;
        let engineer = check_optional_name("engineer", &req.engineer).map_err(invalid)?;
        let bookings: Vec<Booking> = self.0.store.rollout_bookings()?.into_iter().filter(|b| b.date == date).collect();
        let facts = facts_for(&self.0, &bookings)?;
        let sheets = run_sheet(date, engineer.as_deref(), &bookings, &facts);
        let engineers = sheets
            .into_iter()
            .map(|sheet| pb::EngineerRunSheet {
                engineer: sheet.engineer.unwrap_or_default(),
                stops: sheet
                    .stops
                    .into_iter()
                    .map(|stop| pb::RunSheetStop {
                        site: stop.site,
                        ward: stop.ward.unwrap_or_default(),
                        machines: stop
                            .machines
                            .into_iter()
                            .map(|m| pb::RunSheetMachine {
                                machine: Some(to_pb_machine(m.machine.device_id, Some(&m.machine))),
                                replaces: m.replaces.as_ref().map(|r| to_pb_machine(r.device_id, Some(r))),
                                deployed: m.deployed,
                                plan: m.plan,
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        Ok(Response::new(pb::RunSheetResponse { date: format_date(date), engineers }))
    }

    async fn status(&self, req: Request<pb::PlanStatusRequest>) -> Result<Response<pb::PlanStatusResponse>, Status> {
        peer_operator(&req, READERS)?;
        let req = req.into_inner();
        let plan = self.plan(&req.plan)?;
        let as_of = date_or_today(&req.as_of)?;
        let bookings = self.plan_bookings(&plan)?;
        let facts = facts_for(&self.0, &bookings)?;
        let status = plan_status(&plan, &bookings, &facts, as_of);
        let group = |groups: &BTreeMap<String, Counts>| {
            groups
                .iter()
                .map(|(key, counts)| pb::RolloutGroupCounts { key: key.clone(), counts: Some(to_pb_counts(counts)) })
                .collect()
        };
        let overdue = bookings
            .iter()
            .filter(|b| status.overdue.contains(&b.device_id))
            .map(|b| to_pb_booking(b, &facts))
            .collect();
        Ok(Response::new(pb::PlanStatusResponse {
            plan: status.plan.clone(),
            as_of: status.today.clone(),
            total: Some(to_pb_counts(&status.total)),
            by_site: group(&status.by_site),
            by_day: group(&status.by_day),
            overdue,
        }))
    }

    async fn export_plan(
        &self,
        req: Request<pb::ExportPlanRequest>,
    ) -> Result<Response<pb::ExportPlanResponse>, Status> {
        peer_operator(&req, READERS)?;
        let req = req.into_inner();
        let format = req.format();
        let plan = self.plan(&req.plan)?;
        let bookings = self.plan_bookings(&plan)?;
        let facts = facts_for(&self.0, &bookings)?;
        let (content, content_type) = match format {
            pb::ExportFormat::Csv => (crate::rollout::csv::export_csv(&bookings, &facts), "text/csv"),
            pb::ExportFormat::Ical => (
                crate::rollout::ical::export_ical(&plan, &bookings, &facts, time::OffsetDateTime::now_utc()),
                "text/calendar",
            ),
            pb::ExportFormat::Unspecified => return Err(invalid("give an export format: csv or ical")),
        };
        Ok(Response::new(pb::ExportPlanResponse {
            content: content.into_bytes(),
            content_type: content_type.to_owned(),
        }))
    }

    async fn mark_collected(
        &self,
        req: Request<pb::MarkCollectedRequest>,
    ) -> Result<Response<pb::MarkCollectedResponse>, Status> {
        let operator = peer_operator(&req, PLANNERS)?;
        let req = req.into_inner();
        let note = req.note.trim();
        if note.len() > MAX_REASON_LEN {
            return Err(invalid(format!("a note may be at most {MAX_REASON_LEN} characters")));
        }
        let device = find_one(&self.0, &req.device)?;
        let now = custodian_proto::now_ms();
        let booking = self.0.store.mark_rollout_collected(
            device.device_id,
            &label(&device),
            &operator.actor(),
            now,
            Some(note).filter(|n| !n.is_empty()),
        )?;
        self.0.store.flush().await?;
        info!(device_id = %device.device_id, plan = %booking.plan, operator = %operator.actor(), "replaced machine collected");
        let facts = facts_for(&self.0, std::slice::from_ref(&booking))?;
        Ok(Response::new(pb::MarkCollectedResponse { booking: Some(to_pb_booking(&booking, &facts)) }))
    }

    async fn to_collect(&self, req: Request<pb::ToCollectRequest>) -> Result<Response<pb::ToCollectResponse>, Status> {
        peer_operator(&req, READERS)?;
        let engineer = check_optional_name("engineer", &req.into_inner().engineer).map_err(invalid)?;
        // Only bookings whose old machine may still be waiting.
        let bookings: Vec<Booking> = self
            .0
            .store
            .rollout_bookings()?
            .into_iter()
            .filter(|b| b.replaces.is_some() && b.replaced_collected_at_ms.is_none())
            .collect();
        let facts = facts_for(&self.0, &bookings)?;
        let items = to_collect(engineer.as_deref(), &bookings, &facts)
            .into_iter()
            .map(|item| pb::CollectItem {
                machine: Some(to_pb_machine(item.machine.device_id, Some(&item.machine))),
                replaced_by: Some(to_pb_machine(item.replaced_by, facts.get(&item.replaced_by))),
                plan: item.plan,
                date: format_date(item.date),
                site: item.site,
                ward: item.ward.unwrap_or_default(),
                engineer: item.engineer.unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::ToCollectResponse { items }))
    }
}

/// The lifecycle's hook, called before a machine is moved to `deployed`:
/// a booked machine's site and ward default to its slot's, so the register
/// says where the rollout put it.
pub(super) fn slot_attributes(
    shared: &Shared,
    device_id: DeviceId,
    attributes: &mut TransitionAttributes,
) -> Result<(), Status> {
    let Some(booking) = shared.store.rollout_booking(device_id)? else {
        return Ok(());
    };
    if attributes.site.is_none() {
        attributes.site = Some(booking.site.clone());
        if attributes.ward.is_none() {
            attributes.ward = booking.ward.clone();
        }
    }
    Ok(())
}

/// The lifecycle's hook, called after a machine has been moved to `deployed`
/// (the transition and its encryption guard are done and written): records
/// the confirmation in the machine's slot, and retires the machine it
/// replaces through the lifecycle (audited, the rollout named as the
/// reason), which puts it on the to-collect list. Each step is its own
/// audited transaction; a failure does not undo the deployment, and is
/// returned (and logged) so the engineer who confirmed it is told: a
/// replaced machine left out of the to-collect list is how machines vanish.
pub(super) fn on_deployed(shared: &Shared, device_id: DeviceId, actor: &str, now_ms: i64) -> Option<String> {
    match confirm_and_retire(shared, device_id, actor, now_ms) {
        Ok(None) => None,
        Ok(Some(warning)) => {
            warn!(%device_id, %warning, "rollout deployment not fully recorded");
            Some(warning)
        }
        Err(e) => {
            error!(%device_id, error = %e, "failed to record a rollout deployment");
            Some(format!(
                "the rollout booking could not be updated ({e}); to retry, send the machine to in_repair and deploy it again"
            ))
        }
    }
}

/// Confirms the booking and retires the replaced machine; `Ok(Some(why))`
/// when the replaced machine was not retired.
fn confirm_and_retire(
    shared: &Shared,
    device_id: DeviceId,
    actor: &str,
    now_ms: i64,
) -> Result<Option<String>, crate::store::StoreError> {
    let store = &shared.store;
    let Some(booking) = store.rollout_booking(device_id)? else {
        return Ok(None);
    };
    // Recorded once; a later move back to deployed (after a repair) retries
    // only what was left undone.
    if let Some(confirmed) = store.confirm_rollout_deployed(device_id, actor, now_ms)? {
        info!(%device_id, plan = %confirmed.plan, "rollout booking confirmed deployed");
    }
    let Some(old_id) = booking.replaces.filter(|_| booking.replaced_retired_at_ms.is_none()) else {
        return Ok(None);
    };
    let not_retired = |name: &str, why: String| {
        Some(format!(
            "the machine this one replaces in rollout {}, {name}, was NOT retired and is not on the to-collect \
             list: {why}; record where it is (`custodianctl device transition {name} ...`)",
            booking.plan
        ))
    };
    let Some(old) = store.device(old_id)? else {
        return Ok(not_retired(&old_id.to_string(), "it is no longer in the register".to_owned()));
    };
    if old.state == LifecycleState::Retired {
        store.record_rollout_replaced_retired(device_id, actor, now_ms)?;
        return Ok(None);
    }
    let to = match old.state.move_to(LifecycleState::Retired) {
        Ok(to) => to,
        Err(e) => return Ok(not_retired(&label(&old), e.to_string())),
    };
    if let Err(e) = check_guard(to, &GuardInputs { compliance: None, coverage: None }, false) {
        return Ok(not_retired(&label(&old), e.to_string()));
    }
    let replacement = store.device(device_id)?.map(|d| label(&d)).unwrap_or_else(|| device_id.to_string());
    let event = AuditEvent::new(now_ms, actor, EventKind::DeviceTransitioned, Some(old_id))
        .with_reason(format!("replaced by {replacement} in rollout {}", booking.plan))
        .with_detail("rollout", booking.plan.clone())
        .with_detail("replaced_by", device_id.to_string());
    match store.transition(old_id, old.state, to, &TransitionAttributes::default(), event)? {
        Some(TransitionOutcome::Moved(..)) => {
            store.record_rollout_replaced_retired(device_id, actor, now_ms)?;
            info!(replaced = %old_id, plan = %booking.plan, "replaced machine retired by the rollout");
            Ok(None)
        }
        _ => Ok(not_retired(&label(&old), "it moved or reported while this was recorded".to_owned())),
    }
}
