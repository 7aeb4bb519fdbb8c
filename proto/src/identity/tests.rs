//! Tests for certificate identities.

use super::*;

#[track_caller]
fn check_round_trip(identity: Identity) {
    assert_eq!(Identity::from_uri(&identity.uri()), Some(identity));
}

#[test]
fn identities_round_trip_through_their_uris() {
    check_round_trip(Identity::Device(DeviceId::random()));
    for role in Role::ALL {
        check_round_trip(Identity::Operator { name: "jo.bloggs@nhs".parse().unwrap(), role });
    }
}

#[test]
fn foreign_or_malformed_uris_are_not_identities() {
    for uri in [
        "urn:custodian:device:not-a-uuid",
        "urn:custodian:operator:janitor:bob",
        "urn:custodian:operator:admin:",
        "urn:custodian:operator:admin:bad name",
        "spiffe://example.org/device",
        "",
    ] {
        assert_eq!(Identity::from_uri(uri), None, "{uri}");
    }
}

#[test]
fn operator_names_are_restricted() {
    assert!("a".parse::<OperatorName>().is_ok());
    assert!("x".repeat(64).parse::<OperatorName>().is_ok());
    assert!("x".repeat(65).parse::<OperatorName>().is_err());
    assert!("has:colon".parse::<OperatorName>().is_err());
    assert!("".parse::<OperatorName>().is_err());
}
