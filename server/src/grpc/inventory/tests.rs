//! Tests for the list filters.

use super::*;

fn summary(last_seen_ms: i64, state: &str) -> pb::DeviceSummary {
    pb::DeviceSummary {
        enrolled_at_ms: 1,
        last_seen_ms,
        encryption_compliance: Some(pb::ComplianceVerdict { state: state.to_owned(), ..Default::default() }),
        ..Default::default()
    }
}

#[test]
fn filters_combine() {
    let now = 100 * DAY_MS;
    #[track_caller]
    fn check(summary: &pb::DeviceSummary, stale_days: u32, noncompliant: bool, now: i64, expect: bool) {
        assert_eq!(
            passes(summary, &pb::ListDevicesRequest { stale_days, noncompliant, ..Default::default() }, now),
            expect
        );
    }
    let fresh_compliant = summary(now - DAY_MS / 2, "compliant");
    let old_noncompliant = summary(now - 10 * DAY_MS, "noncompliant");
    let never_seen_unknown = summary(0, "unknown");
    check(&fresh_compliant, 0, false, now, true);
    check(&fresh_compliant, 1, false, now, false);
    check(&fresh_compliant, 0, true, now, false);
    check(&old_noncompliant, 7, true, now, true);
    check(&old_noncompliant, 11, false, now, false);
    // Never reported: stale since enrolment, and unknown is not compliant.
    check(&never_seen_unknown, 90, true, now, true);
}
