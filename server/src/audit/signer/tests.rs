//! Checkpoint policy tests.

use super::*;

fn latest(size: u64, time_ms: i64) -> StoredCheckpoint {
    StoredCheckpoint { size, time_ms, text: String::new(), signature: Vec::new() }
}

#[test]
fn due_every_n_events_or_interval() {
    let policy = CheckpointPolicy { every_events: 100, interval: Duration::from_secs(3600) };
    assert!(due(policy, 0, 1, None));
    assert!(!due(policy, 1000, 150, Some(&latest(100, 0))));
    assert!(due(policy, 1000, 200, Some(&latest(100, 0))));
    assert!(due(policy, 3_600_000, 101, Some(&latest(100, 0))));
    // Hourly even without new events: a fresh signature on the same head.
    assert!(due(policy, 3_600_000, 100, Some(&latest(100, 0))));
}
