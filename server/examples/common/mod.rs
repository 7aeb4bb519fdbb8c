//! What the store-level benchmarks share: a signed report as the Agent
//! handler hands it to the store (the store does not check signatures; the
//! signature is real anyway).

use custodian_proto::envelope::{REPORT_PAYLOAD_TYPE, sign};
use custodian_proto::v1 as pb;
use custodian_server::store::{IncomingReport, ReportContent, StoredEnvelope};
use ed25519_dalek::SigningKey;

/// `report`, whose encoding (perhaps padded) is `payload`, signed with `key`
/// and received at time 3, with its inventory as the content and `serial`
/// as the system serial.
pub(crate) fn incoming(
    key: &SigningKey,
    report: &pb::Report,
    payload: Vec<u8>,
    serial: Option<String>,
) -> IncomingReport {
    let envelope = sign(key, REPORT_PAYLOAD_TYPE, payload);
    let inventory = report.inventory.clone().unwrap_or_default();
    IncomingReport {
        device_id: report.device_id.parse().expect("the report names a device id"),
        seq: report.seq,
        hostname: inventory.hostname.clone(),
        serial,
        vendor: None,
        model: None,
        envelope: StoredEnvelope {
            payload: envelope.payload,
            payload_type: envelope.payload_type,
            signature: envelope.signature,
            received_at_ms: 3,
        },
        content: ReportContent::Inventory { inventory: Box::new(inventory), sha256: [7; 32] },
    }
}
