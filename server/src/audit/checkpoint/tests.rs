//! Checkpoint format tests.

use super::*;

fn sample() -> Checkpoint {
    Checkpoint {
        origin: "custodian.audit/0123456789abcdef".to_owned(),
        size: 42,
        root: [7; 32],
        time_ms: 1_700_000_000_000,
    }
}

#[test]
fn text_round_trips() {
    let text = sample().to_text();
    assert_eq!(
        text,
        "custodian.audit/0123456789abcdef\n42\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\ntime 1700000000000\n"
    );
    assert_eq!(Checkpoint::parse(text.as_bytes()).unwrap(), sample());
}

#[test]
fn non_canonical_or_damaged_text_is_refused() {
    let text = sample().to_text();
    assert_eq!(Checkpoint::parse(text.trim_end().as_bytes()), Err(ParseCheckpointError::Shape));
    assert_eq!(Checkpoint::parse(text.replace("\n42\n", "\n042\n").as_bytes()), Err(ParseCheckpointError::Shape));
    assert!(matches!(
        Checkpoint::parse(text.replace("\n42\n", "\n4x\n").as_bytes()),
        Err(ParseCheckpointError::Size(_))
    ));
    assert!(matches!(Checkpoint::parse(text.replace("time", "tim").as_bytes()), Err(ParseCheckpointError::Time(_))));
    assert!(matches!(
        Checkpoint::parse(text.replace("custodian", "other").as_bytes()),
        Err(ParseCheckpointError::Origin(_))
    ));
}

#[test]
fn signature_covers_every_byte() {
    let key = SigningKey::from_bytes(&[9; 32]);
    let (text, signature) = sample().sign(&key);
    assert!(verify_signature(&key.verifying_key(), text.as_bytes(), &signature));
    let mut changed = text.clone().into_bytes();
    changed[20] ^= 1;
    assert!(!verify_signature(&key.verifying_key(), &changed, &signature));
    assert!(!verify_signature(&key.verifying_key(), text.as_bytes(), &signature[..63]));
}
