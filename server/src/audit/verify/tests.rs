//! Offline verification tests: a clean export verifies; each kind of
//! tampering is reported at the right sequence number; a checkpoint changed
//! by one byte fails the real `openssl`; a rewritten, re-signed history fails
//! against a checkpoint kept from before.

use std::path::Path;
use std::process::Command;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;

use super::*;
use crate::audit::checkpoint::origin_for;
use crate::audit::event::{AuditEvent, EventKind};
use crate::audit::export::{ExportWriter, checkpoint_file_name};

fn key() -> SigningKey {
    SigningKey::from_bytes(&[3; 32])
}

fn events(n: u64, label: &str) -> Vec<Vec<u8>> {
    (0..n)
        .map(|seq| {
            let mut event =
                AuditEvent::new(1_700_000_000_000 + seq as i64, "alice (engineer)", EventKind::NoteAdded, None)
                    .with_reason(format!("{label} note {seq}"));
            event.seq = seq;
            event.to_bytes()
        })
        .collect()
}

/// Writes an export of `events` with a checkpoint every `every` events and
/// one at the end.
fn write_export(dir: &Path, events: &[Vec<u8>], every: u64) {
    let key = key();
    let pem = key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
    let mut writer = ExportWriter::create(dir, &pem).unwrap();
    let mut frontier = Frontier::default();
    for (i, bytes) in events.iter().enumerate() {
        let hash = leaf_hash(bytes);
        writer.push_event(&hash, bytes).unwrap();
        frontier.push(hash);
        if frontier.size % every == 0 || i + 1 == events.len() {
            let checkpoint = Checkpoint {
                origin: origin_for(&key.verifying_key()),
                size: frontier.size,
                root: frontier.root(),
                time_ms: 1_700_000_000_000 + i as i64,
            };
            let (text, sig) = checkpoint.sign(&key);
            writer.add_checkpoint(checkpoint.size, checkpoint.time_ms, text.as_bytes(), &sig).unwrap();
        }
    }
    writer.finish().unwrap();
}

fn rewrite_events(dir: &Path, change: impl FnOnce(&mut Vec<Vec<u8>>)) {
    let path = dir.join(EVENTS_FILE);
    let text = std::fs::read(&path).unwrap();
    let mut lines: Vec<Vec<u8>> =
        text.strip_suffix(b"\n").unwrap().split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    change(&mut lines);
    let mut out = lines.join(&b'\n');
    out.push(b'\n');
    std::fs::write(path, out).unwrap();
}

#[track_caller]
fn check_first_problem_at(change: impl FnOnce(&mut Vec<Vec<u8>>), seq: u64) {
    let dir = tempfile::tempdir().unwrap();
    write_export(dir.path(), &events(40, "real"), 8);
    rewrite_events(dir.path(), change);
    let outcome = verify_export(dir.path(), None).unwrap();
    assert!(!outcome.is_ok());
    assert_eq!(outcome.problems[0].seq, Some(seq), "{:#?}", outcome.problems);
}

#[test]
fn clean_export_verifies() {
    let dir = tempfile::tempdir().unwrap();
    write_export(dir.path(), &events(40, "real"), 8);
    let outcome = verify_export(dir.path(), None).unwrap();
    assert!(outcome.is_ok(), "{:#?}", outcome.problems);
    assert_eq!(outcome.n_events, 40);
    assert_eq!(outcome.n_checkpoints_ok, 5);
    assert_eq!(outcome.latest_checkpoint_size, Some(40));
}

#[test]
fn a_flipped_byte_is_reported_at_its_seq() {
    check_first_problem_at(
        |lines| {
            let at = lines[13].iter().position(|b| *b == b'a').unwrap();
            lines[13][at] = b'b';
        },
        13,
    );
}

#[test]
fn a_flipped_byte_that_breaks_json_is_reported_at_its_seq() {
    check_first_problem_at(|lines| lines[21][0] = b'[', 21);
}

#[test]
fn a_deleted_event_is_reported_at_its_seq() {
    check_first_problem_at(
        |lines| {
            lines.remove(17);
        },
        17,
    );
}

#[test]
fn the_last_event_deleted_is_reported() {
    check_first_problem_at(
        |lines| {
            lines.pop();
        },
        39,
    );
}

#[test]
fn an_inserted_event_is_reported_at_its_seq() {
    check_first_problem_at(|lines| lines.insert(9, events(40, "forged")[9].clone()), 9);
    check_first_problem_at(|lines| lines.insert(9, events(40, "real")[30].clone()), 9);
}

#[test]
fn swapped_events_are_reported_at_the_first() {
    check_first_problem_at(|lines| lines.swap(25, 26), 25);
}

#[test]
fn rewritten_leaf_hashes_are_caught_by_the_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let real = events(40, "real");
    write_export(dir.path(), &real, 8);
    // Change event 20 and its recorded hash together: only the signed
    // checkpoints can tell, to within the checkpoint interval.
    let mut forged = real.clone();
    forged[20] = events(40, "forged")[20].clone();
    let hashes: Vec<u8> = forged.iter().flat_map(|e| leaf_hash(e)).collect();
    std::fs::write(dir.path().join(LEAF_HASHES_FILE), hashes).unwrap();
    rewrite_events(dir.path(), |lines| lines[20] = forged[20].clone());
    let outcome = verify_export(dir.path(), None).unwrap();
    assert_eq!(outcome.problems[0].seq, Some(16), "{:#?}", outcome.problems);
    assert!(outcome.problems[0].message.contains("from seq 16 to 23"), "{}", outcome.problems[0]);
}

