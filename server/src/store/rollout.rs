//! Rollout plans and bookings in the store.
//!
//! Trees:
//! - `rollout_plans`: plan name (UTF-8) → [`Plan`], versioned;
//! - `rollout_bookings`: device id (16 bytes) → [`Booking`], versioned. A
//!   machine is booked at most once, in any plan.
//!
//! Booking checks read every booking, which a sled transaction cannot scan,
//! so rollout writes are serialised by a process-wide lock; each change is
//! then written in one transaction with its audit event, and the states of
//! the machines booked are read again inside it, so a machine moved in the
//! meantime is refused rather than booked.

use std::sync::Mutex;

use custodian_proto::identity::DeviceId;
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::{DeviceRecord, Store, StoreError, VersionedDevice, audit, decode, encode};
use crate::audit::event::{AuditEvent, EventKind};
use crate::lifecycle::LifecycleState;
use crate::rollout::{BookError, Booking, Plan, WaveError, WaveRow, check_booking, check_wave, format_date};

const PLANS: &str = "rollout_plans";
const BOOKINGS: &str = "rollout_bookings";

/// Serialises rollout writes (see the module comment).
static ROLLOUT_WRITES: Mutex<()> = Mutex::new(());

#[derive(Serialize, Deserialize)]
enum VersionedPlan {
    V1(Plan),
}

#[derive(Serialize, Deserialize)]
enum VersionedBooking {
    V1(Booking),
}

impl From<VersionedPlan> for Plan {
    fn from(v: VersionedPlan) -> Self {
        match v {
            VersionedPlan::V1(plan) => plan,
        }
    }
}

impl From<VersionedBooking> for Booking {
    fn from(v: VersionedBooking) -> Self {
        match v {
            VersionedBooking::V1(booking) => booking,
        }
    }
}

/// Why a change to a plan or its bookings was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ChangeRolloutError {
    /// No plan has that name.
    #[error("no rollout plan named {0:?}")]
    UnknownPlan(String),
    /// A plan with that name exists.
    #[error("a rollout plan named {0:?} already exists")]
    PlanExists(String),
    /// The plan's dates are the wrong way round.
    #[error("the plan ends ({end}) before it starts ({start})")]
    EndsBeforeStart {
        /// First day.
        start: String,
        /// Last day.
        end: String,
    },
    /// A capacity of zero.
    #[error("a daily capacity must be at least 1")]
    ZeroCapacity,
    /// A ward's capacity was set for a site not yet in the plan.
    #[error("site {0:?} is not in the plan; give its own capacity first (`rollout site PLAN SITE --capacity N`)")]
    WardOfUnknownSite(String),
    /// One booking was refused.
    #[error(transparent)]
    Book(#[from] BookError),
    /// A wave was refused at one row.
    #[error(transparent)]
    Wave(#[from] WaveError),
    /// The machine has no booking.
    #[error("machine {0} is not booked in any rollout")]
    NotBooked(String),
    /// A deployed machine's booking is kept.
    #[error("machine {machine} is already deployed by plan {plan}; its booking cannot be cancelled")]
    AlreadyDeployed {
        /// The machine.
        machine: String,
        /// The plan.
        plan: String,
    },
    /// No booking replaces the machine.
    #[error("machine {0} is not being replaced by any rollout booking")]
    NotReplaced(String),
    /// The machine is not on the to-collect list yet: its replacement has
    /// not been confirmed deployed, which is what retires it.
    #[error(
        "machine {0} has not been retired by its replacement yet, so it is not waiting to be collected; it goes \
         on the to-collect list once the new machine is confirmed deployed"
    )]
    NotRetiredYet(String),
    /// The machine was marked collected already.
    #[error("machine {0} was already marked collected")]
    AlreadyCollected(String),
    /// A machine's state changed between the checks and the write.
    #[error("machine {0} changed state while it was being booked; nothing was written; try again")]
    MachineChanged(DeviceId),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

type TxResult<T> = Result<T, ConflictableTransactionError<ChangeRolloutError>>;

fn lift(e: ConflictableTransactionError<StoreError>) -> ConflictableTransactionError<ChangeRolloutError> {
    match e {
        ConflictableTransactionError::Abort(e) => ConflictableTransactionError::Abort(e.into()),
        ConflictableTransactionError::Storage(e) => ConflictableTransactionError::Storage(e),
        ConflictableTransactionError::Conflict => ConflictableTransactionError::Conflict,
    }
}

