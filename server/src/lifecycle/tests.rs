//! The lifecycle graph as a table: every (state, event) pair, legal or not.

use super::*;
use LifecycleEvent as E;
use LifecycleState as S;

/// Every legal move. Anything not listed must be refused.
const LEGAL: &[(LifecycleState, LifecycleEvent, LifecycleState)] = &[
    (S::Ordered, E::Receive, S::InStock),
    (S::Lost, E::Receive, S::InStock),
    (S::InStock, E::Stage, S::Staged),
    (S::Staged, E::Deploy, S::Deployed),
    (S::InRepair, E::Deploy, S::Deployed),
    (S::Deployed, E::SendForRepair, S::InRepair),
    (S::Ordered, E::Retire, S::Retired),
    (S::InStock, E::Retire, S::Retired),
    (S::Staged, E::Retire, S::Retired),
    (S::Deployed, E::Retire, S::Retired),
    (S::InRepair, E::Retire, S::Retired),
    (S::Retired, E::Sanitise, S::Sanitised),
    (S::Sanitised, E::Dispose, S::Disposed),
    (S::Ordered, E::ReportLost, S::Lost),
    (S::InStock, E::ReportLost, S::Lost),
    (S::Staged, E::ReportLost, S::Lost),
    (S::Deployed, E::ReportLost, S::Lost),
    (S::InRepair, E::ReportLost, S::Lost),
    (S::Retired, E::ReportLost, S::Lost),
    (S::Sanitised, E::ReportLost, S::Lost),
];

#[track_caller]
fn check(state: LifecycleState, event: LifecycleEvent, expect: Option<LifecycleState>) {
    match (state.apply(event), expect) {
        (Ok(next), Some(expected)) => assert_eq!(next, expected, "{state} + {event:?}"),
        (Err(e), None) => {
            assert_eq!(e.from, state);
            assert_eq!(e.to, event.target());
            assert_eq!(e.allowed, state.allowed());
            assert!(!e.allowed.contains(&event.target()), "{state} + {event:?}");
        }
        (res, expect) => panic!("{state} + {event:?}: got {res:?}, expected {expect:?}"),
    }
}

#[test]
fn the_full_graph() {
    let mut n_legal = 0;
    for state in LifecycleState::ALL {
        for event in LifecycleEvent::ALL {
            let expect = LEGAL.iter().find(|(s, e, _)| *s == state && *e == event).map(|(_, _, next)| *next);
            n_legal += usize::from(expect.is_some());
            check(state, event, expect);
            // move_to agrees with apply.
            assert_eq!(state.move_to(event.target()).ok(), expect, "{state} -> {}", event.target());
        }
        assert_eq!(state.move_to(S::Ordered).map_err(|e| e.allowed), Err(state.allowed()), "nothing reaches ordered");
    }
    assert_eq!(n_legal, LEGAL.len());
}

#[test]
fn refusal_names_the_allowed_moves() {
    let e = S::Staged.move_to(S::Disposed).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot move a device from staged to disposed; from staged it may move to: deployed, retired, lost"
    );
    let e = S::Disposed.move_to(S::Lost).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot move a device from disposed to lost; from disposed it may move to: nowhere (it is a terminal state)"
    );
}

#[test]
fn lost_sanitised_and_disposed_devices_are_refused() {
    let refused: Vec<_> = LifecycleState::ALL.into_iter().filter(|s| s.refuses_device()).collect();
    assert_eq!(refused, [S::Sanitised, S::Disposed, S::Lost]);
}

#[test]
fn state_names_round_trip() {
    for state in LifecycleState::ALL {
        assert_eq!(state.as_str().parse::<LifecycleState>(), Ok(state));
    }
    assert_eq!("in-stock".parse::<LifecycleState>(), Ok(S::InStock));
    assert!("scrapped".parse::<LifecycleState>().unwrap_err().to_string().contains("in_stock"));
}

fn inputs(compliance: Option<Compliance>, uncovered: &[&str]) -> GuardInputs {
    GuardInputs {
        compliance,
        coverage: Some(Coverage { covered: Vec::new(), uncovered: uncovered.iter().map(|s| s.to_string()).collect() }),
    }
}

#[test]
fn deployed_guard_needs_encryption_unless_overridden() {
    let ok = inputs(Some(Compliance::Compliant), &[]);
    assert_eq!(check_guard(S::Deployed, &ok, false), Ok(None));
    let bad = inputs(Some(Compliance::NonCompliant { volumes: vec!["sda2 (sda)".to_owned()] }), &[]);
    let err = check_guard(S::Deployed, &bad, false).unwrap_err();
    assert!(err.to_string().contains("not encrypted, or not known to be: sda2 (sda)"), "{err}");
    assert!(err.to_string().contains("--override"), "{err}");
    assert_eq!(check_guard(S::Deployed, &bad, true), Ok(Some(err)));
    let none = GuardInputs { compliance: None, coverage: None };
    assert!(check_guard(S::Deployed, &none, false).is_err());
    let unknown = inputs(Some(Compliance::Unknown { reason: "no volumes".to_owned() }), &[]);
    assert!(check_guard(S::Deployed, &unknown, false).is_err());
}

#[test]
fn sanitised_guard_lists_uncovered_disks_and_cannot_be_overridden() {
    let bad = inputs(Some(Compliance::Compliant), &["sda (serial S1)", "nvme0n1 (serial N1)"]);
    let err = check_guard(S::Sanitised, &bad, true).unwrap_err();
    assert_eq!(err, GuardError::DisksNotCovered(vec!["sda (serial S1)".to_owned(), "nvme0n1 (serial N1)".to_owned()]));
    assert!(err.to_string().contains("sda (serial S1), nvme0n1 (serial N1)"));
    let none = GuardInputs { compliance: None, coverage: None };
    assert_eq!(check_guard(S::Sanitised, &none, true), Err(GuardError::NoReport(S::Sanitised)));
    let ok = GuardInputs {
        compliance: None,
        coverage: Some(Coverage { covered: vec!["sda (serial S1)".to_owned()], uncovered: Vec::new() }),
    };
    assert_eq!(check_guard(S::Sanitised, &ok, false), Ok(None));
    // An inventory that lists no disks proves nothing.
    let empty = inputs(None, &[]);
    assert_eq!(check_guard(S::Sanitised, &empty, true), Err(GuardError::NoDisks));
}

#[test]
fn other_moves_have_no_guard() {
    let none = GuardInputs { compliance: None, coverage: None };
    for state in [S::InStock, S::Staged, S::InRepair, S::Retired, S::Disposed, S::Lost] {
        assert_eq!(check_guard(state, &none, false), Ok(None), "{state}");
    }
}
