//! Report intake with group commit.
//!
//! Handlers verify reports in parallel and hand them to one committer thread.
//! The committer takes every batch that is waiting, writes them all, makes
//! them durable with a single flush, and only then answers each handler. Under
//! load, reports that arrive while a flush is running share the next one, so
//! the cost of an fsync is spread over many acknowledgements.

use std::thread;

use tokio::sync::{mpsc, oneshot};
use tracing::error;

use crate::store::{CommitOutcome, CommitReportError, IncomingReport, Store, StoreError};

/// How many handler batches one flush may cover at most.
const MAX_JOBS_PER_FLUSH: usize = 4096;

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

struct Job {
    reports: Vec<IncomingReport>,
    reply: oneshot::Sender<Result<BatchOutcome, IntakeError>>,
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
    /// durable, with each report's outcome.
    pub async fn accept(&self, reports: Vec<IncomingReport>) -> Result<BatchOutcome, IntakeError> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job { reports, reply }).await.map_err(|_| IntakeError::Stopped)?;
        rx.await.map_err(|_| IntakeError::Stopped)?
    }
}

fn run_committer(store: &Store, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        while jobs.len() < MAX_JOBS_PER_FLUSH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in &jobs {
            outcomes.push(job.reports.iter().map(|report| store.commit_report(report)).collect::<Result<Vec<_>, _>>());
        }
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
            let _ = job.reply.send(res);
        }
    }
}
