//! Tests for opening channels: what is refused before any connection.

use super::*;

#[test]
fn a_ca_file_that_is_not_pem_is_refused_before_connecting() {
    let err = endpoint("https://127.0.0.1:1", "ward7-pc01\n", None).unwrap_err();
    assert!(matches!(err, ConnectError::BadCa { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "the CA certificate given is not usable: it holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)"
    );
    assert!(matches!(endpoint("https://127.0.0.1:1", "", None), Err(ConnectError::BadCa { .. })));
}

#[test]
fn a_ca_block_that_does_not_decode_is_refused() {
    let broken = "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
    let err = endpoint("https://127.0.0.1:1", broken, None).unwrap_err();
    assert!(err.to_string().starts_with("the CA certificate given is not usable: it is not valid PEM"), "{err}");
}

#[test]
fn the_url_is_checked_first() {
    let err = endpoint("http://127.0.0.1:1", "ward7-pc01\n", None).unwrap_err();
    assert!(matches!(err, ConnectError::BadUrl { .. }), "{err}");
}