fn flatten(e: TransactionError<ChangeRolloutError>) -> ChangeRolloutError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => ChangeRolloutError::Store(e.into()),
    }
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    // A panic while holding the lock leaves no half-written state (writes
    // are transactions), so a poisoned lock is still good to use.
    ROLLOUT_WRITES.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn get_booking(bookings: &TransactionalTree, device_id: DeviceId) -> TxResult<Option<Booking>> {
    bookings
        .get(device_id.as_bytes())?
        .map(|bytes| decode::<VersionedBooking>(BOOKINGS, &bytes).map(Into::into))
        .transpose()
        .map_err(|e| ConflictableTransactionError::Abort(e.into()))
}

fn put_booking(bookings: &TransactionalTree, booking: &Booking) -> TxResult<()> {
    bookings.insert(booking.device_id.as_bytes(), encode(&VersionedBooking::V1(booking.clone())))?;
    Ok(())
}

/// The audit event of a booking change: who, which machine, and where.
fn booking_event(booking: &Booking, actor: &str, now_ms: i64, action: &str) -> AuditEvent {
    let mut event = AuditEvent::new(now_ms, actor, EventKind::RolloutBookingChanged, Some(booking.device_id))
        .with_detail("action", action)
        .with_detail("plan", booking.plan.clone())
        .with_detail("date", format_date(booking.date))
        .with_detail("site", booking.site.clone());
    if let Some(ward) = &booking.ward {
        event = event.with_detail("ward", ward.clone());
    }
    if let Some(engineer) = &booking.engineer {
        event = event.with_detail("engineer", engineer.clone());
    }
    if let Some(replaces) = booking.replaces {
        event = event.with_detail("replaces", replaces.to_string());
    }
    event
}

fn plan_event(plan: &Plan, actor: &str, now_ms: i64, action: &str) -> AuditEvent {
    AuditEvent::new(now_ms, actor, EventKind::RolloutPlanChanged, None)
        .with_detail("action", action)
        .with_detail("plan", plan.name.clone())
        .with_detail("start", format_date(plan.start))
        .with_detail("end", format_date(plan.end))
        .with_detail("engineer_capacity", plan.engineer_capacity.to_string())
}

impl Store {
    fn rollout_trees(&self) -> Result<(sled::Tree, sled::Tree), StoreError> {
        Ok((self.db.open_tree(PLANS)?, self.db.open_tree(BOOKINGS)?))
    }

