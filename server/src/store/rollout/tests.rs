//! Tests of rollout storage: refusals write nothing (no booking, no audit
//! event), accepted changes are audited, and deployment confirmation.

use std::collections::BTreeMap;

use time::macros::date;

use super::super::{DeviceRecord, NewDevice, Store, TransitionAttributes};
use super::ChangeRolloutError;
use crate::audit::event::{AuditEvent, EventKind};
use crate::lifecycle::LifecycleState;
use crate::rollout::{BookingRequest, MachineRef, Plan, WaveRow};

const ACTOR: &str = "alice (engineer)";

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    machines: Vec<DeviceRecord>,
}

fn fixture(n: usize) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("store")).expect("open store");
    let rows: Vec<NewDevice> = (0..n)
        .map(|i| NewDevice {
            serial: format!("SN-{i}"),
            asset_tag: format!("AT-{i}"),
            model: "OptiPlex".to_owned(),
            state: LifecycleState::InStock,
            line: None,
            supplier: None,
            order_ref: None,
            site: None,
        })
        .collect();
    let machines = store.add_devices(&rows, ACTOR, 1, "test").expect("store").expect("added");
    let plan = Plan {
        name: "wave-1".to_owned(),
        start: date!(2026 - 12 - 01),
        end: date!(2026 - 12 - 31),
        engineer_capacity: 2,
        sites: BTreeMap::new(),
        created_by: ACTOR.to_owned(),
        created_at_ms: 2,
    };
    store.create_rollout_plan(&plan).expect("plan created");
    store.set_rollout_capacity("wave-1", "Annex", None, 2, ACTOR, 3).expect("site added");
    store.set_rollout_capacity("wave-1", "Annex", Some("Ward 1"), 1, ACTOR, 4).expect("ward added");
    store.set_rollout_capacity("wave-1", "Clinic", None, 5, ACTOR, 5).expect("site added");
    Fixture { _dir: dir, store, machines }
}

fn mref(device: &DeviceRecord) -> MachineRef {
    MachineRef { device_id: device.device_id, label: device.asset_tag.clone().unwrap_or_default(), state: device.state }
}

fn row(device: &DeviceRecord, day: u8, ward: Option<&str>, engineer: Option<&str>) -> BookingRequest {
    BookingRequest {
        machine: mref(device),
        date: time::Date::from_calendar_date(2026, time::Month::December, day).expect("valid date"),
        site: "Annex".to_owned(),
        ward: ward.map(str::to_owned),
        engineer: engineer.map(str::to_owned),
        replaces: None,
    }
}

impl Fixture {
    fn book(&self, req: BookingRequest) -> Result<Vec<crate::rollout::Booking>, ChangeRolloutError> {
        self.store.book_rollout("wave-1", &[(0, Ok(req))], false, ACTOR, 10, "test")
    }

    /// (bookings, audit events) as they stand.
    fn written(&self) -> (usize, u64) {
        (self.store.rollout_bookings().expect("bookings").len(), self.store.audit_head().expect("head").size)
    }

    #[track_caller]
    fn check_refused(&self, res: Result<Vec<crate::rollout::Booking>, ChangeRolloutError>, expect: &str) {
        let before = self.written();
        let err = res.expect_err("must be refused");
        assert_eq!(err.to_string(), expect);
        assert_eq!(self.written(), before, "a refusal wrote something");
    }
}

#[test]
fn plan_changes_are_audited_and_duplicates_refused() {
    let f = fixture(0);
    let plan = f.store.rollout_plan("wave-1").expect("read").expect("exists");
    assert_eq!(plan.sites["Annex"].daily, 2);
    assert_eq!(plan.sites["Annex"].wards["Ward 1"], 1);
    let events = f.store.audit_entries(0, 100).expect("entries");
    let kinds: Vec<EventKind> =
        events.iter().map(|e| AuditEvent::from_bytes(&e.bytes).expect("decodes").kind).collect();
    assert_eq!(kinds, [EventKind::RolloutPlanChanged; 4]);
    let err = f.store.create_rollout_plan(&plan).expect_err("exists");
    assert_eq!(err.to_string(), "a rollout plan named \"wave-1\" already exists");
    let err = f.store.set_rollout_capacity("wave-1", "Elsewhere", Some("W"), 1, ACTOR, 5).expect_err("no site");
    assert!(matches!(err, ChangeRolloutError::WardOfUnknownSite(_)), "{err}");
    let err = f.store.set_rollout_capacity("nope", "Annex", None, 1, ACTOR, 5).expect_err("no plan");
    assert_eq!(err.to_string(), "no rollout plan named \"nope\"");
    assert_eq!(f.store.audit_head().expect("head").size, 4, "refusals are not audited");
}

