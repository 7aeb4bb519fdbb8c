//! Tests of booking validation, waves, the CSV and iCalendar exports, the run
//! sheet and plan status.

use std::collections::BTreeMap;

use custodian_proto::identity::DeviceId;
use time::macros::{date, datetime};

use super::csv::{export_csv, parse_wave};
use super::ical::{escape_text, export_ical};
use super::runsheet::{MachineFacts, run_sheet, to_collect};
use super::status::plan_status;
use super::*;
use crate::compliance::Compliance;

fn plan() -> Plan {
    let mut sites = BTreeMap::new();
    sites.insert(
        "St Mary's".to_owned(),
        SiteCapacity { daily: 3, wards: BTreeMap::from([("Ward 1".to_owned(), 2), ("Ward 2".to_owned(), 5)]) },
    );
    sites.insert("Annex".to_owned(), SiteCapacity { daily: 10, wards: BTreeMap::new() });
    Plan {
        name: "wave-1".to_owned(),
        start: date!(2026 - 12 - 01),
        end: date!(2026 - 12 - 31),
        engineer_capacity: 4,
        sites,
        created_by: "alice (engineer)".to_owned(),
        created_at_ms: 0,
    }
}

fn id(n: u8) -> DeviceId {
    DeviceId::from_bytes([n; 16])
}

fn machine(n: u8, state: LifecycleState) -> MachineRef {
    MachineRef { device_id: id(n), label: format!("AT{n:03}"), state }
}

fn req(n: u8, date: Date, site: &str, ward: Option<&str>, engineer: Option<&str>) -> BookingRequest {
    BookingRequest {
        machine: machine(n, LifecycleState::Staged),
        date,
        site: site.to_owned(),
        ward: ward.map(str::to_owned),
        engineer: engineer.map(str::to_owned),
        replaces: None,
    }
}

/// Books every request in turn, panicking on a refusal.
fn book_all(reqs: &[BookingRequest]) -> Vec<Booking> {
    let plan = plan();
    let mut bookings = Vec::new();
    for r in reqs {
        let booking = check_booking(&plan, &bookings, r, "alice (engineer)", 1).expect("booking accepted");
        bookings.push(booking);
    }
    bookings
}

#[track_caller]
fn check_refused(existing: &[Booking], r: &BookingRequest, expect: &str) {
    let err = check_booking(&plan(), existing, r, "alice (engineer)", 1).expect_err("booking must be refused");
    assert_eq!(err.to_string(), expect);
}

#[test]
fn a_booking_in_range_with_room_is_accepted() {
    let b = book_all(&[req(1, date!(2026 - 12 - 02), "St Mary's", Some("Ward 1"), Some("bob"))]);
    assert_eq!(b[0].device_id, id(1));
    assert_eq!(b[0].plan, "wave-1");
    assert_eq!(b[0].ward.as_deref(), Some("Ward 1"));
    assert_eq!(b[0].deployed_at_ms, None);
}

#[test]
fn dates_outside_the_plan_are_refused() {
    check_refused(
        &[],
        &req(1, date!(2026 - 11 - 30), "Annex", None, None),
        "2026-11-30 is outside plan wave-1, which runs from 2026-12-01 to 2026-12-31",
    );
    check_refused(
        &[],
        &req(1, date!(2027 - 01 - 01), "Annex", None, None),
        "2027-01-01 is outside plan wave-1, which runs from 2026-12-01 to 2026-12-31",
    );
    // Both ends are inside.
    book_all(&[req(1, date!(2026 - 12 - 01), "Annex", None, None), req(2, date!(2026 - 12 - 31), "Annex", None, None)]);
}

#[test]
fn unknown_sites_and_wards_are_refused_naming_the_known_ones() {
    check_refused(
        &[],
        &req(1, date!(2026 - 12 - 02), "Elsewhere", None, None),
        "site \"Elsewhere\" is not in plan wave-1; add it with `rollout site` (sites: Annex, St Mary's)",
    );
    check_refused(
        &[],
        &req(1, date!(2026 - 12 - 02), "St Mary's", Some("Ward 9"), None),
        "ward \"Ward 9\" is not a ward of site St Mary's in this plan; add it with `rollout site --ward` (wards: Ward 1, Ward 2)",
    );
}

