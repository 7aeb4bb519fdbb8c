//! An in-process client speaking the wire protocol directly with an
//! enrolled device's key and certificate, to send what the real agent never
//! would: tampered payloads, bad signatures, replays, reports naming another
//! device, operator calls with a device certificate.

use std::path::Path;

use custodian_agent::keys::DeviceKey;
use custodian_agent::state::StateDir;
use custodian_proto::channel::{ClientIdentity, connect};
use custodian_proto::envelope::{self, REPORT_PAYLOAD_TYPE};
use custodian_proto::identity::DeviceId;
use custodian_proto::v1 as pb;
use ed25519_dalek::SigningKey;
use pb::agent_client::AgentClient;
use pb::operator_client::OperatorClient;
use prost::Message;
use tonic::transport::Channel;

use crate::TIMEOUT;

/// An enrolled device's identity, read from an agent state directory.
#[derive(Clone)]
pub struct DeviceCredentials {
    /// The device's id.
    pub device_id: DeviceId,
    /// The device's signing key.
    pub key: SigningKey,
    key_pem: String,
    cert_pem: String,
    ca_pem: String,
}

impl DeviceCredentials {
    /// Reads the key, certificate, CA and device id from `state_dir`.
    pub fn load(state_dir: &Path) -> Self {
        let state = StateDir::new(state_dir);
        let enrollment = state.load_enrollment().expect("the agent is enrolled");
        let key = DeviceKey::load(&state).expect("load the device key");
        let cert_pem = state.read(&state.cert()).expect("read the device certificate");
        let ca_pem = state.read(&state.ca()).expect("read the CA certificate");
        Self { device_id: enrollment.device_id, key: key.signing, key_pem: key.pem, cert_pem, ca_pem }
    }

    /// The same device trusting `ca_pem` instead of the CA it enrolled with.
    pub fn trusting(self, ca_pem: String) -> Self {
        Self { ca_pem, ..self }
    }

    /// A report from this device with `seq` and a minimal inventory.
    pub fn report(&self, seq: u64, hostname: &str) -> pb::Report {
        pb::Report {
            device_id: self.device_id.to_string(),
            seq,
            collected_at_ms: custodian_proto::now_ms(),
            agent_version: "e2e-raw".to_owned(),
            inventory: Some(pb::Inventory { hostname: hostname.to_owned(), ..Default::default() }),
            heartbeat: None,
        }
    }

    /// `report` signed with this device's key.
    pub fn sign(&self, report: &pb::Report) -> pb::SignedEnvelope {
        envelope::sign(&self.key, REPORT_PAYLOAD_TYPE, report.encode_to_vec())
    }
}

/// An mTLS connection as an enrolled device.
pub struct RawDevice {
    /// Who is connected.
    pub creds: DeviceCredentials,
    channel: Channel,
}

impl RawDevice {
    /// Connects to `url` with the device's certificate.
    pub async fn connect(url: &str, creds: DeviceCredentials) -> Self {
        let identity = ClientIdentity { cert_pem: &creds.cert_pem, key_pem: &creds.key_pem };
        let channel = tokio::time::timeout(TIMEOUT, connect(url, &creds.ca_pem, Some(identity)))
            .await
            .expect("connecting timed out")
            .expect("connect as the device");
        Self { creds, channel }
    }

    /// Tries to connect; `None` if the server cannot be reached.
    pub async fn try_connect(url: &str, creds: DeviceCredentials) -> Option<Self> {
        let identity = ClientIdentity { cert_pem: &creds.cert_pem, key_pem: &creds.key_pem };
        let channel = tokio::time::timeout(TIMEOUT, connect(url, &creds.ca_pem, Some(identity))).await.ok()?.ok()?;
        Some(Self { creds, channel })
    }

    /// Submits `envelopes` in one call.
    pub async fn submit(&self, envelopes: Vec<pb::SignedEnvelope>) -> Result<Vec<pb::EnvelopeResult>, tonic::Status> {
        let mut client = AgentClient::new(self.channel.clone());
        let call = client.submit_reports(pb::SubmitReportsRequest { envelopes });
        match tokio::time::timeout(TIMEOUT, call).await {
            Ok(res) => res.map(|res| res.into_inner().results),
            Err(_) => Err(tonic::Status::deadline_exceeded("the harness timed out")),
        }
    }

    /// Submits one envelope and returns its result.
    pub async fn submit_one(&self, envelope: pb::SignedEnvelope) -> Result<pb::EnvelopeResult, tonic::Status> {
        let mut results = self.submit(vec![envelope]).await?;
        assert_eq!(results.len(), 1, "one result per envelope");
        Ok(results.remove(0))
    }

    /// An Operator client on the device's connection (which the server must refuse).
    pub fn operator_client(&self) -> OperatorClient<Channel> {
        OperatorClient::new(self.channel.clone())
    }
}

/// A TLS channel that presents no client certificate at all.
pub async fn anonymous_channel(url: &str, ca_pem: &str) -> Channel {
    tokio::time::timeout(TIMEOUT, connect(url, ca_pem, None))
        .await
        .expect("connecting timed out")
        .expect("connect without a client certificate")
}

/// A TLS channel presenting the operator identity in `identity_dir`.
pub async fn operator_channel(url: &str, identity_dir: &Path) -> Channel {
    let read = |name: &str| std::fs::read_to_string(identity_dir.join(name)).expect("read operator identity");
    let (ca, cert, key) = (read("ca.pem"), read("cert.pem"), read("key.pem"));
    tokio::time::timeout(TIMEOUT, connect(url, &ca, Some(ClientIdentity { cert_pem: &cert, key_pem: &key })))
        .await
        .expect("connecting timed out")
        .expect("connect as an operator")
}