#[test]
fn refusals_write_nothing() {
    let f = fixture(5);
    let m = &f.machines;
    let booked = f.book(row(&m[0], 2, Some("Ward 1"), Some("bob"))).expect("booked");
    assert_eq!(booked.len(), 1);
    let (n_bookings, n_events) = f.written();
    assert_eq!(n_bookings, 1);
    let last = f.store.audit_entry(n_events - 1).expect("read").expect("exists");
    let event = AuditEvent::from_bytes(&last.bytes).expect("decodes");
    assert_eq!(event.kind, EventKind::RolloutBookingChanged);
    assert_eq!(event.device_id, Some(m[0].device_id));
    assert_eq!(event.details["action"], "booked");
    assert_eq!(event.details["ward"], "Ward 1");

    // Double booking.
    f.check_refused(
        f.book(row(&m[0], 3, None, None)),
        "machine AT-0 is already booked in plan wave-1 on 2026-12-02 at Annex; cancel that booking first",
    );
    // Ward over capacity.
    f.check_refused(
        f.book(row(&m[1], 2, Some("Ward 1"), None)),
        "slot over capacity: Annex / Ward 1 takes 1 machines a day and 2026-12-02 is fully booked",
    );
    // Date outside the plan.
    let mut outside = row(&m[1], 2, None, None);
    outside.date = date!(2027 - 01 - 01);
    f.check_refused(f.book(outside), "2027-01-01 is outside plan wave-1, which runs from 2026-12-01 to 2026-12-31");
    // Wrong state: move machine 2 to retired first.
    let event = AuditEvent::new(11, ACTOR, EventKind::DeviceTransitioned, Some(m[2].device_id)).with_reason("old");
    f.store
        .transition(
            m[2].device_id,
            LifecycleState::InStock,
            LifecycleState::Retired,
            &TransitionAttributes::default(),
            event,
        )
        .expect("moved");
    let mut retired = row(&m[2], 2, None, None);
    retired.machine.state = LifecycleState::Retired;
    f.check_refused(f.book(retired), "machine AT-2 is retired; only machines in staged or in_stock can be booked");
    // A state read before the machine moved is caught inside the transaction.
    f.check_refused(
        f.book(row(&m[2], 2, None, None)),
        &format!("machine {} changed state while it was being booked; nothing was written; try again", m[2].device_id),
    );
    // Engineer beyond their daily capacity (2), at a site with room.
    f.book(row(&m[1], 4, None, Some("bob"))).expect("bob's first");
    f.book(row(&m[3], 4, None, Some("bob"))).expect("bob's second");
    let mut clinic = row(&m[4], 4, None, Some("bob"));
    clinic.site = "Clinic".to_owned();
    f.check_refused(
        f.book(clinic),
        "engineer bob is double-booked: already 2 machines on 2026-12-04, and installs at most 2 a day",
    );
    // Unknown plan.
    let err = f.store.book_rollout("nope", &[(0, Ok(row(&m[4], 5, None, None)))], false, ACTOR, 10, "t");
    f.check_refused(err, "no rollout plan named \"nope\"");
}

