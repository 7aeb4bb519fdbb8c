//! The lifecycle of a machine, from purchase order to disposal (DESIGN.md):
//!
//! ```text
//! ordered → in_stock → staged → deployed ⇄ in_repair
//!                          any of those → retired → sanitised → disposed
//! any non-terminal state → lost → in_stock (found)
//! ```
//!
//! [`LifecycleState::apply`] enforces the graph; the guards that need
//! evidence (encryption for `deployed`, wipe coverage for `sanitised`) are
//! checked by [`check_guard`] against what the store holds, and the caller
//! writes the new state and its audit event in one transaction.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::compliance::Compliance;
use crate::sanitisation::Coverage;

/// Where a machine is in its life. What is true of it in each state:
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleState {
    /// On a purchase order; not yet delivered.
    Ordered,
    /// Delivered and held in stock, not yet prepared.
    InStock,
    /// Imaged and prepared (an agent has usually enrolled), not yet in use.
    Staged,
    /// In clinical use at a site and ward.
    Deployed,
    /// Taken out of use for repair; expected back.
    InRepair,
    /// Permanently out of use; its disks still hold whatever they held.
    Retired,
    /// Every disk is covered by a verified wipe or a destruction record.
    Sanitised,
    /// Gone from the organisation, with its certificate of sanitisation. Terminal.
    Disposed,
    /// Cannot be found. Its certificate is refused until it is found.
    Lost,
}

/// Something that happens to a machine and moves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifecycleEvent {
    /// Delivered into stock, or found again after being lost.
    Receive,
    /// Prepared for deployment.
    Stage,
    /// Put into (or back into) clinical use.
    Deploy,
    /// Sent for repair.
    SendForRepair,
    /// Taken out of use for good.
    Retire,
    /// Every disk sanitised or destroyed.
    Sanitise,
    /// Handed to the disposal route.
    Dispose,
    /// Reported lost.
    ReportLost,
}

/// Why a move was refused by the graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot move a device from {from} to {to}; from {from} it may move to: {}", list(allowed))]
pub struct TransitionError {
    /// The state the device is in.
    pub from: LifecycleState,
    /// The state asked for.
    pub to: LifecycleState,
    /// The states it may move to from `from`.
    pub allowed: Vec<LifecycleState>,
}

fn list(states: &[LifecycleState]) -> String {
    if states.is_empty() {
        return "nowhere (it is a terminal state)".to_owned();
    }
    states.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

impl LifecycleState {
    /// Every state, in lifecycle order.
    pub const ALL: [LifecycleState; 9] = [
        LifecycleState::Ordered,
        LifecycleState::InStock,
        LifecycleState::Staged,
        LifecycleState::Deployed,
        LifecycleState::InRepair,
        LifecycleState::Retired,
        LifecycleState::Sanitised,
        LifecycleState::Disposed,
        LifecycleState::Lost,
    ];

    /// The state `event` moves a device in this state to, if the graph allows it.
    pub fn apply(self, event: LifecycleEvent) -> Result<LifecycleState, TransitionError> {
        self.next(event).ok_or_else(|| TransitionError { from: self, to: event.target(), allowed: self.allowed() })
    }

    /// The graph: one exhaustive match over (state, event).
    fn next(self, event: LifecycleEvent) -> Option<LifecycleState> {
        use LifecycleEvent as E;
        use LifecycleState as S;
        match (self, event) {
            (S::Ordered | S::Lost, E::Receive) => Some(S::InStock),
            (S::InStock, E::Stage) => Some(S::Staged),
            (S::Staged | S::InRepair, E::Deploy) => Some(S::Deployed),
            (S::Deployed, E::SendForRepair) => Some(S::InRepair),
            (S::Ordered | S::InStock | S::Staged | S::Deployed | S::InRepair, E::Retire) => Some(S::Retired),
            (S::Retired, E::Sanitise) => Some(S::Sanitised),
            (S::Sanitised, E::Dispose) => Some(S::Disposed),
            (
                S::Ordered | S::InStock | S::Staged | S::Deployed | S::InRepair | S::Retired | S::Sanitised,
                E::ReportLost,
            ) => Some(S::Lost),
            (
                S::Ordered
                | S::InStock
                | S::Staged
                | S::Deployed
                | S::InRepair
                | S::Retired
                | S::Sanitised
                | S::Disposed
                | S::Lost,
                E::Receive
                | E::Stage
                | E::Deploy
                | E::SendForRepair
                | E::Retire
                | E::Sanitise
                | E::Dispose
                | E::ReportLost,
            ) => None,
        }
    }

    /// Moves to `to`, by the event that reaches it.
    pub fn move_to(self, to: LifecycleState) -> Result<LifecycleState, TransitionError> {
        match LifecycleEvent::reaching(to) {
            Some(event) => self.apply(event),
            None => Err(TransitionError { from: self, to, allowed: self.allowed() }),
        }
    }

    /// The states a device in this state may move to.
    pub fn allowed(self) -> Vec<LifecycleState> {
        LifecycleEvent::ALL.iter().filter_map(|event| self.next(*event)).collect()
    }

    /// Whether the device's certificate is refused in this state: the
    /// machine should no longer be on the network (a call raises a ghost
    /// alert, see `disposal.rs`).
    pub fn refuses_device(self) -> bool {
        matches!(self, LifecycleState::Lost | LifecycleState::Sanitised | LifecycleState::Disposed)
    }

    /// The name used on the command line, in records and in the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleState::Ordered => "ordered",
            LifecycleState::InStock => "in_stock",
            LifecycleState::Staged => "staged",
            LifecycleState::Deployed => "deployed",
            LifecycleState::InRepair => "in_repair",
            LifecycleState::Retired => "retired",
            LifecycleState::Sanitised => "sanitised",
            LifecycleState::Disposed => "disposed",
            LifecycleState::Lost => "lost",
        }
    }
}