    /// Creates a plan, with its audit event. Not durable until [`Store::flush`].
    pub fn create_rollout_plan(&self, plan: &Plan) -> Result<Plan, ChangeRolloutError> {
        if plan.end < plan.start {
            return Err(ChangeRolloutError::EndsBeforeStart {
                start: format_date(plan.start),
                end: format_date(plan.end),
            });
        }
        if plan.engineer_capacity == 0 {
            return Err(ChangeRolloutError::ZeroCapacity);
        }
        let _guard = lock();
        let (plans, _) = self.rollout_trees()?;
        let event = plan_event(plan, &plan.created_by, plan.created_at_ms, "created");
        let _gate = self.transaction_gate();
        (&plans, &self.audit)
            .transaction(|(plans, audit_tree)| {
                if plans.get(plan.name.as_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(ChangeRolloutError::PlanExists(plan.name.clone())));
                }
                plans.insert(plan.name.as_bytes(), encode(&VersionedPlan::V1(plan.clone())))?;
                audit::append(audit_tree, event.clone()).map_err(lift)?;
                Ok(plan.clone())
            })
            .map_err(flatten)
    }

    /// Adds a site (or, with `ward`, a ward of a site already in the plan) or
    /// changes its daily capacity, with its audit event.
    pub fn set_rollout_capacity(
        &self,
        plan_name: &str,
        site: &str,
        ward: Option<&str>,
        daily: u32,
        actor: &str,
        now_ms: i64,
    ) -> Result<Plan, ChangeRolloutError> {
        if daily == 0 {
            return Err(ChangeRolloutError::ZeroCapacity);
        }
        let _guard = lock();
        let (plans, _) = self.rollout_trees()?;
        let _gate = self.transaction_gate();
        (&plans, &self.audit)
            .transaction(|(plans, audit_tree)| {
                let Some(bytes) = plans.get(plan_name.as_bytes())? else {
                    return Err(ConflictableTransactionError::Abort(ChangeRolloutError::UnknownPlan(
                        plan_name.to_owned(),
                    )));
                };
                let mut plan: Plan = decode::<VersionedPlan>(PLANS, &bytes)
                    .map_err(|e| ConflictableTransactionError::Abort(e.into()))?
                    .into();
                match ward {
                    None => plan.sites.entry(site.to_owned()).or_default().daily = daily,
                    Some(ward) => {
                        let Some(capacity) = plan.sites.get_mut(site) else {
                            return Err(ConflictableTransactionError::Abort(ChangeRolloutError::WardOfUnknownSite(
                                site.to_owned(),
                            )));
                        };
                        capacity.wards.insert(ward.to_owned(), daily);
                    }
                }
                plans.insert(plan_name.as_bytes(), encode(&VersionedPlan::V1(plan.clone())))?;
                let mut event = plan_event(&plan, actor, now_ms, "capacity_set")
                    .with_detail("site", site)
                    .with_detail("daily_capacity", daily.to_string());
                if let Some(ward) = ward {
                    event = event.with_detail("ward", ward);
                }
                audit::append(audit_tree, event).map_err(lift)?;
                Ok(plan)
            })
            .map_err(flatten)
    }

    /// The plan named `name`.
    pub fn rollout_plan(&self, name: &str) -> Result<Option<Plan>, StoreError> {
        let (plans, _) = self.rollout_trees()?;
        plans.get(name.as_bytes())?.map(|bytes| decode::<VersionedPlan>(PLANS, &bytes).map(Into::into)).transpose()
    }

    /// Every booking, of every plan.
    pub fn rollout_bookings(&self) -> Result<Vec<Booking>, StoreError> {
        let (_, bookings) = self.rollout_trees()?;
        bookings.iter().values().map(|bytes| decode::<VersionedBooking>(BOOKINGS, &bytes?).map(Into::into)).collect()
    }

    /// The booking of one machine, if it has one.
    pub fn rollout_booking(&self, device_id: DeviceId) -> Result<Option<Booking>, StoreError> {
        let (_, bookings) = self.rollout_trees()?;
        bookings
            .get(device_id.as_bytes())?
            .map(|bytes| decode::<VersionedBooking>(BOOKINGS, &bytes).map(Into::into))
            .transpose()
    }

    /// Books machines into a plan, all or none, each with its audit event.
    /// With `wave`, `rows` are a file's rows and a refusal names the line;
    /// otherwise there is one row and a refusal is the [`BookError`].
    /// `source` says where the bookings came from, for the audit trail.
    pub fn book_rollout(
        &self,
        plan_name: &str,
        rows: &[WaveRow],
        wave: bool,
        actor: &str,
        now_ms: i64,
        source: &str,
    ) -> Result<Vec<Booking>, ChangeRolloutError> {
        let _guard = lock();
        let plan =
            self.rollout_plan(plan_name)?.ok_or_else(|| ChangeRolloutError::UnknownPlan(plan_name.to_owned()))?;
        let existing = self.rollout_bookings()?;
        let new = match rows {
            [(_, Ok(req))] if !wave => vec![check_booking(&plan, &existing, req, actor, now_ms)?],
            _ => check_wave(&plan, &existing, rows, actor, now_ms)?,
        };
        let lines: Vec<(u64, &crate::rollout::BookingRequest)> =
            rows.iter().filter_map(|(line, row)| row.as_ref().ok().map(|req| (*line, req))).collect();
        let (_, bookings) = self.rollout_trees()?;
        let _hot = self.settled()?;
        let _gate = self.transaction_gate();
        (&bookings, &self.devices, &self.audit)
            .transaction(|(bookings, devices, audit_tree)| {
                for (booking, (line, req)) in new.iter().zip(&lines) {
                    let state = device_state(devices, booking.device_id)?;
                    if state != Some(req.machine.state) {
                        return Err(ConflictableTransactionError::Abort(ChangeRolloutError::MachineChanged(
                            booking.device_id,
                        )));
                    }
                    if let Some(replaced) = &req.replaces
                        && device_state(devices, replaced.device_id)? != Some(replaced.state)
                    {
                        return Err(ConflictableTransactionError::Abort(ChangeRolloutError::MachineChanged(
                            replaced.device_id,
                        )));
                    }
                    put_booking(bookings, booking)?;
                    let mut event = booking_event(booking, actor, now_ms, "booked").with_detail("source", source);
                    if wave {
                        event = event.with_detail("line", line.to_string());
                    }
                    audit::append(audit_tree, event).map_err(lift)?;
                }
                Ok(new.clone())
            })
            .map_err(flatten)
    }

    /// Cancels a machine's booking, with its audit event. A deployed
    /// machine's booking is kept.
    pub fn cancel_rollout_booking(
        &self,
        device_id: DeviceId,
        label: &str,
        actor: &str,
        now_ms: i64,
        reason: &str,
    ) -> Result<Booking, ChangeRolloutError> {
        let _guard = lock();
        let (_, bookings) = self.rollout_trees()?;
        let _gate = self.transaction_gate();
        (&bookings, &self.audit)
            .transaction(|(bookings, audit_tree)| {
                let Some(booking) = get_booking(bookings, device_id)? else {
                    return Err(ConflictableTransactionError::Abort(ChangeRolloutError::NotBooked(label.to_owned())));
                };
                if booking.deployed_at_ms.is_some() {
                    return Err(ConflictableTransactionError::Abort(ChangeRolloutError::AlreadyDeployed {
                        machine: label.to_owned(),
                        plan: booking.plan.clone(),
                    }));
                }
                bookings.remove(device_id.as_bytes())?;
                let event = booking_event(&booking, actor, now_ms, "cancelled").with_reason(reason);
                audit::append(audit_tree, event).map_err(lift)?;
                Ok(booking)
            })
            .map_err(flatten)
    }

    /// Records in its slot that a booked machine was confirmed deployed, with
    /// its audit event. Returns the booking if this call recorded it (`None`:
    /// not booked, or recorded already).
    pub fn confirm_rollout_deployed(
        &self,
        device_id: DeviceId,
        actor: &str,
        now_ms: i64,
    ) -> Result<Option<Booking>, StoreError> {
        self.update_booking(device_id, |booking| {
            if booking.deployed_at_ms.is_some() {
                return None;
            }
            booking.deployed_at_ms = Some(now_ms);
            Some(booking_event(booking, actor, now_ms, "deployed"))
        })
    }

    /// Records in a booking that the machine it replaces was retired, with
    /// its audit event. Returns the booking if this call recorded it.
    pub fn record_rollout_replaced_retired(
        &self,
        device_id: DeviceId,
        actor: &str,
        now_ms: i64,
    ) -> Result<Option<Booking>, StoreError> {
        self.update_booking(device_id, |booking| {
            if booking.replaced_retired_at_ms.is_some() || booking.replaces.is_none() {
                return None;
            }
            booking.replaced_retired_at_ms = Some(now_ms);
            Some(booking_event(booking, actor, now_ms, "replaced_retired"))
        })
    }

    /// Marks the old machine `replaced` (which a booking replaces) collected,
    /// taking it off the to-collect list, with its audit event on the old
    /// machine. Returns the booking.
    pub fn mark_rollout_collected(
        &self,
        replaced: DeviceId,
        label: &str,
        actor: &str,
        now_ms: i64,
        note: Option<&str>,
    ) -> Result<Booking, ChangeRolloutError> {
        let booking = {
            let _guard = lock();
            self.rollout_bookings()?.into_iter().find(|b| b.replaces == Some(replaced))
        };
        let Some(booking) = booking else {
            return Err(ChangeRolloutError::NotReplaced(label.to_owned()));
        };
        if booking.replaced_retired_at_ms.is_none() {
            return Err(ChangeRolloutError::NotRetiredYet(label.to_owned()));
        }
        let res = self.update_booking(booking.device_id, |booking| {
            if booking.replaces != Some(replaced) || booking.replaced_collected_at_ms.is_some() {
                return None;
            }
            booking.replaced_collected_at_ms = Some(now_ms);
            let mut event = booking_event(booking, actor, now_ms, "replaced_collected");
            event.device_id = Some(replaced);
            event = event.with_detail("replaced_by", booking.device_id.to_string());
            if let Some(note) = note {
                event = event.with_reason(note);
            }
            Some(event)
        })?;
        res.ok_or_else(|| ChangeRolloutError::AlreadyCollected(label.to_owned()))
    }

    fn update_booking(
        &self,
        device_id: DeviceId,
        change: impl Fn(&mut Booking) -> Option<AuditEvent>,
    ) -> Result<Option<Booking>, StoreError> {
        let _guard = lock();
        let (_, bookings) = self.rollout_trees()?;
        let _gate = self.transaction_gate();
        let res = (&bookings, &self.audit).transaction(|(bookings, audit_tree)| {
            let Some(mut booking) = get_booking(bookings, device_id)? else {
                return Ok(None);
            };
            let Some(event) = change(&mut booking) else {
                return Ok(None);
            };
            put_booking(bookings, &booking)?;
            audit::append(audit_tree, event).map_err(lift)?;
            Ok(Some(booking))
        });
        res.map_err(|e| match flatten(e) {
            ChangeRolloutError::Store(e) => e,
            other => StoreError::Decode { tree: BOOKINGS, error: other.to_string() },
        })
    }
}

fn device_state(devices: &TransactionalTree, device_id: DeviceId) -> TxResult<Option<LifecycleState>> {
    let Some(bytes) = devices.get(device_id.as_bytes())? else {
        return Ok(None);
    };
    let device: DeviceRecord = decode::<VersionedDevice>("devices", &bytes)
        .map_err(|e| ConflictableTransactionError::Abort(ChangeRolloutError::Store(e)))?
        .into();
    Ok(Some(device.state))
}

#[cfg(test)]
mod tests;
