//! The end-to-end cases, one module per area. Each test gets its own
//! temporary directory and its own server on a free loopback port.

mod access;
mod crash;
mod durability;
mod enrolment;
mod envelopes;
mod help;
mod tidy;
mod wipe;

use custodian_proto::v1 as pb;

/// Asserts `result` has `outcome` and, for refusals, that its detail
/// mentions `detail`.
#[track_caller]
fn check_outcome(result: &pb::EnvelopeResult, outcome: pb::Outcome, detail: &str) {
    assert_eq!(result.outcome(), outcome, "unexpected outcome: {result:?}");
    assert!(result.detail.contains(detail), "expected {detail:?} in the detail: {result:?}");
}