#[test]
fn only_staged_or_in_stock_machines_can_be_booked() {
    for state in LifecycleState::ALL {
        let mut r = req(1, date!(2026 - 12 - 02), "Annex", None, None);
        r.machine.state = state;
        let res = check_booking(&plan(), &[], &r, "a", 1);
        match state {
            LifecycleState::Staged | LifecycleState::InStock => assert!(res.is_ok(), "{state}: {res:?}"),
            _ => assert_eq!(
                res.expect_err("wrong state").to_string(),
                format!("machine AT001 is {state}; only machines in staged or in_stock can be booked")
            ),
        }
    }
}

#[test]
fn a_machine_booked_elsewhere_is_refused() {
    let existing = book_all(&[req(1, date!(2026 - 12 - 02), "Annex", None, None)]);
    check_refused(
        &existing,
        &req(1, date!(2026 - 12 - 03), "St Mary's", None, None),
        "machine AT001 is already booked in plan wave-1 on 2026-12-02 at Annex; cancel that booking first",
    );
}

#[test]
fn site_capacity_counts_every_ward() {
    let day = date!(2026 - 12 - 02);
    let existing = book_all(&[
        req(1, day, "St Mary's", Some("Ward 1"), None),
        req(2, day, "St Mary's", Some("Ward 2"), None),
        req(3, day, "St Mary's", None, None),
    ]);
    check_refused(
        &existing,
        &req(4, day, "St Mary's", Some("Ward 2"), None),
        "slot over capacity: St Mary's takes 3 machines a day and 2026-12-02 is fully booked",
    );
    // Another day has room.
    let mut all = existing.clone();
    all.push(
        check_booking(&plan(), &existing, &req(4, date!(2026 - 12 - 03), "St Mary's", None, None), "a", 1).unwrap(),
    );
}

#[test]
fn ward_capacity_is_checked_on_its_own() {
    let day = date!(2026 - 12 - 02);
    let existing =
        book_all(&[req(1, day, "St Mary's", Some("Ward 1"), None), req(2, day, "St Mary's", Some("Ward 1"), None)]);
    check_refused(
        &existing,
        &req(3, day, "St Mary's", Some("Ward 1"), None),
        "slot over capacity: St Mary's / Ward 1 takes 2 machines a day and 2026-12-02 is fully booked",
    );
    check_booking(&plan(), &existing, &req(3, day, "St Mary's", Some("Ward 2"), None), "a", 1)
        .expect("ward 2 has room");
}

#[test]
fn an_engineer_beyond_their_daily_capacity_is_refused_across_sites() {
    let day = date!(2026 - 12 - 02);
    let existing = book_all(&[
        req(1, day, "Annex", None, Some("bob")),
        req(2, day, "Annex", None, Some("bob")),
        req(3, day, "St Mary's", None, Some("bob")),
        req(4, day, "Annex", None, Some("bob")),
    ]);
    check_refused(
        &existing,
        &req(5, day, "Annex", None, Some("bob")),
        "engineer bob is double-booked: already 4 machines on 2026-12-02, and installs at most 4 a day",
    );
    check_booking(&plan(), &existing, &req(5, day, "Annex", None, Some("carol")), "a", 1).expect("carol is free");
}

#[test]
fn replacements_are_checked() {
    let day = date!(2026 - 12 - 02);
    let mut r = req(1, day, "Annex", None, None);
    r.replaces = Some(machine(1, LifecycleState::Deployed));
    check_refused(&[], &r, "machine AT001 cannot replace itself");

    r.replaces = Some(machine(9, LifecycleState::Disposed));
    check_refused(&[], &r, "machine AT009 is disposed and cannot be retired, so it cannot be replaced");

    r.replaces = Some(machine(9, LifecycleState::Deployed));
    let first = check_booking(&plan(), &[], &r, "a", 1).expect("replacement accepted");
    assert_eq!(first.replaces, Some(id(9)));
    let mut second = req(2, day, "Annex", None, None);
    second.replaces = Some(machine(9, LifecycleState::Deployed));
    check_refused(
        &[first],
        &second,
        &format!("machine AT009 is already being replaced by machine {} in plan wave-1", id(1)),
    );
}

