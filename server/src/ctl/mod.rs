//! The client side of `custodianctl`: connecting with an operator identity,
//! calling the Operator service, and rendering what comes back for a
//! terminal or as JSON.

mod attestation;
mod audit;
mod disposal;
mod lifecycle;
mod render;
mod rollout;
mod signed;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use custodian_proto::channel::{ClientIdentity, connect};
use custodian_proto::v1 as pb;
use pb::operator_client::OperatorClient;
use tonic::transport::Channel;

pub use attestation::{render_unmatched, render_unmatched_json};
pub use audit::{verify_export_dir, verify_proof_file};
pub use disposal::{
    AlertsCommand, CertificateCommand, CustodyCommand, DiskCommand, DisposalsCommand, ManifestCommand, get_certificate,
    run_alerts, run_custody, run_disk, run_disposals,
};
pub use lifecycle::{REGISTER_MESSAGE_LIMIT, parse_device_csv, render_device_list_csv, render_history, write_identity};
pub use render::{format_time, render_device, render_device_json, render_device_list, render_device_list_json};
pub use rollout::{RolloutCommand, run_rollout};

use crate::operators::{IDENTITY_CA, IDENTITY_CERT, IDENTITY_KEY};

/// An operator's connection to the server.
pub struct Ctl {
    client: OperatorClient<Channel>,
    channel: Channel,
}

impl Ctl {
    /// Connects to `server` with the operator identity in `identity_dir`
    /// (`ca.pem`, `cert.pem`, `key.pem`, as written by `operator issue`).
    pub async fn connect(server: &str, identity_dir: &Path) -> anyhow::Result<Self> {
        let read = |name: &str| {
            let path = identity_dir.join(name);
            std::fs::read_to_string(&path).with_context(|| format!("read operator identity file {}", path.display()))
        };
        let (ca, cert, key) = (read(IDENTITY_CA)?, read(IDENTITY_CERT)?, read(IDENTITY_KEY)?);
        let channel = connect(server, &ca, Some(ClientIdentity { cert_pem: &cert, key_pem: &key })).await?;
        Ok(Self { client: OperatorClient::new(channel.clone()), channel })
    }

    /// Creates an enrolment token, optionally bound to a register entry's
    /// asset tag, for a workstation or a wipe station. `ttl` is sent in whole
    /// seconds (see [`parse_ttl`]); `None` takes the server's default.
    pub async fn create_token(
        &mut self,
        site: Option<String>,
        ttl: Option<Duration>,
        asset_tag: Option<String>,
        kind: pb::DeviceKind,
    ) -> anyhow::Result<pb::CreateEnrollmentTokenResponse> {
        let req = pb::CreateEnrollmentTokenRequest {
            site: site.unwrap_or_default(),
            // Zero asks for the server's default, so never send it for a given ttl.
            ttl_seconds: ttl.map(|ttl| ttl.as_secs().max(1)).unwrap_or(0),
            asset_tag: asset_tag.unwrap_or_default(),
            kind: kind.into(),
        };
        Ok(self.client.create_enrollment_token(req).await.map_err(status_error)?.into_inner())
    }

    /// Lists the devices that pass `filter` (the default lists every device),
    /// ordered by hostname (ignoring case), then id. The server answers a
    /// page at a time; this fetches every page (`filter.page_size` of them
    /// per call, 0: the server's default) and sorts the union. A device
    /// that changed state while the pages were fetched, and so was listed
    /// twice, appears once, as last seen.
    pub async fn list_devices(&mut self, filter: pb::ListDevicesRequest) -> anyhow::Result<Vec<pb::DeviceSummary>> {
        let mut req = pb::ListDevicesRequest { page_token: String::new(), ..filter };
        let mut by_id: HashMap<String, pb::DeviceSummary> = HashMap::new();
        loop {
            let page = self.client.list_devices(req.clone()).await.map_err(status_error)?.into_inner();
            for device in page.devices {
                by_id.insert(device.device_id.clone(), device);
            }
            if page.next_page_token.is_empty() {
                break;
            }
            if page.next_page_token == req.page_token {
                bail!("the server answered with the page token it was sent; the listing would never end");
            }
            req.page_token = page.next_page_token;
        }
        let mut devices: Vec<pb::DeviceSummary> = by_id.into_values().collect();
        devices.sort_by_cached_key(|d| (d.hostname.to_lowercase(), d.device_id.clone()));
        Ok(devices)
    }

    /// Finds one device and its latest report.
    pub async fn get_device(&mut self, query: &str) -> anyhow::Result<pb::GetDeviceResponse> {
        let req = pb::GetDeviceRequest { query: query.to_owned() };
        Ok(self.client.get_device(req).await.map_err(status_error)?.into_inner())
    }

    /// Revokes a device.
    pub async fn revoke_device(&mut self, query: &str, reason: &str) -> anyhow::Result<pb::DeviceSummary> {
        let req = pb::RevokeDeviceRequest { query: query.to_owned(), reason: reason.to_owned() };
        let res = self.client.revoke_device(req).await.map_err(status_error)?.into_inner();
        match res.device {
            Some(device) => Ok(device),
            None => bail!("the server's answer has no device"),
        }
    }
}

/// Turns a refusal into an error that says what the server said.
fn status_error(status: tonic::Status) -> anyhow::Error {
    let code = match status.code() {
        tonic::Code::PermissionDenied => "permission denied",
        tonic::Code::Unauthenticated => "not authenticated",
        tonic::Code::NotFound => "not found",
        tonic::Code::InvalidArgument => "invalid argument",
        tonic::Code::FailedPrecondition => "refused",
        tonic::Code::Unavailable => "server unavailable",
        _ => "server error",
    };
    if matches!(status.code(), tonic::Code::Unknown | tonic::Code::Cancelled) && status.message().contains("transport")
    {
        return anyhow::anyhow!(
            "the connection failed: {}; check --server, and that the identity in --identity was issued by this \
             server's CA and has not expired",
            custodian_proto::channel::describe_status(&status)
        );
    }
    anyhow::anyhow!("{code}: {}", custodian_proto::channel::describe_status(&status))
}

/// Parses `--ttl` for an enrolment token (`30m`, `24h`, `7d`). The server
/// counts whole seconds, and `0` would ask it for its default, so anything
/// under a second is refused rather than turned into a token that has
/// expired by the time it is read out.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if ttl < Duration::from_secs(1) {
        return Err(format!("{text} is too short: a token must stay valid for at least 1s"));
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests;
