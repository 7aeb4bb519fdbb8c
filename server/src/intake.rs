//! Report intake with group commit.
//!
//! Reports are prepared as they are queued (signed reports on the verifier
//! thread, see `Intake::submit`; others on their handler's) and go to one
//! committer thread. The committer takes every batch that is waiting, writes
//! them all (the envelopes to the store's envelope log, synced, then one
//! store transaction for the group), makes them durable with a single flush,
//! and only then answers each handler. Under load, reports that arrive while
//! a flush is running share the next one, so the cost of each sync is spread
//! over many acknowledgements.

use std::thread;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, warn};

use crate::store::{CommitOutcome, CommitReportError, IncomingReport, Prepared, Store, StoreError};

/// How many handler batches one flush may cover at most.
const MAX_JOBS_PER_FLUSH: usize = 4096;

/// How many reports one group (one transaction, one flush) gathers at most,
/// which bounds the memory a transaction holds.
const MAX_REPORTS_PER_GROUP: usize = 4096;

/// The result for each report of a batch, in order.
pub type BatchOutcome = Vec<Result<CommitOutcome, CommitReportError>>;

/// Why a batch could not be committed.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Storage failed; nothing in the batch is acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing succeeded but the flush to disk failed; nothing in the batch
    /// is acknowledged (the agent keeps it spooled and sends it again).
    #[error("flushing reports to disk failed: {0}")]
    Flush(String),
    /// The committer has stopped (the server is shutting down).
    #[error("the report committer has stopped")]
    Stopped,
}

/// What the committer does with a batch's result once it is durable (or
/// has failed): answer whoever is waiting for it.
type Reply = Box<dyn FnOnce(Result<BatchOutcome, IntakeError>) + Send>;

struct Job {
    reports: Vec<(IncomingReport, Prepared)>,
    reply: Reply,
}

/// The handle handlers submit verified reports through.
#[derive(Clone)]
pub struct Intake {
    tx: mpsc::Sender<Job>,
}

impl Intake {
    /// Starts the committer thread over `store`. It stops when every
    /// [`Intake`] handle is dropped.
    pub fn start(store: Store) -> Self {
        let (tx, rx) = mpsc::channel(MAX_JOBS_PER_FLUSH);
        thread::Builder::new()
            .name("report-committer".to_owned())
            .spawn(move || run_committer(&store, rx))
            .expect("the OS can start one thread");
        Self { tx }
    }

    /// Commits `reports` (one device's, in order) and returns once they are
    /// durable, with each report's outcome. What can be prepared before the
    /// transaction is, here on the caller's thread.
    pub async fn accept(&self, reports: Vec<IncomingReport>) -> Result<BatchOutcome, IntakeError> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        let job = Job::new(reports, move |res| {
            // The handler may have gone (its client hung up); nothing to do.
            let _ = reply.send(res);
        });
        self.tx.send(job).await.map_err(|_| IntakeError::Stopped)?;
        rx.await.map_err(|_| IntakeError::Stopped)?
    }

    /// Commits `reports` (one device's, in order) as [`Intake::accept`]
    /// does, from a thread outside the async runtime (the verifier's), and
    /// calls `reply` with the result once they are durable, on the
    /// committer's thread. Blocks while the committer's queue is full.
    pub fn submit(
        &self,
        reports: Vec<IncomingReport>,
        reply: impl FnOnce(Result<BatchOutcome, IntakeError>) + Send + 'static,
    ) {
        if reports.is_empty() {
            reply(Ok(Vec::new()));
            return;
        }
        if let Err(refused) = self.tx.blocking_send(Job::new(reports, reply)) {
            (refused.0.reply)(Err(IntakeError::Stopped));
        }
    }
}

impl Job {
    /// Prepares `reports`, here on the caller's thread.
    fn new(
        reports: Vec<IncomingReport>,
        reply: impl FnOnce(Result<BatchOutcome, IntakeError>) + Send + 'static,
    ) -> Self {
        let reports = reports
            .into_iter()
            .map(|report| {
                let prepared = Prepared::new(&report);
                (report, prepared)
            })
            .collect();
        Self { reports, reply: Box::new(reply) }
    }
}

fn run_committer(store: &Store, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut n_reports = first.reports.len();
        jobs.push(first);
        while jobs.len() < MAX_JOBS_PER_FLUSH && n_reports < MAX_REPORTS_PER_GROUP {
            match rx.try_recv() {
                Ok(job) => {
                    n_reports += job.reports.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let outcomes = commit_group(store, &jobs);
        let flushed = store.flush_blocking();
        if let Err(e) = &flushed {
            error!(error = %e, "failed to flush reports; none of this batch is acknowledged");
        }
        for (job, outcome) in jobs.drain(..).zip(outcomes) {
            let res = match (&flushed, outcome) {
                (Ok(()), Ok(outcome)) => Ok(outcome),
                (Err(e), _) => Err(IntakeError::Flush(e.to_string())),
                (Ok(()), Err(e)) => Err(IntakeError::Store(e)),
            };
            (job.reply)(res);
        }
    }
}

/// Commits every job's reports in one transaction and splits the outcomes
/// back by job. If that fails, commits each job on its own, so that a job
/// that cannot be stored does not take the others down with it.
fn commit_group(store: &Store, jobs: &[Job]) -> Vec<Result<BatchOutcome, StoreError>> {
    let all: Vec<(&IncomingReport, &Prepared)> = jobs.iter().flat_map(pairs).collect();
    match store.commit_prepared(&all) {
        Ok(outcomes) => {
            let mut outcomes = outcomes.into_iter();
            jobs.iter().map(|job| Ok(outcomes.by_ref().take(job.reports.len()).collect())).collect()
        }
        Err(e) if jobs.len() > 1 => {
            warn!(error = %e, jobs = jobs.len(), "committing a group of reports failed; committing each batch alone");
            jobs.iter().map(|job| store.commit_prepared(&pairs(job))).collect()
        }
        Err(e) => vec![Err(e)],
    }
}

/// A job's reports as the store takes them.
fn pairs(job: &Job) -> Vec<(&IncomingReport, &Prepared)> {
    job.reports.iter().map(|(report, prepared)| (report, prepared)).collect()
}

#[cfg(test)]
mod tests;
