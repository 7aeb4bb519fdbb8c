//! Building and signing every report before the clock starts.
//!
//! Each report is a full `pb::Report` with an inventory, signed with the
//! device's key exactly as `custodian-agent` signs (DSSE PAE + Ed25519 over
//! the exact payload bytes). Today's `Inventory` encodes to a few hundred
//! bytes; a real one (disks, volumes, network, firmware) is nearer 2 KB. To
//! send realistic sizes, the payload is padded with one length-delimited
//! field at a number no schema uses ([`PADDING_FIELD`]). Protobuf decoders
//! skip unknown fields, and the server verifies and stores the bytes
//! verbatim, so the padding costs what real bytes would on the wire, in the
//! signature check and on disk.

use custodian_proto::envelope::{self, REPORT_PAYLOAD_TYPE};
use custodian_proto::v1 as pb;
use prost::Message;

use crate::SubmitReports;
use crate::fixture::Device;

/// The field number of the padding; far above anything `Report` will use.
const PADDING_FIELD: u32 = 15_000;

/// Every device's `SubmitReports` requests in the order it sends them:
/// `n_reports` reports, `batch` per request, sequence numbers from 1.
pub(crate) fn sign_all(
    devices: &[Device],
    n_reports: usize,
    batch: usize,
    payload_bytes: usize,
) -> Vec<Vec<SubmitReports>> {
    let n_threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = devices.len().div_ceil(n_threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = devices
            .chunks(chunk)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk.iter().map(|device| sign_device(device, n_reports, batch, payload_bytes)).collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|worker| worker.join().expect("signing does not panic")).collect()
    })
}

fn sign_device(device: &Device, n_reports: usize, batch: usize, payload_bytes: usize) -> Vec<SubmitReports> {
    let inventory = inventory(device);
    let envelopes: Vec<pb::SignedEnvelope> =
        (1..=n_reports as u64).map(|seq| sign_one(device, &inventory, seq, payload_bytes)).collect();
    envelopes.chunks(batch).map(|chunk| SubmitReports { envelopes: chunk.to_vec() }).collect()
}

/// One signed report from `device` with sequence number `seq`.
pub(crate) fn sign_report(device: &Device, seq: u64, payload_bytes: usize) -> pb::SignedEnvelope {
    sign_one(device, &inventory(device), seq, payload_bytes)
}

// The struct updates keep this compiling as the schema grows (issue 3 adds
// inventory sections and heartbeats, all left at their defaults here).
#[allow(clippy::needless_update)]
fn sign_one(device: &Device, inventory: &pb::Inventory, seq: u64, payload_bytes: usize) -> pb::SignedEnvelope {
    let report = pb::Report {
        device_id: device.device_id.to_string(),
        seq,
        collected_at_ms: custodian_proto::now_ms(),
        agent_version: custodian_agent::AGENT_VERSION.to_owned(),
        inventory: Some(inventory.clone()),
        ..Default::default()
    };
    envelope::sign(&device.key.signing, REPORT_PAYLOAD_TYPE, padded(&report, payload_bytes))
}

/// `report`'s encoding, padded up to about `payload_bytes`.
fn padded(report: &pb::Report, payload_bytes: usize) -> Vec<u8> {
    let mut payload = report.encode_to_vec();
    // Field key (3 bytes) and length prefix (2 bytes up to 16 KiB).
    let overhead = 5;
    if let Some(padding_len) = payload_bytes.checked_sub(payload.len() + overhead) {
        let padding: Vec<u8> = b"storage/volumes/network/firmware ".iter().copied().cycle().take(padding_len).collect();
        prost::encoding::bytes::encode(PADDING_FIELD, &padding, &mut payload);
    }
    payload
}

#[allow(clippy::needless_update)]
fn inventory(device: &Device) -> pb::Inventory {
    pb::Inventory {
        hostname: device.hostname.clone(),
        os: Some(pb::OsInfo {
            name: Some(pb::Readable::value("Debian GNU/Linux")),
            version: Some(pb::Readable::value("12 (bookworm)")),
            kernel: Some(pb::Readable::value("6.1.0-28-amd64")),
        }),
        cpu: Some(pb::CpuInfo {
            model: Some(pb::Readable::value("Intel(R) Core(TM) i5-10500T CPU @ 2.30GHz")),
            cores: 6,
            threads: 12,
        }),
        memory: Some(pb::MemoryInfo { total_bytes: 16_484_192_256, ..Default::default() }),
        system: Some(pb::SystemInfo {
            vendor: Some(pb::Readable::value("HP")),
            model: Some(pb::Readable::value("HP ProDesk 400 G6 Desktop Mini PC")),
            serial: Some(pb::Readable::value(device.serial.clone())),
            ..Default::default()
        }),
        ..Default::default()
    }
}
