//! Tests for the envelope log.

use super::*;

#[test]
fn appended_envelopes_read_back_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let log = EnvelopeLog::open(dir.path()).unwrap();
    let first = log.append_durable(&[b"one".as_slice(), b"", b"three"]).unwrap();
    assert_eq!(first.iter().map(|p| p.len).collect::<Vec<_>>(), [3, 0, 5]);
    drop(log);
    let log = EnvelopeLog::open(dir.path()).unwrap();
    let second = log.append_durable(&[b"four".as_slice()]).unwrap();
    assert!(second[0].offset > first[2].offset, "appends continue after what is there");
    for (pointer, want) in first.iter().chain(&second).zip([&b"one"[..], b"", b"three", b"four"]) {
        assert_eq!(log.read(*pointer).unwrap(), want);
        assert_eq!(Pointer::from_bytes(&pointer.to_bytes()), Some(*pointer));
    }
    assert_eq!(Pointer::from_bytes(&[0; 11]), None);
}

#[test]
fn a_damaged_or_wrong_pointer_is_an_error_not_other_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = EnvelopeLog::open(dir.path()).unwrap();
    let pointers = log.append_durable(&[b"first envelope".as_slice(), b"second envelope"]).unwrap();
    // A pointer into the middle of a record, one past the end, one with the wrong length.
    for pointer in [
        Pointer { offset: pointers[0].offset + 1, len: pointers[0].len },
        Pointer { offset: pointers[1].offset + 100, len: 3 },
        Pointer { offset: pointers[0].offset, len: pointers[0].len - 1 },
    ] {
        assert!(matches!(log.read(pointer), Err(StoreError::Decode { tree: "envelopes", .. })), "{pointer:?}");
    }
    // A flipped byte in the stored envelope fails its CRC.
    let path = dir.path().join("envelopes").join("log");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = (pointers[1].offset + HEADER) as usize;
    bytes[at] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let err = log.read(pointers[1]).unwrap_err().to_string();
    assert!(err.contains("CRC-32"), "{err}");
    assert_eq!(log.read(pointers[0]).unwrap(), b"first envelope");
}

#[test]
fn a_torn_last_record_is_skipped_by_later_appends() {
    // A crash mid-append leaves bytes no pointer names; the next append goes after them.
    let dir = tempfile::tempdir().unwrap();
    let log = EnvelopeLog::open(dir.path()).unwrap();
    let kept = log.append_durable(&[b"kept".as_slice()]).unwrap()[0];
    drop(log);
    let path = dir.path().join("envelopes").join("log");
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&[0, 0, 0, 9, 1, 2]).unwrap();
    drop(file);
    let log = EnvelopeLog::open(dir.path()).unwrap();
    let next = log.append_durable(&[b"next".as_slice()]).unwrap()[0];
    assert_eq!((log.read(kept).unwrap(), log.read(next).unwrap()), (b"kept".to_vec(), b"next".to_vec()));
}

#[test]
fn an_append_that_failed_part_way_does_not_shift_later_pointers() {
    // A full disk or a failed sync can leave part of an append's records in
    // the file with no pointer naming them, without the log being reopened:
    // the next append's pointers must still name its own bytes.
    let dir = tempfile::tempdir().unwrap();
    let log = EnvelopeLog::open(dir.path()).unwrap();
    let kept = log.append_durable(&[b"kept".as_slice()]).unwrap()[0];
    let path = dir.path().join("envelopes").join("log");
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&[0, 0, 0, 40, 9, 9, 9, 9, b'p', b'a', b'r', b't']).unwrap();
    drop(file);
    let next = log.append_durable(&[b"next".as_slice(), b"and after"]).unwrap();
    assert_eq!(log.read(kept).unwrap(), b"kept");
    assert_eq!(log.read(next[0]).unwrap(), b"next");
    assert_eq!(log.read(next[1]).unwrap(), b"and after");
}
