//! Driving the load: one mTLS connection per simulated agent, each sending
//! its requests one after another, all agents at once; timing each call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use custodian_proto::channel::{ClientIdentity, connect};
use custodian_proto::v1 as pb;
use tokio::sync::Barrier;
use tonic::transport::Channel;

use crate::SubmitReports;
use crate::cpu::{CpuTime, MachineCpu};
use crate::echo::pb as echo_pb;
use crate::fixture::Fleet;

/// The timings of one load run.
pub(crate) struct Run {
    /// From the moment every client was ready until the last answer.
    pub(crate) elapsed: Duration,
    /// Every call's latency in microseconds, sorted.
    pub(crate) latencies_us: Vec<u32>,
    /// CPU time the server process used during the run.
    pub(crate) server_cpu: CpuTime,
    /// CPU time this process (the load generator) used during the run.
    pub(crate) client_cpu: Duration,
    /// The whole machine's CPU time during the run: were the cores saturated?
    pub(crate) machine_cpu: MachineCpu,
}

impl Run {
    /// Calls answered per second.
    pub(crate) fn calls_per_sec(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// Reports per second when each call carries `batch` of them.
    pub(crate) fn reports_per_sec(&self, batch: usize) -> f64 {
        self.calls_per_sec() * batch as f64
    }

    /// The `p`th percentile latency in milliseconds (nearest rank).
    pub(crate) fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * self.latencies_us.len() as f64).ceil() as usize;
        let idx = rank.clamp(1, self.latencies_us.len()) - 1;
        f64::from(self.latencies_us[idx]) / 1000.0
    }

    /// Server CPU microseconds per report.
    pub(crate) fn server_cpu_us_per_report(&self, batch: usize) -> f64 {
        self.per_report_us(self.server_cpu.total, batch)
    }

    /// Server CPU microseconds per report, by thread name, most first.
    pub(crate) fn server_threads_us_per_report(&self, batch: usize) -> Vec<(&str, f64)> {
        let mut threads: Vec<(&str, f64)> = self
            .server_cpu
            .by_thread
            .iter()
            .map(|(name, cpu)| (name.as_str(), self.per_report_us(*cpu, batch)))
            .collect();
        threads.sort_by(|a, b| b.1.total_cmp(&a.1));
        threads
    }

    fn per_report_us(&self, cpu: Duration, batch: usize) -> f64 {
        cpu.as_secs_f64() * 1e6 / (self.latencies_us.len() * batch) as f64
    }

    /// Load-generator CPU microseconds per report.
    pub(crate) fn client_cpu_us_per_report(&self, batch: usize) -> f64 {
        self.per_report_us(self.client_cpu, batch)
    }
}

/// Reads a server process's CPU time.
pub(crate) type CpuClock<'a> = &'a (dyn Fn() -> anyhow::Result<CpuTime> + Sync);

/// Opens one mTLS channel per device to `url`, each with that device's certificate.
async fn channels(fleet: &Fleet, url: &str) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(fleet.devices.len());
    for device in &fleet.devices {
        let identity = ClientIdentity { cert_pem: &device.cert_pem, key_pem: &device.key.pem };
        channels.push(connect(url, &fleet.ca_pem, Some(identity)).await?);
    }
    Ok(channels)
}

/// The baseline: every device sends its requests' bytes to the echo server.
pub(crate) async fn baseline(
    fleet: &Fleet,
    url: &str,
    server_cpu: CpuClock<'_>,
    requests: Vec<Vec<echo_pb::EchoRequest>>,
) -> anyhow::Result<Run> {
    let clients = channels(fleet, url).await?.into_iter().map(echo_pb::echo_client::EchoClient::new);
    drive(clients.zip(requests).collect(), server_cpu, |mut client, req| async move {
        let len = req.payload.len() as u64;
        let res = client.echo(req).await.context("call Echo")?.into_inner();
        if res.received_bytes != len {
            bail!("the echo server received {} bytes of {len}", res.received_bytes);
        }
        Ok(())
    })
    .await
}

/// Ingest: every device submits its signed reports to the real server; every
/// envelope must come back accepted.
pub(crate) async fn ingest(
    fleet: &Fleet,
    url: &str,
    server_cpu: CpuClock<'_>,
    requests: Vec<Vec<SubmitReports>>,
) -> anyhow::Result<Run> {
    let clients = channels(fleet, url).await?.into_iter().map(pb::agent_client::AgentClient::new);
    drive(clients.zip(requests).collect(), server_cpu, |mut client, req| async move {
        let n_envelopes = req.envelopes.len();
        let res = client.submit_reports(req).await.context("call SubmitReports")?.into_inner();
        let accepted = res.results.iter().filter(|r| r.outcome() == pb::Outcome::Accepted).count();
        if accepted != n_envelopes {
            let refusal = res.results.iter().find(|r| r.outcome() != pb::Outcome::Accepted);
            bail!("{accepted} of {n_envelopes} envelopes accepted; first refusal: {refusal:?}");
        }
        Ok(())
    })
    .await
}

/// Runs one task per client; each waits until all are ready, then makes its
/// calls in order, timing each.
async fn drive<C, R, F, Fut>(work: Vec<(C, Vec<R>)>, server_cpu: CpuClock<'_>, call: F) -> anyhow::Result<Run>
where
    C: Clone + Send + 'static,
    R: Send + 'static,
    F: Fn(C, R) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let start = Arc::new(Barrier::new(work.len() + 1));
    let mut tasks = tokio::task::JoinSet::new();
    for (client, requests) in work {
        let (start, call) = (start.clone(), call.clone());
        tasks.spawn(async move {
            let mut latencies_us = Vec::with_capacity(requests.len());
            start.wait().await;
            for req in requests {
                let sent = Instant::now();
                call(client.clone(), req).await?;
                latencies_us.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            anyhow::Ok(latencies_us)
        });
    }
    start.wait().await;
    let started = Instant::now();
    let (server_cpu_before, client_cpu_before, machine_before) = (server_cpu()?, own_cpu()?, MachineCpu::read()?);
    let mut latencies_us = Vec::new();
    while let Some(res) = tasks.join_next().await {
        latencies_us.extend(res.context("join client task")??);
    }
    let elapsed = started.elapsed();
    let server_cpu = server_cpu()?.since(&server_cpu_before);
    let client_cpu = own_cpu()?.saturating_sub(client_cpu_before);
    let machine_cpu = MachineCpu::read()?.since(&machine_before);
    latencies_us.sort_unstable();
    Ok(Run { elapsed, latencies_us, server_cpu, client_cpu, machine_cpu })
}

fn own_cpu() -> anyhow::Result<Duration> {
    crate::cpu::process_cpu_time("/proc/self/stat")
}