#[test]
fn a_wave_with_one_bad_row_applies_nothing() {
    let f = fixture(4);
    let m = &f.machines;
    let before = f.written();
    let rows: Vec<WaveRow> = vec![
        (2, Ok(row(&m[0], 2, None, None))),
        (3, Ok(row(&m[1], 2, None, None))),
        (4, Ok(row(&m[2], 2, None, None))),
        (5, Ok(row(&m[3], 3, None, None))),
    ];
    let err = f.store.book_rollout("wave-1", &rows, true, ACTOR, 10, "wave.csv").expect_err("site holds 2 a day");
    assert_eq!(
        err.to_string(),
        "line 4: slot over capacity: Annex takes 2 machines a day and 2026-12-02 is fully booked; \
         nothing from the file was applied"
    );
    assert_eq!(f.written(), before);
    let rows: Vec<WaveRow> = vec![(2, Ok(row(&m[0], 2, None, None))), (3, Err("no device matches \"x\"".to_owned()))];
    let err = f.store.book_rollout("wave-1", &rows, true, ACTOR, 10, "wave.csv").expect_err("unknown machine");
    assert_eq!(err.to_string(), "line 3: no device matches \"x\"; nothing from the file was applied");
    assert_eq!(f.written(), before);

    let rows: Vec<WaveRow> = vec![(2, Ok(row(&m[0], 2, None, None))), (3, Ok(row(&m[1], 3, None, None)))];
    let booked = f.store.book_rollout("wave-1", &rows, true, ACTOR, 10, "wave.csv").expect("good wave");
    assert_eq!(booked.len(), 2);
    assert_eq!(f.written(), (before.0 + 2, before.1 + 2), "one audit event per booking");
    let last = f.store.audit_entry(before.1 + 1).expect("read").expect("exists");
    let event = AuditEvent::from_bytes(&last.bytes).expect("decodes");
    assert_eq!(event.details["line"], "3");
    assert_eq!(event.details["source"], "wave.csv");
}

#[test]
fn cancel_and_confirm_are_audited() {
    let f = fixture(3);
    let m = &f.machines;
    let mut req = row(&m[0], 2, None, Some("bob"));
    req.replaces = Some(mref(&m[2]));
    f.book(req).expect("booked");
    f.book(row(&m[1], 2, None, None)).expect("booked");
    let (_, events) = f.written();

    let cancelled = f.store.cancel_rollout_booking(m[1].device_id, "AT-1", ACTOR, 20, "moved to wave 2").expect("ok");
    assert_eq!(cancelled.device_id, m[1].device_id);
    assert_eq!(f.written(), (1, events + 1));
    let err = f.store.cancel_rollout_booking(m[1].device_id, "AT-1", ACTOR, 20, "again").expect_err("not booked");
    assert_eq!(err.to_string(), "machine AT-1 is not booked in any rollout");

    let confirmed = f.store.confirm_rollout_deployed(m[0].device_id, ACTOR, 30).expect("ok").expect("recorded");
    assert_eq!(confirmed.deployed_at_ms, Some(30));
    assert_eq!(f.written(), (1, events + 2));
    assert_eq!(f.store.confirm_rollout_deployed(m[0].device_id, ACTOR, 31).expect("ok"), None, "once only");
    assert_eq!(f.store.confirm_rollout_deployed(m[1].device_id, ACTOR, 31).expect("ok"), None, "not booked");
    let err = f.store.cancel_rollout_booking(m[0].device_id, "AT-0", ACTOR, 40, "no").expect_err("deployed");
    assert_eq!(err.to_string(), "machine AT-0 is already deployed by plan wave-1; its booking cannot be cancelled");
    // Not on the to-collect list until retired: collecting it now would
    // keep it off that list for good.
    let err = f.store.mark_rollout_collected(m[2].device_id, "AT-2", ACTOR, 45, None).expect_err("not retired");
    assert!(err.to_string().starts_with("machine AT-2 has not been retired by its replacement yet"), "{err}");
    assert_eq!(f.written(), (1, events + 2), "nothing written");
    let retired = f.store.record_rollout_replaced_retired(m[0].device_id, ACTOR, 50).expect("ok").expect("recorded");
    assert_eq!(retired.replaced_retired_at_ms, Some(50));
    assert_eq!(f.written(), (1, events + 3));

    let err = f.store.mark_rollout_collected(m[1].device_id, "AT-1", ACTOR, 60, None).expect_err("not replaced");
    assert_eq!(err.to_string(), "machine AT-1 is not being replaced by any rollout booking");
    let collected = f.store.mark_rollout_collected(m[2].device_id, "AT-2", ACTOR, 60, Some("IT store")).expect("ok");
    assert_eq!(collected.replaced_collected_at_ms, Some(60));
    assert_eq!(f.written(), (1, events + 4));
    let event = f.store.device_events(m[2].device_id).expect("history").remove(0);
    let event = AuditEvent::from_bytes(&event.bytes).expect("decodes");
    assert_eq!((event.details["action"].as_str(), event.reason.as_deref()), ("replaced_collected", Some("IT store")));
    let err = f.store.mark_rollout_collected(m[2].device_id, "AT-2", ACTOR, 61, None).expect_err("twice");
    assert_eq!(err.to_string(), "machine AT-2 was already marked collected");
    assert_eq!(f.written(), (1, events + 4));
}
