//! Fixtures the gRPC layer's tests share: a temporary store, an enrolled
//! device and the inventory reports it sends (the store never checks
//! signatures).

use custodian_proto::identity::DeviceId;
use custodian_proto::v1 as pb;

use crate::store::{DeviceKind, DeviceRecord, IncomingReport, ReportContent, Store, StoredEnvelope, TokenRecord};

/// A time well after every fixture's enrolment, Unix ms.
pub(crate) const NOW: i64 = 1_800_000_000_000;

/// A store in a fresh temporary directory (kept alive by the returned guard).
pub(crate) fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let store = Store::open(&dir.path().join("store")).expect("open a new store");
    (dir, store)
}

/// Enrols a workstation (`staged`) through a fresh token and returns its id.
pub(crate) fn enroll(store: &Store, hostname: &str) -> DeviceId {
    let token_hash = rand::random::<[u8; 32]>();
    let token = TokenRecord {
        created_at_ms: 1,
        expires_at_ms: i64::MAX,
        created_by: "eve (engineer)".to_owned(),
        site: Some("site-9".to_owned()),
        used: None,
        asset_tag: None,
        kind: DeviceKind::Workstation,
    };
    store.create_token(&token_hash, &token).expect("create a token");
    let device = DeviceRecord::enrolled(DeviceId::random(), [1; 32], hostname, None, NOW, i64::MAX);
    store.enroll(&token_hash, NOW, device, None).expect("enrol").device_id
}

/// A full-inventory report listing one disk, `sda`, with one data volume,
/// `sda2`, encrypted or not, that arrived at `received_at_ms`.
pub(crate) fn inventory_report(device_id: DeviceId, seq: u64, received_at_ms: i64, encrypted: bool) -> IncomingReport {
    let state = if encrypted { pb::EncryptionState::Encrypted } else { pb::EncryptionState::NotEncrypted };
    let inventory = pb::Inventory {
        hostname: "ward-pc".to_owned(),
        storage: vec![pb::StorageDevice {
            name: "sda".to_owned(),
            volumes: vec![pb::Volume {
                name: "sda2".to_owned(),
                holds_data: true,
                encryption: Some(pb::Encryption { state: state.into(), ..Default::default() }),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    IncomingReport {
        device_id,
        seq,
        envelope: StoredEnvelope {
            payload: seq.to_be_bytes().to_vec(),
            payload_type: "t".to_owned(),
            signature: vec![9; 64],
            received_at_ms,
        },
        hostname: "ward-pc".to_owned(),
        serial: None,
        vendor: None,
        model: None,
        content: ReportContent::Inventory { inventory: Box::new(inventory), sha256: [u8::from(encrypted); 32] },
    }
}