#[test]
fn a_wave_with_one_bad_row_is_refused_with_its_line() {
    let day = date!(2026 - 12 - 02);
    let rows: Vec<WaveRow> = vec![
        (2, Ok(req(1, day, "Annex", None, None))),
        (3, Ok(req(2, day, "Annex", None, None))),
        (4, Ok(req(1, day, "Annex", None, None))),
        (5, Ok(req(3, day, "Annex", None, None))),
    ];
    let err = check_wave(&plan(), &[], &rows, "a", 1).expect_err("duplicate row");
    assert_eq!(err.line, 4);
    assert_eq!(
        err.to_string(),
        "line 4: machine AT001 is already booked in plan wave-1 on 2026-12-02 at Annex; cancel that booking first; \
         nothing from the file was applied"
    );
    let rows: Vec<WaveRow> =
        vec![(2, Ok(req(1, day, "Annex", None, None))), (3, Err("no device matches \"x\"".into()))];
    assert_eq!(check_wave(&plan(), &[], &rows, "a", 1).expect_err("unknown device").line, 3);
    let rows: Vec<WaveRow> = vec![(2, Ok(req(1, day, "Annex", None, None))), (3, Ok(req(2, day, "Annex", None, None)))];
    assert_eq!(check_wave(&plan(), &[], &rows, "a", 1).expect("good wave").len(), 2);
}

#[test]
fn a_wave_counts_capacity_within_the_file() {
    let day = date!(2026 - 12 - 02);
    let rows: Vec<WaveRow> =
        (1..=4).map(|n| (u64::from(n) + 1, Ok(req(n, day, "St Mary's", Some("Ward 2"), None)))).collect();
    let err = check_wave(&plan(), &[], &rows, "a", 1).expect_err("site holds 3");
    assert_eq!(err.line, 5);
    assert!(err.reason.starts_with("slot over capacity: St Mary's takes 3"), "{err}");
}

#[test]
fn wave_csv_parses_with_line_numbers() {
    let text = "device,date,site,ward,engineer,replaces\n\
                AT001,2026-12-02,Annex,,bob,OLD1\n\
                \"AT002\",2026-12-03,\"St Mary's\",Ward 1,,\n";
    let rows = parse_wave(text.as_bytes()).expect("parses");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].line, 2);
    assert_eq!(rows[0].device, "AT001");
    assert_eq!(rows[0].engineer.as_deref(), Some("bob"));
    assert_eq!(rows[0].ward, None);
    assert_eq!(rows[0].replaces.as_deref(), Some("OLD1"));
    assert_eq!(rows[1].line, 3);
    assert_eq!(rows[1].site, "St Mary's");
    assert_eq!(rows[1].ward.as_deref(), Some("Ward 1"));
    assert_eq!(rows[1].replaces, None);
}

#[track_caller]
fn check_wave_csv_error(text: &str, line: u64, reason_starts: &str) {
    let err = parse_wave(text.as_bytes()).expect_err("must be refused");
    assert_eq!(err.line, line, "{err}");
    assert!(err.reason.starts_with(reason_starts), "{err}");
}

#[test]
fn bad_wave_csv_is_refused_with_the_line() {
    check_wave_csv_error("device,date\nAT1,2026-12-02\n", 1, "the header has no \"site\" column");
    check_wave_csv_error("device,date,site,colour\n", 1, "unknown column \"colour\"");
    check_wave_csv_error("device,date,site\nAT1,2026-12-02,A\nAT2,2026-13-02,A\n", 3, "\"2026-13-02\" is not a date");
    check_wave_csv_error("device,date,site\nAT1,2026-12-02,A\n,2026-12-02,A\n", 3, "the device column is empty");
    check_wave_csv_error("device,date,site\nAT1,2026-12-02,A\nAT2,2026-12-02,\n", 3, "site must not be empty");
    check_wave_csv_error("device,date,site\nAT1,2026-12-02,A\nAT2,2026-12-02\n", 3, "the row does not parse");
}

