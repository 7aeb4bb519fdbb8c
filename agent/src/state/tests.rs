//! Tests for the agent's state records.

use super::*;

#[test]
fn renewal_is_due_when_a_third_of_the_lifetime_is_left() {
    let enrollment = Enrollment {
        server: "https://127.0.0.1:1".to_owned(),
        device_id: DeviceId::from_bytes([1; 16]),
        cert_issued_at_ms: 0,
        cert_not_after_ms: 30_000,
    };
    assert!(!enrollment.needs_renewal(0));
    assert!(!enrollment.needs_renewal(19_999));
    assert!(enrollment.needs_renewal(20_000));
    assert!(enrollment.needs_renewal(40_000), "an expired certificate is due too");
}

#[test]
fn an_unenrolled_state_dir_says_how_to_enrol() {
    let dir = tempfile::tempdir().unwrap();
    let err = StateDir::new(dir.path()).load_enrollment().unwrap_err();
    assert!(format!("{err:#}").contains("run `custodian-agent enroll` first"), "{err:#}");
}
