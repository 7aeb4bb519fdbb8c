//! Audit event encoding tests.

use super::*;

#[test]
fn encoding_is_one_compact_line_in_field_order() {
    let device_id: DeviceId = "0a0b0c0d-0000-4000-8000-000000000001".parse().unwrap();
    let mut event =
        AuditEvent::new(1_700_000_000_000, "alice (engineer)", EventKind::DeviceTransitioned, Some(device_id))
            .with_reason("rollout")
            .with_detail("site", "ward 7");
    event.seq = 42;
    event.from = Some("staged".to_owned());
    event.to = Some("deployed".to_owned());
    event.evidence.push(Evidence::of("report_payload", b"abc"));
    let text = String::from_utf8(event.to_bytes()).unwrap();
    assert_eq!(
        text,
        r#"{"v":1,"seq":42,"time_ms":1700000000000,"actor":"alice (engineer)","kind":"device_transitioned","device_id":"0a0b0c0d-0000-4000-8000-000000000001","from":"staged","to":"deployed","reason":"rollout","evidence":[{"name":"report_payload","sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}],"details":{"site":"ward 7"}}"#
    );
    assert_eq!(AuditEvent::from_bytes(text.as_bytes()).unwrap(), event);
}

#[test]
fn absent_fields_are_omitted() {
    let event = AuditEvent::new(5, "server", EventKind::TokenCreated, None);
    assert_eq!(
        String::from_utf8(event.to_bytes()).unwrap(),
        r#"{"v":1,"seq":0,"time_ms":5,"actor":"server","kind":"token_created"}"#
    );
}