impl LifecycleEvent {
    /// Every event.
    pub const ALL: [LifecycleEvent; 8] = [
        LifecycleEvent::Receive,
        LifecycleEvent::Stage,
        LifecycleEvent::Deploy,
        LifecycleEvent::SendForRepair,
        LifecycleEvent::Retire,
        LifecycleEvent::Sanitise,
        LifecycleEvent::Dispose,
        LifecycleEvent::ReportLost,
    ];

    /// The state this event moves a device to.
    pub fn target(self) -> LifecycleState {
        match self {
            LifecycleEvent::Receive => LifecycleState::InStock,
            LifecycleEvent::Stage => LifecycleState::Staged,
            LifecycleEvent::Deploy => LifecycleState::Deployed,
            LifecycleEvent::SendForRepair => LifecycleState::InRepair,
            LifecycleEvent::Retire => LifecycleState::Retired,
            LifecycleEvent::Sanitise => LifecycleState::Sanitised,
            LifecycleEvent::Dispose => LifecycleState::Disposed,
            LifecycleEvent::ReportLost => LifecycleState::Lost,
        }
    }

    /// The event that reaches `state` (none reaches `ordered`).
    pub fn reaching(state: LifecycleState) -> Option<LifecycleEvent> {
        LifecycleEvent::ALL.into_iter().find(|event| event.target() == state)
    }
}

impl fmt::Display for LifecycleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown lifecycle state {name:?}; expected one of: {all}", name = .0, all = list(&LifecycleState::ALL))]
pub struct ParseStateError(pub String);

impl FromStr for LifecycleState {
    type Err = ParseStateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('-', "_");
        LifecycleState::ALL
            .into_iter()
            .find(|state| state.as_str() == wanted)
            .ok_or_else(|| ParseStateError(s.to_owned()))
    }
}

/// What the guards look at.
#[derive(Debug, Clone)]
pub struct GuardInputs {
    /// Encryption compliance of the latest report (`None`: no report yet).
    pub compliance: Option<Compliance>,
    /// Sanitisation coverage of the latest inventory's disks (`None`: no report yet).
    pub coverage: Option<Coverage>,
}

/// Why a guard refused a move the graph allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// `deployed` needs the latest report to show every fixed data volume encrypted.
    #[error(
        "deployed needs the latest report to show every fixed data volume encrypted, but {0}; \
         give --override REASON to deploy anyway (the override is audited)"
    )]
    NotEncrypted(String),
    /// `sanitised` needs every disk covered by a verified wipe or a destruction record.
    #[error(
        "sanitised needs every storage device of the latest inventory covered by a verified wipe attestation \
         or a destruction record; not covered: {}",
        .0.join(", ")
    )]
    DisksNotCovered(Vec<String>),
    /// `sanitised` needs the latest inventory to list the machine's disks.
    #[error(
        "sanitised needs the latest inventory to list the machine's fixed storage devices, and it lists none \
         (the agent may not have been able to read them); a machine cannot be certified sanitised on an empty list"
    )]
    NoDisks,
    /// A guard needs a report and there is none.
    #[error("{0} needs a report from the device's agent, and it has none")]
    NoReport(LifecycleState),
}

/// Whether a move to `to` passes its guard. `override_given` lets the
/// encryption guard (only that one) be overridden; the caller audits it.
/// Returns the refusal the override overrode, if it did.
pub fn check_guard(
    to: LifecycleState,
    inputs: &GuardInputs,
    override_given: bool,
) -> Result<Option<GuardError>, GuardError> {
    match to {
        LifecycleState::Deployed => {
            let refusal = match &inputs.compliance {
                Some(Compliance::Compliant) => return Ok(None),
                Some(Compliance::NonCompliant { volumes }) => GuardError::NotEncrypted(format!(
                    "these volumes are {}",
                    custodian_proto::json::describe_noncompliant(volumes)
                )),
                Some(Compliance::Unknown { reason }) => GuardError::NotEncrypted(reason.clone()),
                None => GuardError::NotEncrypted("the device has not reported yet".to_owned()),
            };
            if override_given { Ok(Some(refusal)) } else { Err(refusal) }
        }
        LifecycleState::Sanitised => match &inputs.coverage {
            None => Err(GuardError::NoReport(to)),
            Some(coverage) if coverage.covered.is_empty() && coverage.uncovered.is_empty() => Err(GuardError::NoDisks),
            Some(coverage) if coverage.uncovered.is_empty() => Ok(None),
            Some(coverage) => Err(GuardError::DisksNotCovered(coverage.uncovered.clone())),
        },
        LifecycleState::Ordered
        | LifecycleState::InStock
        | LifecycleState::Staged
        | LifecycleState::InRepair
        | LifecycleState::Retired
        | LifecycleState::Disposed
        | LifecycleState::Lost => Ok(None),
    }
}

#[cfg(test)]
mod tests;
