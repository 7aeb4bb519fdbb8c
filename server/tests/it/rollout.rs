//! End-to-end test of issue 6 (rollout scheduling) against the real
//! `custodian-server` and `custodianctl` binaries: a plan, a booking and its
//! refusals, a bad wave, the run sheet, the machine enrolling and reporting
//! compliant, the engineer confirming it deployed, the old machine retired
//! onto the to-collect list, progress, and exports (the iCalendar file read
//! back by Python's `icalendar`).

use std::process::Command;

use custodian_proto::v1 as pb;
use custodian_server::rollout::format_date;
use serde_json::Value;

use super::{Machine, TestServer, fails, inventory, ok};

fn json(out: String) -> Value {
    serde_json::from_str(&out).unwrap()
}

fn n_bookings(server: &TestServer) -> usize {
    let shown = json(ok(server.ctl("sam", &["rollout", "show", "wave-1", "--json"])));
    shown["bookings"].as_array().unwrap().len()
}

fn n_events(server: &TestServer, query: &str) -> usize {
    ok(server.ctl("admin", &["device", "history", query, "--json"])).lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booked_machine_enrols_is_confirmed_deployed_and_retires_the_one_it_replaces() {
    let server = TestServer::start(1000);
    let dir = server.dir.path();
    for (name, role) in [("eve", "engineer"), ("sam", "service-desk")] {
        ok(server.ctl(
            "admin",
            &["operator", "issue", "--name", name, "--role", role, "--out", dir.join(name).to_str().unwrap()],
        ));
    }
    let today = time::OffsetDateTime::now_utc().date();
    let day = |offset: i64| format_date(today + time::Duration::days(offset));

    // The register: a new machine, a spare, and the old machine in use.
    for (serial, tag) in [("SN-NEW", "AT-NEW"), ("SN-SPARE", "AT-SPARE"), ("SN-OLD", "AT-OLD")] {
        ok(server.ctl(
            "eve",
            &["device", "add", "--serial", serial, "--asset-tag", tag, "--model", "OptiPlex", "--state", "in_stock"],
        ));
    }
    ok(server.ctl("eve", &["device", "transition", "AT-OLD", "staged", "--reason", "imaged in 2019"]));
    ok(server.ctl(
        "eve",
        &["device", "transition", "AT-OLD", "deployed", "--reason", "legacy", "--override", "pre-dates Custodian"],
    ));

    // A plan; the service desk may read but not plan.
    let out = fails(server.ctl("sam", &["rollout", "create", "wave-1", "--start", &day(-1), "--end", &day(30)]));
    assert!(out.contains("needs one of: engineer, admin"), "{out}");
    let created = ok(server.ctl(
        "eve",
        &["rollout", "create", "wave-1", "--start", &day(-1), "--end", &day(30), "--engineer-capacity", "5"],
    ));
    assert!(created.contains("created plan wave-1"), "{created}");
    ok(server.ctl("eve", &["rollout", "site", "wave-1", "St Mary's", "--capacity", "1"]));
    let site =
        ok(server.ctl("eve", &["rollout", "site", "wave-1", "St Mary's", "--ward", "Ward 7", "--capacity", "1"]));
    assert!(site.contains("ward Ward 7: 1 a day"), "{site}");

    // Book the new machine to replace the old one.
    let booked = ok(server.ctl(
        "eve",
        &[
            "rollout",
            "book",
            "wave-1",
            "--device",
            "AT-NEW",
            "--date",
            &day(0),
            "--site",
            "St Mary's",
            "--ward",
            "Ward 7",
            "--engineer",
            "bob",
            "--replaces",
            "AT-OLD",
        ],
    ));
    assert!(booked.contains("booked asset tag AT-NEW") && booked.contains("replacing asset tag AT-OLD"), "{booked}");
    assert_eq!(n_bookings(&server), 1);

    // Refusals, each with its reason, and nothing written.
    let spare_events = n_events(&server, "AT-SPARE");
    let book = |device: &str, date: &str| {
        fails(
            server
                .ctl("eve", &["rollout", "book", "wave-1", "--device", device, "--date", date, "--site", "St Mary's"]),
        )
    };
    let out = book("AT-SPARE", &day(0));
    assert!(out.contains("slot over capacity: St Mary's takes 1 machines a day"), "{out}");
    let out = book("AT-SPARE", &day(40));
    assert!(out.contains(&format!("{} is outside plan wave-1", day(40))), "{out}");
    let out = book("AT-OLD", &day(1));
    assert!(out.contains("machine AT-OLD is deployed; only machines in staged or in_stock can be booked"), "{out}");
    let out = book("AT-NEW", &day(1));
    assert!(out.contains("machine AT-NEW is already booked in plan wave-1"), "{out}");
    let out =
        fails(server.ctl(
            "sam",
            &["rollout", "book", "wave-1", "--device", "AT-SPARE", "--date", &day(1), "--site", "St Mary's"],
        ));
    assert!(out.contains("needs one of: engineer, admin"), "{out}");
    // A wave with one bad row applies nothing.
    let wave = dir.join("wave.csv");
    std::fs::write(&wave, format!("device,date,site\nAT-SPARE,{},St Mary's\nAT-GHOST,{},St Mary's\n", day(1), day(2)))
        .unwrap();
    let out = fails(server.ctl("eve", &["rollout", "import", "wave-1", wave.to_str().unwrap()]));
    assert!(out.contains("line 3: no device matches \"AT-GHOST\""), "{out}");
    assert!(out.contains("nothing from the file was applied"), "{out}");
    assert_eq!(n_bookings(&server), 1);
    assert_eq!(n_events(&server, "AT-SPARE"), spare_events);

    // The run sheet: where to go, what to install and replace, readiness.
    let sheet = ok(server.ctl("sam", &["rollout", "today", "--engineer", "bob"]));
    for expect in [
        "engineer bob",
        "go to St Mary's / Ward 7",
        "install asset tag AT-NEW, serial SN-NEW",
        "NOT ENROLLED; no report yet; never reported",
        "replaces asset tag AT-OLD, serial SN-OLD (deployed)",
    ] {
        assert!(sheet.contains(expect), "{expect:?} not in:\n{sheet}");
    }
    assert!(ok(server.ctl("sam", &["rollout", "today", "--engineer", "carol"])).contains("nothing booked"));
    // Not enrolled and, as of tomorrow, overdue.
    let status = json(ok(server.ctl("sam", &["rollout", "status", "wave-1", "--as-of", &day(1), "--json"])));
    assert_eq!(status["total"]["booked"], 1);
    assert_eq!(status["total"]["overdue"], 1, "{status}");
    assert_eq!(status["total"]["not_enrolled"], 1, "{status}");
    assert_eq!(status["by_site"]["St Mary's"]["overdue"], 1, "{status}");

    // The machine enrols and reports compliant.
    let token = ok(server.ctl("eve", &["token", "create", "--asset-tag", "AT-NEW"])).trim().to_owned();
    let mut machine = Machine::enroll(&server, &token, "stmarys-w7-01", "SN-NEW").await.unwrap();
    let compliant = inventory("stmarys-w7-01", "SN-NEW", true);
    let res = machine.report(&server, compliant.clone()).await.unwrap();
    assert_eq!(res.outcome(), pb::Outcome::Accepted, "{}", res.detail);
    let sheet = ok(server.ctl("eve", &["rollout", "today"]));
    assert!(sheet.contains("ready: enrolled; encryption compliant; last report"), "{sheet}");
    // Its next check-in is a heartbeat (the inventory is unchanged), which
    // carries no inventory: readiness still comes from the latest one.
    let res = machine.heartbeat(&server, &compliant).await.unwrap();
    assert_eq!((res.outcome(), res.send_full_inventory), (pb::Outcome::Accepted, false), "{}", res.detail);
    let sheet = ok(server.ctl("eve", &["rollout", "today"]));
    assert!(sheet.contains("ready: enrolled; encryption compliant; last report"), "{sheet}");
    let status = json(ok(server.ctl("sam", &["rollout", "status", "wave-1", "--as-of", &day(1), "--json"])));
    assert_eq!(status["total"]["overdue"], 0, "reported since its slot date: {status}");
    assert!(ok(server.ctl("eve", &["rollout", "to-collect"])).contains("nothing to collect"));

    // The engineer confirms it deployed: the slot records it, and the old
    // machine is retired with the rollout as the reason.
    ok(server.ctl("eve", &["device", "transition", "AT-NEW", "deployed", "--reason", "installed by bob"]));
    let shown = json(ok(server.ctl("sam", &["rollout", "show", "wave-1", "--json"])));
    let booking = &shown["bookings"][0];
    assert_ne!(booking["deployed_at_ms"], 0, "{shown}");
    assert_ne!(booking["replaced_retired_at_ms"], 0, "{shown}");
    assert_eq!(booking["machine"]["state"], "deployed");
    assert_eq!(booking["replaces"]["state"], "retired");
    let new = json(ok(server.ctl("sam", &["device", "show", "AT-NEW", "--json"])));
    assert_eq!((new["site"].as_str(), new["ward"].as_str()), (Some("St Mary's"), Some("Ward 7")), "{new}");
    let old = json(ok(server.ctl("sam", &["device", "show", "AT-OLD", "--json"])));
    assert_eq!(old["state"], "retired", "{old}");
    let history = ok(server.ctl("admin", &["device", "history", "AT-OLD", "--json"]));
    assert!(history.contains("replaced by AT-NEW in rollout wave-1"), "{history}");
    let history = ok(server.ctl("admin", &["device", "history", "AT-NEW", "--json"]));
    assert!(history.contains("rollout_booking_changed") && history.contains("\"action\":\"deployed\""), "{history}");

    // On the to-collect list, for bob.
    let collect = ok(server.ctl("sam", &["rollout", "to-collect", "--engineer", "bob"]));
    assert!(collect.contains("collect asset tag AT-OLD, serial SN-OLD from St Mary's / Ward 7"), "{collect}");
    assert!(ok(server.ctl("sam", &["rollout", "to-collect", "--engineer", "carol"])).contains("nothing to collect"));
    let out = fails(server.ctl("sam", &["rollout", "collected", "AT-OLD"]));
    assert!(out.contains("needs one of: engineer, admin"), "{out}");
    let out = fails(server.ctl("eve", &["rollout", "collected", "AT-SPARE"]));
    assert!(out.contains("machine AT-SPARE is not being replaced by any rollout booking"), "{out}");
    let status = json(ok(server.ctl("sam", &["rollout", "status", "wave-1", "--json"])));
    assert_eq!(status["total"]["deployed"], 1, "{status}");
    assert_eq!(status["total"]["non_compliant"], 0, "{status}");
    // Its booking can no longer be cancelled.
    let out = fails(server.ctl("eve", &["rollout", "cancel", "AT-NEW", "--reason", "oops"]));
    assert!(out.contains("already deployed"), "{out}");

    // Collected: off the list, and recorded in the old machine's history.
    let collected = ok(server.ctl("eve", &["rollout", "collected", "AT-OLD", "--note", "to the IT store"]));
    assert!(collected.contains("collected asset tag AT-OLD"), "{collected}");
    assert!(ok(server.ctl("sam", &["rollout", "to-collect"])).contains("nothing to collect"));
    let out = fails(server.ctl("eve", &["rollout", "collected", "AT-OLD"]));
    assert!(out.contains("already marked collected"), "{out}");
    let history = ok(server.ctl("admin", &["device", "history", "AT-OLD", "--json"]));
    assert!(history.contains("replaced_collected") && history.contains("to the IT store"), "{history}");

    // Exports: CSV, and iCalendar read back by a real parser.
    let csv = dir.join("plan.csv");
    ok(server.ctl("sam", &["rollout", "export", "wave-1", "--format", "csv", "--out", csv.to_str().unwrap()]));
    let csv = std::fs::read_to_string(csv).unwrap();
    assert!(csv.lines().nth(1).unwrap().contains("AT-NEW,SN-NEW,stmarys-w7-01"), "{csv}");
    let ics = dir.join("plan.ics");
    ok(server.ctl("sam", &["rollout", "export", "wave-1", "--format", "ical", "--out", ics.to_str().unwrap()]));
    let script = r#"
import sys, icalendar
cal = icalendar.Calendar.from_ical(open(sys.argv[1], 'rb').read())
for ev in cal.walk('VEVENT'):
    print('|'.join([ev['DTSTART'].dt.isoformat(), str(ev['LOCATION']), str(ev['DESCRIPTION'])]))
"#;
    let out = Command::new("python3").arg("-c").arg(script).arg(&ics).output().unwrap();
    assert!(out.status.success(), "python icalendar: {}", String::from_utf8_lossy(&out.stderr));
    let events = String::from_utf8(out.stdout).unwrap();
    let events: Vec<&str> = events.lines().collect();
    assert_eq!(events.len(), 1, "one event per slot: {events:?}");
    assert!(events[0].starts_with(&format!("{}|St Mary's / Ward 7|asset tag AT-NEW", day(0))), "{events:?}");
    assert!(events[0].contains("replaces asset tag AT-OLD"), "{events:?}");

    // The audit trail, rollout events included, still verifies offline.
    let export = dir.join("audit");
    ok(server.ctl("admin", &["audit", "export", "--out", export.to_str().unwrap()]));
    let verified = ok(server.offline(&["audit", "verify", export.to_str().unwrap()]));
    assert!(!verified.contains("FAIL"), "{verified}");
}

/// A deployment whose replaced machine cannot be retired (it was reported
/// lost after the booking) still goes through, but the engineer is told
/// that machine is not on the to-collect list, rather than it dropping out
/// of every view with only a line in the server's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_machine_that_cannot_be_retired_is_reported_to_the_engineer() {
    let server = TestServer::start(1000);
    let eve = server.dir.path().join("eve");
    ok(server
        .ctl("admin", &["operator", "issue", "--name", "eve", "--role", "engineer", "--out", eve.to_str().unwrap()]));
    let today = time::OffsetDateTime::now_utc().date();
    let day = |offset: i64| format_date(today + time::Duration::days(offset));
    for (serial, tag) in [("SN-NEW", "AT-NEW"), ("SN-OLD", "AT-OLD")] {
        ok(server.ctl(
            "eve",
            &["device", "add", "--serial", serial, "--asset-tag", tag, "--model", "OptiPlex", "--state", "in_stock"],
        ));
    }
    ok(server.ctl("eve", &["device", "transition", "AT-OLD", "staged", "--reason", "imaged"]));
    ok(server.ctl("eve", &["device", "transition", "AT-OLD", "deployed", "--reason", "legacy", "--override", "old"]));
    ok(server.ctl("eve", &["rollout", "create", "wave-2", "--start", &day(-1), "--end", &day(30)]));
    ok(server.ctl("eve", &["rollout", "site", "wave-2", "RVI", "--capacity", "5"]));
    ok(server.ctl(
        "eve",
        &[
            "rollout",
            "book",
            "wave-2",
            "--device",
            "AT-NEW",
            "--date",
            &day(0),
            "--site",
            "RVI",
            "--replaces",
            "AT-OLD",
        ],
    ));
    ok(server.ctl("eve", &["device", "transition", "AT-OLD", "lost", "--reason", "not found on the ward"]));
    ok(server.ctl("eve", &["device", "transition", "AT-NEW", "staged", "--reason", "imaged"]));

    let out = server
        .ctl("eve", &["device", "transition", "AT-NEW", "deployed", "--reason", "installed", "--override", "test"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = ok(out);
    assert!(stdout.contains("is now deployed"), "the deployment itself is written: {stdout}");
    for needle in ["WARNING", "rollout wave-2, AT-OLD, was NOT retired", "not on the to-collect list", "lost"] {
        assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
    }
    let old = json(ok(server.ctl("eve", &["device", "show", "AT-OLD", "--json"])));
    assert_eq!(old["state"], "lost", "{old}");
}
