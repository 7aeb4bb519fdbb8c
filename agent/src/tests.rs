//! Tests for what the agent spools: full inventories when they change,
//! heartbeats when they do not.

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
    let state = StateDir::new(dir.path());
    let key = DeviceKey::load_or_generate(&state).unwrap();
    let enrollment = Enrollment {
        server: "https://127.0.0.1:1".to_owned(),
        device_id: DeviceId::random(),
        cert_issued_at_ms: 0,
        cert_not_after_ms: i64::MAX,
    };
    let agent = Agent { spool: Spool::open(&state.spool()).unwrap(), state, enrollment, key };
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
