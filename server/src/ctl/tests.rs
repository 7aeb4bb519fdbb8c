//! Tests for custodianctl's argument parsing.

use super::*;

#[test]
fn a_token_lifetime_is_a_second_or_more() {
    assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
    assert_eq!(parse_ttl("1s"), Ok(Duration::from_secs(1)));
    assert_eq!(parse_ttl("0s"), Err("0s is too short: a token must stay valid for at least 1s".to_owned()));
    assert!(parse_ttl("500ms").is_err());
    assert!(parse_ttl("banana").is_err());
}
