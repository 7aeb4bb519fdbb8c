//! Tests of the destruction record checks and the route and method names.

use super::*;

fn input() -> DestructionInput {
    DestructionInput {
        serial: " DISK-1 ".to_owned(),
        method: "Shred".to_owned(),
        contractor: "Shredco".to_owned(),
        certificate_ref: "CD-123".to_owned(),
        date: "2026-01-02".to_owned(),
        witness: "Jo Bloggs".to_owned(),
    }
}

const NOW: i64 = 1_790_000_000_000; // 2026-09-21

#[test]
fn a_complete_record_is_accepted_and_hashes_stably() {
    let record = check_destruction(&input(), "alice (admin)", NOW).unwrap();
    assert_eq!(record.serial, "DISK-1");
    assert_eq!(record.method, DestructionMethod::Shred);
    assert_eq!(record.sha256_hex(), record.clone().sha256_hex());
    let mut other = record.clone();
    other.witness = "Someone else".to_owned();
    assert_ne!(record.sha256_hex(), other.sha256_hex());
}

#[track_caller]
fn check_refused(change: impl FnOnce(&mut DestructionInput), expect: &str) {
    let mut bad = input();
    change(&mut bad);
    let err = check_destruction(&bad, "alice (admin)", NOW).unwrap_err().to_string();
    assert!(err.contains(expect), "{err:?} should contain {expect:?}");
}

#[test]
fn missing_and_invalid_fields_are_refused_by_name() {
    check_refused(|i| i.serial.clear(), "serial is required");
    check_refused(|i| i.witness = "  ".to_owned(), "witness is required");
    check_refused(|i| i.certificate_ref.clear(), "certificate reference is required");
    check_refused(|i| i.contractor.clear(), "contractor is required");
    check_refused(|i| i.method = "melt".to_owned(), "unknown destruction method \"melt\"");
    check_refused(|i| i.date = "02/01/2026".to_owned(), "is not a date");
    check_refused(|i| i.date = "2099-01-01".to_owned(), "in the future");
    check_refused(|i| i.contractor = "x".repeat(MAX_FIELD_LEN + 1), "at most");
}

#[test]
fn routes_parse_with_either_separator() {
    assert_eq!("return_to_lessor".parse::<DisposalRoute>(), Ok(DisposalRoute::ReturnToLessor));
    assert_eq!("Recycle".parse::<DisposalRoute>(), Ok(DisposalRoute::Recycle));
    assert!("landfill".parse::<DisposalRoute>().unwrap_err().contains("recycle, resale"));
}

#[test]
fn ghost_states_are_the_states_after_the_machine_left() {
    let ghosts: Vec<_> = LifecycleState::ALL.into_iter().filter(|s| is_ghost_state(*s)).collect();
    assert_eq!(ghosts, vec![LifecycleState::Sanitised, LifecycleState::Disposed, LifecycleState::Lost]);
}