fn facts(n: u8, state: LifecycleState) -> MachineFacts {
    MachineFacts {
        device_id: id(n),
        hostname: format!("ws{n:03}"),
        serial: Some(format!("SN{n:03}")),
        asset_tag: Some(format!("AT{n:03}")),
        state,
        enrolled: true,
        last_seen_ms: None,
        compliance: Some(Compliance::Compliant),
    }
}

#[test]
fn the_csv_export_imports_again() {
    let day = date!(2026 - 12 - 02);
    let mut r = req(1, day, "St Mary's", Some("Ward 1"), Some("bob"));
    r.replaces = Some(machine(9, LifecycleState::Deployed));
    let bookings = book_all(&[r, req(2, day, "Annex", None, None)]);
    let all: BTreeMap<_, _> =
        [facts(1, LifecycleState::Staged), facts(2, LifecycleState::Staged), facts(9, LifecycleState::Deployed)]
            .into_iter()
            .map(|f| (f.device_id, f))
            .collect();
    let text = export_csv(&bookings, &all);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "plan,date,site,ward,engineer,device,asset_tag,serial,hostname,replaces,deployed_at,replaced_retired_at,\
             replaced_collected_at"
        )
    );
    assert_eq!(lines.next(), Some(format!("wave-1,2026-12-02,Annex,,,{},AT002,SN002,ws002,,,,", id(2)).as_str()));
    let rows = parse_wave(text.as_bytes()).expect("export re-imports");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].device, id(1).to_string());
    assert_eq!(rows[1].replaces, Some(id(9).to_string()));
    assert_eq!(rows[1].site, "St Mary's");
}

#[test]
fn a_hostname_a_machine_reported_cannot_become_a_formula_in_the_export() {
    let day = date!(2026 - 12 - 02);
    let bookings = book_all(&[req(1, day, "St Mary's", None, None)]);
    let mut hostile = facts(1, LifecycleState::Staged);
    hostile.hostname = "=HYPERLINK(\"http://evil\",\"x\")".to_owned();
    let all: BTreeMap<_, _> = [(hostile.device_id, hostile)].into_iter().collect();
    let text = export_csv(&bookings, &all);
    assert!(text.contains(",\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\","), "{text}");
}

