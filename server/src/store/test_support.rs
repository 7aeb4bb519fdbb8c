//! Fixtures the store's test modules share: a temporary store, an enrolled
//! device, and signed-looking envelopes and reports (the store never checks
//! signatures; the gRPC layer does).

use custodian_proto::identity::DeviceId;
use custodian_proto::v1 as pb;
use prost::Message;

use super::{DeviceKind, DeviceRecord, IncomingReport, ReportContent, Store, StoredEnvelope, TokenRecord};

/// A store in a fresh temporary directory (kept alive by the returned guard).
pub(super) fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let store = Store::open(&dir.path().join("store")).expect("open a new store");
    (dir, store)
}

/// Enrols a device of `kind` through a fresh token and returns its id.
pub(super) fn enroll(store: &Store, hostname: &str, kind: DeviceKind) -> DeviceId {
    let hash = rand::random::<[u8; 32]>();
    let token = TokenRecord {
        created_at_ms: 1,
        expires_at_ms: i64::MAX,
        created_by: "t".to_owned(),
        site: None,
        used: None,
        asset_tag: None,
        kind,
    };
    store.create_token(&hash, &token).expect("create a token");
    let device_id = DeviceId::random();
    let device = DeviceRecord::enrolled(device_id, [1; 32], hostname, None, 1, i64::MAX);
    let device = store.enroll(&hash, 2, device, None).expect("enrol");
    assert_eq!(device.kind, kind, "the token decides the kind");
    device_id
}

/// An envelope as the store keeps it.
pub(super) fn envelope(payload: Vec<u8>, payload_type: &str, received_at_ms: i64) -> StoredEnvelope {
    StoredEnvelope { payload, payload_type: payload_type.to_owned(), signature: vec![9; 64], received_at_ms }
}

/// A full-inventory report from `ward-pc` listing one disk per serial (`sda`, `sdb`, ...).
pub(super) fn report_with_disks(device_id: DeviceId, seq: u64, disk_serials: &[&str]) -> IncomingReport {
    let storage = disk_serials
        .iter()
        .enumerate()
        .map(|(i, serial)| pb::StorageDevice {
            name: format!("sd{}", (b'a' + i as u8) as char),
            serial: Some(pb::Readable::value(*serial)),
            model: Some(pb::Readable::value("ACME SSD")),
            size_bytes: 256 << 30,
            ..Default::default()
        })
        .collect();
    let inventory = pb::Inventory { hostname: "ward-pc".to_owned(), storage, ..Default::default() };
    let report =
        pb::Report { device_id: device_id.to_string(), seq, inventory: Some(inventory.clone()), ..Default::default() };
    IncomingReport {
        device_id,
        seq,
        envelope: envelope(report.encode_to_vec(), custodian_proto::envelope::REPORT_PAYLOAD_TYPE, seq as i64),
        hostname: "ward-pc".to_owned(),
        serial: None,
        vendor: None,
        model: None,
        content: ReportContent::Inventory { inventory: Box::new(inventory), sha256: [seq as u8; 32] },
    }
}

/// Opens the store at `path` again in the same process. sled releases its
/// file lock from a background thread after the last handle drops, so the
/// first attempts may still find it locked; anything else is returned as is.
pub(super) fn open_when_unlocked(path: &std::path::Path) -> Result<Store, super::StoreError> {
    for _ in 0..200 {
        match Store::open(path) {
            Err(super::StoreError::Locked(_)) => std::thread::sleep(std::time::Duration::from_millis(10)),
            res => return res,
        }
    }
    Store::open(path)
}
