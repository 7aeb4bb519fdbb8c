//! Talking to the server: enrolment (no client certificate), then signed
//! reports and renewal over mutual TLS.

use anyhow::{Context, bail};
use custodian_proto::channel::{ClientIdentity, connect};
use custodian_proto::v1 as pb;
use pb::agent_client::AgentClient;
use tonic::transport::Channel;
use tracing::{error, info, warn};

use crate::keys::DeviceKey;
use crate::spool::{SeqRaise, Spool};
use crate::state::{Enrollment, StateDir};

/// Most envelopes sent in one call.
const BATCH: usize = 200;

/// What one delivery round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Newly accepted by the server.
    pub accepted: usize,
    /// Already held by the server (an earlier send whose acknowledgement was lost).
    pub duplicates: usize,
    /// Refused by the server and moved aside: each one's spool sequence
    /// number and the server's reason.
    pub rejected: Vec<Rejected>,
    /// The server asked for a full inventory (a heartbeat's hash was unknown to it).
    pub full_inventory_requested: bool,
}

/// A report or attestation the server refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Its sequence number.
    pub seq: u64,
    /// What the server said.
    pub reason: String,
}

/// Turns a gRPC refusal into an error that says what the server said.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("server refused: {} ({:?})", custodian_proto::channel::describe_status(&status), status.code())
}

/// Enrols with a one-time token over TLS without a client certificate.
pub async fn enroll(
    server: &str,
    ca_pem: &str,
    token: &str,
    key: &DeviceKey,
    hostname: &str,
    serial: Option<&str>,
) -> anyhow::Result<pb::EnrollResponse> {
    let channel = connect(server, ca_pem, None).await?;
    let req = pb::EnrollRequest {
        token: token.trim().to_owned(),
        csr_pem: key.csr_pem(hostname)?,
        hostname: hostname.to_owned(),
        system_serial: serial.unwrap_or_default().to_owned(),
    };
    let res = pb::enrollment_client::EnrollmentClient::new(channel).enroll(req).await.map_err(|status| {
        anyhow::anyhow!(
            "enrolment refused: {} ({:?})",
            custodian_proto::channel::describe_status(&status),
            status.code()
        )
    })?;
    Ok(res.into_inner())
}

/// An mTLS connection as the enrolled device.
pub struct Uplink {
    client: AgentClient<Channel>,
}

impl Uplink {
    /// Connects to `server` with the device's certificate and key.
    pub async fn connect(state: &StateDir, server: &str, key: &DeviceKey) -> anyhow::Result<Self> {
        let ca = state.read(&state.ca())?;
        let cert = state.read(&state.cert())?;
        let channel = connect(server, &ca, Some(ClientIdentity { cert_pem: &cert, key_pem: &key.pem })).await?;
        Ok(Self { client: AgentClient::new(channel) })
    }

    /// Sends everything spooled, oldest first, removing what the server
    /// acknowledged. Stops at the first transport or call failure, leaving
    /// the rest spooled.
    pub async fn deliver(&mut self, spool: &Spool) -> anyhow::Result<Delivery> {
        let mut delivery = Delivery::default();
        loop {
            let pending = spool.pending(BATCH)?;
            if pending.is_empty() {
                return Ok(delivery);
            }
            let envelopes = pending.iter().map(|(_, e)| e.clone()).collect();
            let res = self
                .client
                .submit_reports(pb::SubmitReportsRequest { envelopes })
                .await
                .map_err(status_error)?
                .into_inner();
            if res.results.len() != pending.len() {
                bail!("the server answered {} results for {} reports", res.results.len(), pending.len());
            }
            for ((seq, envelope), result) in pending.iter().zip(&res.results) {
                match result.outcome() {
                    pb::Outcome::Accepted => {
                        spool.acknowledge(*seq)?;
                        delivery.accepted += 1;
                        if result.send_full_inventory {
                            info!(seq, "the server asked for a full inventory");
                            spool.set_inventory_sha256(None)?;
                            delivery.full_inventory_requested = true;
                        }
                    }
                    pb::Outcome::Duplicate => {
                        spool.acknowledge(*seq)?;
                        delivery.duplicates += 1;
                    }
                    pb::Outcome::Rejected | pb::Outcome::Unspecified => {
                        warn!(seq, reason = %result.detail, "the server rejected a report; kept aside in the spool");
                        if result.last_accepted_seq >= *seq {
                            // The server holds numbers this spool has not
                            // reached: it was lost or replaced. Carry on above.
                            let floor = result.last_accepted_seq.checked_add(1).context(
                                "the server says it accepted sequence number u64::MAX, which cannot be true",
                            )?;
                            match spool.raise_next_seq(floor)? {
                                SeqRaise::Raised { from } => warn!(
                                    last_accepted = result.last_accepted_seq,
                                    "the server has accepted sequence numbers beyond this spool's (was it lost?); \
                                     new reports carry on above them, not from {from}"
                                ),
                                SeqRaise::NotNeeded => {}
                                SeqRaise::RefusedAgain { earlier } => error!(
                                    last_accepted = result.last_accepted_seq,
                                    %earlier,
                                    "the server has accepted sequence numbers beyond this spool's again, after they \
                                     were raised once already: another machine is probably sending as this device \
                                     (a cloned disk image?); not raising them again - enrol one of the machines anew"
                                ),
                            }
                        }
                        spool.reject(*seq, envelope, &result.detail)?;
                        // It may have been the full inventory later heartbeats point to.
                        spool.set_inventory_sha256(None)?;
                        delivery.rejected.push(Rejected { seq: *seq, reason: result.detail.clone() });
                    }
                }
            }
            spool.flush()?;
        }
    }

    /// Renews the device certificate (same key), saving the new one.
    pub async fn renew(
        &mut self,
        state: &StateDir,
        enrollment: &mut Enrollment,
        key: &DeviceKey,
    ) -> anyhow::Result<()> {
        let hostname = crate::collect::HostCollector::default().hostname_for_csr();
        let req = pb::RenewRequest { csr_pem: key.csr_pem(&hostname)? };
        let res = self.client.renew(req).await.map_err(status_error)?.into_inner();
        custodian_proto::files::replace(&state.cert(), res.certificate_pem.as_bytes(), 0o644)
            .context("save renewed certificate")?;
        enrollment.cert_issued_at_ms = custodian_proto::now_ms();
        enrollment.cert_not_after_ms = res.not_after_ms;
        state.save_enrollment(enrollment)?;
        info!(not_after_ms = res.not_after_ms, "certificate renewed");
        Ok(())
    }
}
