//! Report signatures, checked in batches.
//!
//! Handlers hand the envelopes of each `SubmitReports` call to one verifier
//! thread, which takes every call that is waiting and checks all their
//! signatures together with [`envelope::verify_many`]: one batch equation
//! instead of one `verify_strict` each. In batches of eight or more that
//! costs about half as much per envelope (see BENCHMARKS.md). A lone
//! envelope is checked with `verify_strict` as before. A bad signature fails
//! only its own envelope; the batch it was in is then checked one by one,
//! which costs the other envelopes in it about 1.6 times what batching saved.
//!
//! What happens next runs on the same thread ([`Verifier::check_then`]): the
//! report handler decodes the verified reports there and passes them
//! straight to the committer, so the handler is woken once per call rather
//! than after each stage.
//!
//! Wipe attestations are rare, and are still checked one by one where they
//! are decoded.

use std::thread;

use custodian_proto::envelope::{self, REPORT_PAYLOAD_TYPE, VerifyEnvelopeError};
use custodian_proto::v1 as pb;
use ed25519_dalek::VerifyingKey;
use tokio::sync::mpsc;

/// Most envelopes checked in one batch; more wait for the next.
const MAX_ENVELOPES_PER_BATCH: usize = 256;

/// Each envelope of a call, given back with the result of its check.
pub type Checked = Vec<(pb::SignedEnvelope, Result<(), VerifyEnvelopeError>)>;

/// The verifier thread has stopped (the server is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the report signature verifier has stopped")]
pub struct VerifierStopped;

/// What the verifier thread does with a call's envelopes once checked.
type Then = Box<dyn FnOnce(Checked) + Send>;

struct Job {
    key: VerifyingKey,
    envelopes: Vec<pb::SignedEnvelope>,
    then: Then,
}

/// The handle handlers check report envelopes through.
#[derive(Clone)]
pub struct Verifier {
    tx: mpsc::Sender<Job>,
}

impl Verifier {
    /// Starts the verifier thread. It stops when every [`Verifier`] handle
    /// is dropped.
    pub fn start() -> Self {
        let (tx, rx) = mpsc::channel(MAX_ENVELOPES_PER_BATCH);
        thread::Builder::new()
            .name("report-verifier".to_owned())
            .spawn(move || run(rx))
            .expect("the OS can start one thread");
        Self { tx }
    }

    /// Queues `envelopes` to be checked, each as a report signed by `key`,
    /// strictly (as [`envelope::verify`] does), and returns once they are
    /// queued; the verifier thread then calls `then` with them and their
    /// results, in order. Whatever `then` does runs on that thread,
    /// so it must be short and must not block on async work; in return the
    /// caller is woken once for its whole call rather than once per stage
    /// (see `Intake::submit`). `then` is not called if the verifier stops.
    pub async fn check_then(
        &self,
        key: VerifyingKey,
        envelopes: Vec<pb::SignedEnvelope>,
        then: impl FnOnce(Checked) + Send + 'static,
    ) -> Result<(), VerifierStopped> {
        self.tx.send(Job { key, envelopes, then: Box::new(then) }).await.map_err(|_| VerifierStopped)
    }
}

fn run(mut rx: mpsc::Receiver<Job>) {
    let mut jobs: Vec<Job> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut n_envelopes = first.envelopes.len();
        jobs.push(first);
        while n_envelopes < MAX_ENVELOPES_PER_BATCH {
            match rx.try_recv() {
                Ok(job) => {
                    n_envelopes += job.envelopes.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let results = {
            let items: Vec<(&VerifyingKey, &pb::SignedEnvelope)> =
                jobs.iter().flat_map(|job| job.envelopes.iter().map(move |envelope| (&job.key, envelope))).collect();
            envelope::verify_many(&items, REPORT_PAYLOAD_TYPE)
        };
        let mut results = results.into_iter();
        for job in jobs.drain(..) {
            let checked = job.envelopes.into_iter().zip(results.by_ref()).collect();
            (job.then)(checked);
        }
    }
}

#[cfg(test)]
mod tests;
