//! Checkpoint signing tests: exactly every N events, hourly, and no re-signing after a restart.

use super::*;
use ed25519_dalek::SigningKey;

#[test]
fn the_follower_signs_at_every_multiple_of_n_and_hourly() {
    use crate::audit::event::{AuditEvent, EventKind};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let signer = CheckpointSigner::new(SigningKey::from_bytes(&[1; 32]));
    let policy = CheckpointPolicy { every_events: 10, interval: Duration::from_secs(3600) };
    let append = |n: usize| {
        for _ in 0..n {
            store.record_event(AuditEvent::new(1, "server", EventKind::NoteAdded, None)).unwrap();
        }
    };
    let mut follower = Follower::default();
    append(25);
    let sizes = |signed: Vec<StoredCheckpoint>| signed.iter().map(|c| c.size).collect::<Vec<_>>();
    assert_eq!(sizes(follower.step(&store, &signer, policy, 1_000).unwrap()), [10, 20]);
    assert_eq!(sizes(follower.step(&store, &signer, policy, 2_000).unwrap()), Vec::<u64>::new());
    append(5);
    assert_eq!(sizes(follower.step(&store, &signer, policy, 3_000).unwrap()), [30]);
    // An hour after the latest checkpoint, the head is signed even without a multiple of N.
    append(3);
    assert_eq!(sizes(follower.step(&store, &signer, policy, 3_000 + 3_600_000).unwrap()), [33]);
    // A restarted follower re-reads the log but does not sign old sizes again.
    let mut restarted = Follower::default();
    assert_eq!(sizes(restarted.step(&store, &signer, policy, 3_700_000).unwrap()), Vec::<u64>::new());
    let all: Vec<u64> = store.checkpoints().unwrap().iter().map(|c| c.size).collect();
    assert_eq!(all, [10, 20, 30, 33]);
    // Each checkpoint's root is the tree of exactly that many events.
    let leaves = store.audit_leaf_hashes(33).unwrap();
    for checkpoint in store.checkpoints().unwrap() {
        let parsed = crate::audit::checkpoint::Checkpoint::parse(checkpoint.text.as_bytes()).unwrap();
        assert_eq!(parsed.root, crate::audit::merkle::root(&leaves[..checkpoint.size as usize]));
    }
}
