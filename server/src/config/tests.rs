//! Tests for the server configuration.

use super::*;

#[test]
fn the_default_file_parses_to_the_defaults() {
    let config = Config::from_toml(DEFAULT_CONFIG).unwrap();
    let defaults = Config::default();
    assert_eq!(config.listen, defaults.listen);
    assert_eq!(config.device_cert_lifetime, defaults.device_cert_lifetime);
    assert_eq!(config.enrollment_token_ttl, defaults.enrollment_token_ttl);
}

#[test]
fn an_unknown_key_fails_closed() {
    let err = Config::from_toml("lisen = \"0.0.0.0:1\"").unwrap_err();
    assert!(format!("{err:#}").contains("unknown field `lisen`"), "{err:#}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = Config::from_toml("listen = \"nowhere\"\ndevice_cert_lifetime = \"0s\"\nenrollment_token_ttl = \"soon\"")
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("listen:"), "{text}");
    assert!(text.contains("device_cert_lifetime: must be greater than zero"), "{text}");
    assert!(text.contains("enrollment_token_ttl:"), "{text}");
}