#[test]
fn ical_text_is_escaped() {
    assert_eq!(escape_text("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
}

fn ical_fixture() -> String {
    let day = date!(2026 - 12 - 02);
    let mut r = req(1, day, "St Mary's; Main, Block", Some("Ward 1"), Some("bob"));
    r.replaces = Some(machine(9, LifecycleState::Deployed));
    let mut plan = plan();
    plan.sites.insert(
        "St Mary's; Main, Block".to_owned(),
        SiteCapacity { daily: 5, wards: BTreeMap::from([("Ward 1".to_owned(), 5)]) },
    );
    let mut bookings = Vec::new();
    let mut reqs = vec![r, req(2, day, "St Mary's; Main, Block", Some("Ward 1"), Some("bob"))];
    reqs.push(req(3, date!(2026 - 12 - 03), "Annex", None, None));
    // Long enough to fold, with multi-byte characters.
    reqs.push(req(4, date!(2026 - 12 - 03), "Annex", None, Some("Zoë Ångström-Øresund the very long-named engineer")));
    for r in &reqs {
        bookings.push(check_booking(&plan, &bookings, r, "a", 1).expect("accepted"));
    }
    let all: BTreeMap<_, _> = [1, 2, 3, 4, 9].into_iter().map(|n| (id(n), facts(n, LifecycleState::Staged))).collect();
    export_ical(&plan, &bookings, &all, datetime!(2026-11-21 05:30:00 UTC))
}

#[test]
fn ical_lines_end_in_crlf_and_fold_at_75_octets() {
    let text = ical_fixture();
    assert!(text.ends_with("END:VCALENDAR\r\n"));
    assert!(!text.replace("\r\n", "").contains('\n'), "bare LF in output");
    let mut folded = 0;
    for line in text.split("\r\n") {
        assert!(line.len() <= 75, "line longer than 75 octets: {line:?}");
        folded += usize::from(line.starts_with(' '));
    }
    assert!(folded > 0, "the fixture must exercise folding");
    assert_eq!(text.matches("BEGIN:VEVENT\r\n").count(), 3, "one event per slot");
    assert!(text.contains("DTSTART;VALUE=DATE:20261202\r\n"));
    assert!(text.contains("DTEND;VALUE=DATE:20261203\r\n"));
    assert!(text.contains("DTSTAMP:20261121T053000Z\r\n"));
    assert!(text.contains("LOCATION:St Mary's\\; Main\\, Block / Ward 1\r\n"));
}

/// Parses the export with Python's `icalendar` (CI installs it:
/// `pip install icalendar`) and checks every slot is an event.
#[test]
fn ical_export_parses_with_python_icalendar() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("plan.ics");
    std::fs::write(&path, ical_fixture()).expect("write");
    let script = r#"
import sys, icalendar
cal = icalendar.Calendar.from_ical(open(sys.argv[1], 'rb').read())
for ev in cal.walk('VEVENT'):
    print('|'.join([str(ev['UID']), ev['DTSTART'].dt.isoformat(), str(ev['LOCATION']), str(ev['SUMMARY']),
                    str(ev['DESCRIPTION']).replace('\n', '//')]))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("run python3 (CI must have python3 with `pip install icalendar`)");
    assert!(out.status.success(), "python icalendar refused the file: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let events: Vec<Vec<&str>> = stdout.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(events.len(), 3, "{stdout}");
    assert_eq!(events[0][1], "2026-12-02");
    assert_eq!(events[0][2], "St Mary's; Main, Block / Ward 1");
    assert_eq!(events[0][3], "Rollout wave-1: install 2 machines at St Mary's; Main, Block / Ward 1 (bob)");
    assert_eq!(
        events[0][4],
        "asset tag AT001 serial SN001 hostname ws001, replaces asset tag AT009 serial SN009 hostname ws009//\
         asset tag AT002 serial SN002 hostname ws002"
    );
    assert_eq!(
        events[2][3],
        "Rollout wave-1: install 1 machine at Annex (Zoë Ångström-Øresund the very long-named engineer)"
    );
    let uids: std::collections::BTreeSet<&str> = events.iter().map(|e| e[0]).collect();
    assert_eq!(uids.len(), 3, "UIDs are unique");
}

#[test]
fn the_run_sheet_groups_by_engineer_and_place() {
    let day = date!(2026 - 12 - 02);
    let mut r = req(1, day, "St Mary's", Some("Ward 1"), Some("bob"));
    r.replaces = Some(machine(9, LifecycleState::Deployed));
    let bookings = book_all(&[
        r,
        req(2, day, "Annex", None, Some("bob")),
        req(3, day, "Annex", None, Some("carol")),
        req(4, date!(2026 - 12 - 03), "Annex", None, Some("bob")),
    ]);
    let mut all: BTreeMap<_, _> =
        [1, 2, 3, 4, 9].into_iter().map(|n| (id(n), facts(n, LifecycleState::Staged))).collect();
    all.get_mut(&id(2)).unwrap().enrolled = false;
    let sheet = run_sheet(day, None, &bookings, &all);
    assert_eq!(sheet.len(), 2);
    assert_eq!(sheet[0].engineer.as_deref(), Some("bob"));
    let places: Vec<(&str, Option<&str>)> =
        sheet[0].stops.iter().map(|s| (s.site.as_str(), s.ward.as_deref())).collect();
    assert_eq!(places, [("Annex", None), ("St Mary's", Some("Ward 1"))]);
    assert!(!sheet[0].stops[0].machines[0].machine.is_ready());
    assert!(sheet[0].stops[1].machines[0].machine.is_ready());
    assert_eq!(sheet[0].stops[1].machines[0].replaces.as_ref().map(|m| m.label()), Some("AT009".to_owned()));
    let bob = run_sheet(day, Some("bob"), &bookings, &all);
    assert_eq!(bob.len(), 1);
    assert!(run_sheet(day, Some("dave"), &bookings, &all).is_empty());
}

#[test]
fn to_collect_lists_retired_replaced_machines_until_they_move_on() {
    let day = date!(2026 - 12 - 02);
    let mut r = req(1, day, "Annex", None, Some("bob"));
    r.replaces = Some(machine(9, LifecycleState::Deployed));
    let bookings = book_all(&[r]);
    let mut all: BTreeMap<_, _> = [1, 9].into_iter().map(|n| (id(n), facts(n, LifecycleState::Deployed))).collect();
    assert!(to_collect(None, &bookings, &all).is_empty(), "not retired yet");
    all.get_mut(&id(9)).unwrap().state = LifecycleState::Retired;
    let list = to_collect(Some("bob"), &bookings, &all);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].machine.device_id, id(9));
    assert_eq!(list[0].replaced_by, id(1));
    assert!(to_collect(Some("carol"), &bookings, &all).is_empty());
    let mut marked = bookings.clone();
    marked[0].replaced_collected_at_ms = Some(5);
    assert!(to_collect(None, &marked, &all).is_empty(), "marked collected");
    all.get_mut(&id(9)).unwrap().state = LifecycleState::Sanitised;
    assert!(to_collect(None, &bookings, &all).is_empty(), "moved on from retired");
}

