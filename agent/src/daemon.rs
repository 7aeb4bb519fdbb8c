//! `custodian-agent run`: report on a jittered interval, retry delivery with
//! backoff while the server is unreachable, and renew the certificate.

use std::time::Duration;

use rand::Rng;
use tracing::{error, info, warn};

use crate::Agent;
use crate::collect::InventorySource;

/// First retry delay after a failed delivery; it doubles up to the interval.
const FIRST_RETRY: Duration = Duration::from_secs(5);

/// `interval` ± 10%, so a fleet started together does not report in lockstep.
pub fn jittered(interval: Duration) -> Duration {
    let spread = interval.as_secs_f64() * 0.1;
    let offset = rand::thread_rng().gen_range(-spread..=spread);
    Duration::from_secs_f64((interval.as_secs_f64() + offset).max(1.0))
}

/// Runs until `shutdown` completes.
pub async fn run(
    mut agent: Agent,
    source: &dyn InventorySource,
    interval: Duration,
    server: Option<&str>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    info!(interval = %humantime::format_duration(interval), "agent running");
    loop {
        if let Err(e) = agent.spool_report(source) {
            if agent.spool.sync_failed() {
                // Only a restart settles what is on disk; the unit restarts us.
                return Err(e.context("the spool can no longer be trusted"));
            }
            error!("failed to spool a report: {}", custodian_proto::errors::chain_text(e.as_ref()));
        }
        let next_report = tokio::time::Instant::now() + jittered(interval);
        let mut retry = FIRST_RETRY;
        loop {
            // Before every attempt, not once per interval: after a long
            // outage the certificate may have expired, and only a renewal
            // (which the server grants within its grace) lets the spool out.
            if let Err(e) = agent.renew_if_due(server).await {
                warn!(
                    "failed to renew the certificate (will retry): {}",
                    custodian_proto::errors::chain_text(e.as_ref())
                );
            }
            let wait_until = match agent.deliver(server).await {
                Ok(_) => next_report,
                Err(e) if agent.spool.sync_failed() => {
                    return Err(e.context("the spool can no longer be trusted"));
                }
                Err(e) => {
                    warn!(
                        pending = agent.spool.len(),
                        "failed to deliver reports (kept in the spool): {}",
                        custodian_proto::errors::chain_text(e.as_ref())
                    );
                    let at = tokio::time::Instant::now() + retry;
                    retry = (retry * 2).min(interval);
                    at.min(next_report)
                }
            };
            tokio::select! {
                _ = &mut shutdown => {
                    info!(pending = agent.spool.len(), "agent stopping");
                    agent.spool.flush()?;
                    return Ok(());
                }
                _ = tokio::time::sleep_until(wait_until) => {}
            }
            if wait_until >= next_report {
                break;
            }
        }
    }
}