#[test]
fn rewritten_and_resigned_history_fails_against_a_kept_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let real = events(40, "real");
    write_export(dir.path(), &real, 8);
    let kept_dir = tempfile::tempdir().unwrap();
    let kept = kept_dir.path().join("kept");
    let name = dir.path().join(CHECKPOINTS_DIR).join(checkpoint_file_name(24, 1_700_000_000_023));
    std::fs::copy(&name, &kept).unwrap();
    assert!(verify_export(dir.path(), Some(&kept)).unwrap().is_ok());

    // Whoever holds the server's key rewrites history from seq 10 onwards and
    // signs fresh checkpoints: on its own, the forged export verifies.
    let mut forged = real[..10].to_vec();
    forged.extend(events(40, "forged").into_iter().skip(10));
    let forged_dir = tempfile::tempdir().unwrap();
    write_export(forged_dir.path(), &forged, 8);
    assert!(verify_export(forged_dir.path(), None).unwrap().is_ok());
    let outcome = verify_export(forged_dir.path(), Some(&kept)).unwrap();
    assert_eq!(outcome.problems.len(), 1, "{:#?}", outcome.problems);
    assert!(outcome.problems[0].message.contains("not consistent with the kept checkpoint"));

    // Truncating below the kept checkpoint is caught too.
    let short_dir = tempfile::tempdir().unwrap();
    write_export(short_dir.path(), &real[..20], 8);
    let outcome = verify_export(short_dir.path(), Some(&kept)).unwrap();
    assert!(outcome.problems.iter().any(|p| p.message.contains("truncated")), "{:#?}", outcome.problems);
}

#[test]
fn checkpoints_verify_with_openssl_and_one_changed_byte_fails() {
    let dir = tempfile::tempdir().unwrap();
    write_export(dir.path(), &events(10, "real"), 8);
    let checkpoint = dir.path().join(CHECKPOINTS_DIR).join(checkpoint_file_name(10, 1_700_000_000_009));
    let openssl = |file: &Path| {
        let mut sig = file.to_owned().into_os_string();
        sig.push(".sig");
        Command::new("openssl")
            .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
            .arg(dir.path().join(PUBLIC_KEY_FILE))
            .arg("-rawin")
            .arg("-in")
            .arg(file)
            .arg("-sigfile")
            .arg(&sig)
            .output()
            .expect("openssl runs")
    };
    let out = openssl(&checkpoint);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Signature Verified Successfully"));

    let mut bytes = std::fs::read(&checkpoint).unwrap();
    bytes[18] ^= 0x01;
    std::fs::write(&checkpoint, bytes).unwrap();
    assert!(!openssl(&checkpoint).status.success());
    let outcome = verify_export(dir.path(), None).unwrap();
    assert!(outcome.problems.iter().any(|p| p.message.contains("does not verify")), "{:#?}", outcome.problems);
}

#[test]
fn inclusion_proofs_verify_and_tampering_fails() {
    use base64::Engine;
    let key = key();
    let events = events(13, "real");
    let leaves: Vec<Hash> = events.iter().map(|e| leaf_hash(e)).collect();
    let checkpoint = Checkpoint {
        origin: origin_for(&key.verifying_key()),
        size: 13,
        root: crate::audit::merkle::root(&leaves),
        time_ms: 1,
    };
    let (text, sig) = checkpoint.sign(&key);
    let proof = InclusionProof {
        seq: 6,
        event: String::from_utf8(events[6].clone()).unwrap(),
        checkpoint: text,
        checkpoint_signature: base64::engine::general_purpose::STANDARD.encode(sig),
        path: crate::audit::merkle::inclusion_proof(&leaves, 6).unwrap().iter().map(hex::encode).collect(),
    };
    assert_eq!(proof.verify(&key.verifying_key()), Ok(checkpoint));
    let mut bad = proof.clone();
    bad.event = bad.event.replace("note 6", "note 7");
    assert_eq!(bad.verify(&key.verifying_key()), Err(VerifyProofError::NotIncluded));
    let mut bad = proof.clone();
    bad.checkpoint = bad.checkpoint.replace("\n13\n", "\n14\n");
    assert_eq!(bad.verify(&key.verifying_key()), Err(VerifyProofError::Signature));
    assert_eq!(proof.verify(&SigningKey::from_bytes(&[4; 32]).verifying_key()), Err(VerifyProofError::Signature));
}

#[test]
fn a_directory_that_is_not_an_export_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let err = verify_export(dir.path(), None).unwrap_err().to_string();
    assert!(err.contains("is not an audit export"), "{err}");
    assert!(err.contains("custodianctl audit export DIR"), "{err}");
    let err = verify_export(&dir.path().join("absent"), None).unwrap_err().to_string();
    assert!(err.contains("is not a directory"), "{err}");
    // An export whose key was removed is still reported by the file missing.
    write_export(dir.path(), &events(4, "real"), 2);
    std::fs::remove_file(dir.path().join(PUBLIC_KEY_FILE)).unwrap();
    let err = format!("{:#}", verify_export(dir.path(), None).unwrap_err());
    assert!(err.contains(PUBLIC_KEY_FILE) && !err.contains("not an audit export"), "{err}");
}
