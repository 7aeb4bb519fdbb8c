//! Tests for what the agent spools: full inventories when they change,
//! heartbeats when they do not, and each wipe attested once.

use std::cell::RefCell;

use super::*;

/// An inventory source whose hostname the test changes.
struct Fixed(RefCell<String>);

impl InventorySource for Fixed {
    fn collect(&self) -> pb::Inventory {
        pb::Inventory { hostname: self.0.borrow().clone(), ..Default::default() }
    }
}

fn decode(spool: &Spool, seq: u64) -> pb::Report {
    let (_, envelope) = spool.pending(100).unwrap().into_iter().find(|(s, _)| *s == seq).unwrap();
    pb::Report::decode(envelope.payload.as_slice()).unwrap()
}

#[test]
fn a_full_inventory_then_heartbeats_until_it_changes_or_the_server_asks() {
    let dir = tempfile::tempdir().unwrap();
    let agent = test_agent(dir.path());
    let source = Fixed(RefCell::new("ward7-pc03".to_owned()));

    assert_eq!(agent.spool_report(&source).unwrap(), Spooled::Inventory { seq: 1 });
    assert_eq!(agent.spool_report(&source).unwrap(), Spooled::Heartbeat { seq: 2 });
    let heartbeat = decode(&agent.spool, 2);
    assert_eq!(heartbeat.inventory, None);
    assert_eq!(heartbeat.heartbeat.unwrap().inventory_sha256, collect::inventory_sha256(&source.collect()).to_vec());

    *source.0.borrow_mut() = "ward7-pc04".to_owned();
    assert_eq!(agent.spool_report(&source).unwrap(), Spooled::Inventory { seq: 3 });
    assert_eq!(decode(&agent.spool, 3).inventory.unwrap().hostname, "ward7-pc04");
    assert_eq!(agent.spool_report(&source).unwrap(), Spooled::Heartbeat { seq: 4 });

    // What the uplink does when the server answers `send_full_inventory`.
    agent.spool.set_inventory_sha256(None).unwrap();
    assert_eq!(agent.spool_report(&source).unwrap(), Spooled::Inventory { seq: 5 });
}

fn test_agent(dir: &std::path::Path) -> Agent {
    let state = StateDir::new(dir);
    let key = DeviceKey::load_or_generate(&state).unwrap();
    let enrollment = Enrollment {
        server: "https://127.0.0.1:1".to_owned(),
        device_id: DeviceId::random(),
        cert_issued_at_ms: 0,
        cert_not_after_ms: i64::MAX,
    };
    Agent { spool: Spool::open(&state.spool()).unwrap(), state, enrollment, key }
}

fn wipe_of(device_path: &str, started_at_ms: i64, outcome: Option<pb::WipeOutcome>) -> pb::WipeAttestation {
    pb::WipeAttestation {
        device_path: device_path.to_owned(),
        started_at_ms,
        finished_at_ms: started_at_ms + 1000,
        result: outcome.map(|o| pb::WipeResult { outcome: o.into(), ..Default::default() }),
        ..Default::default()
    }
}

#[test]
fn a_marker_left_after_its_result_was_spooled_is_not_attested_again() {
    let dir = tempfile::tempdir().unwrap();
    let agent = test_agent(dir.path());
    let marker = wipe::attestation::marker_path(&agent.state);
    // The power went after the passed result was spooled, before the marker was removed.
    wipe::attestation::write_marker(&marker, &wipe_of("/dev/sdb", 1_000, None)).unwrap();
    agent.spool_attestation(&wipe_of("/dev/sdb", 1_000, Some(pb::WipeOutcome::Passed))).unwrap();
    assert_eq!(agent.recover_interrupted_wipe().unwrap(), None);
    assert!(!marker.exists());
    assert_eq!(agent.spool.len(), 1, "only the passed result");

    // A later wipe that really was cut short is attested as interrupted.
    wipe::attestation::write_marker(&marker, &wipe_of("/dev/sdb", 9_000, None)).unwrap();
    assert_eq!(agent.recover_interrupted_wipe().unwrap(), Some(2));
    assert!(!marker.exists());
    assert_eq!(agent.spool.len(), 2);
}