#[test]
fn status_counts_deployed_overdue_unenrolled_and_noncompliant() {
    let bookings = book_all(&[
        req(1, date!(2026 - 12 - 02), "Annex", None, None),
        req(2, date!(2026 - 12 - 02), "Annex", None, None),
        req(3, date!(2026 - 12 - 03), "St Mary's", None, None),
        req(4, date!(2026 - 12 - 10), "St Mary's", None, None),
    ]);
    let mut all: BTreeMap<_, _> = [1, 2, 3, 4].into_iter().map(|n| (id(n), facts(n, LifecycleState::Staged))).collect();
    all.get_mut(&id(1)).unwrap().state = LifecycleState::Deployed;
    // Reported after its slot date started: not overdue.
    all.get_mut(&id(2)).unwrap().last_seen_ms = Some(date_start_ms(date!(2026 - 12 - 02)) + 1);
    all.get_mut(&id(2)).unwrap().compliance = Some(Compliance::NonCompliant { volumes: vec!["sda2 (sda)".into()] });
    // Reported only before its slot: overdue.
    all.get_mut(&id(3)).unwrap().last_seen_ms = Some(date_start_ms(date!(2026 - 12 - 03)) - 1);
    all.get_mut(&id(4)).unwrap().enrolled = false;
    all.get_mut(&id(4)).unwrap().compliance = None;
    let status = plan_status(&plan(), &bookings, &all, date!(2026 - 12 - 05));
    let total = status.total;
    assert_eq!((total.booked, total.deployed, total.overdue, total.not_enrolled, total.non_compliant), (4, 1, 1, 1, 1));
    assert_eq!(status.overdue, vec![id(3)]);
    assert_eq!(status.by_site["Annex"].booked, 2);
    assert_eq!(status.by_site["St Mary's"].overdue, 1);
    assert_eq!(status.by_day["2026-12-02"].deployed, 1);
    assert_eq!(status.by_day["2026-12-10"].not_enrolled, 1);
}

#[test]
fn names_are_checked() {
    assert_eq!(check_name("site", "  Annex "), Ok("Annex".to_owned()));
    assert_eq!(check_name("site", " "), Err(NameError::Empty { what: "site" }));
    assert_eq!(check_name("site", "a\u{7}b"), Err(NameError::Control { what: "site" }));
    assert_eq!(check_name("site", &"x".repeat(129)), Err(NameError::TooLong { what: "site" }));
    assert_eq!(check_optional_name("ward", ""), Ok(None));
}

#[test]
fn dates_round_trip() {
    assert_eq!(parse_date("2026-12-02"), Ok(date!(2026 - 12 - 02)));
    assert!(parse_date("02/12/2026").is_err());
    assert_eq!(format_date(date!(2026 - 01 - 05)), "2026-01-05");
    assert_eq!(date_of_ms(date_start_ms(date!(2026 - 12 - 02)) + 5), date!(2026 - 12 - 02));
}
