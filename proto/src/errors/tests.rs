//! Tests for error chains as text.

use std::fmt;

use super::*;

/// An error with a fixed message and an optional cause.
#[derive(Debug)]
struct Layer(&'static str, Option<Box<Layer>>);

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Error for Layer {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.1.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

fn chain(messages: &[&'static str]) -> Layer {
    let (first, rest) = messages.split_first().unwrap();
    Layer(first, (!rest.is_empty()).then(|| Box::new(chain(rest))))
}

#[test]
fn a_connection_refusal_reads_once_through() {
    // What tonic and hyper give for a server that is down, under our wrapper.
    let e = chain(&[
        "cannot connect to https://127.0.0.1:1: transport error",
        "transport error",
        "tcp connect error",
        "tcp connect error",
        "Connection refused (os error 111)",
    ]);
    assert_eq!(
        chain_text(&e),
        "cannot connect to https://127.0.0.1:1: transport error: tcp connect error: Connection refused (os error 111)"
    );
}

#[test]
fn distinct_causes_are_all_kept() {
    let e = chain(&["read operator identity", "open /x/ca.pem", "No such file or directory (os error 2)"]);
    assert_eq!(chain_text(&e), "read operator identity: open /x/ca.pem: No such file or directory (os error 2)");
    assert_eq!(chain_text(&chain(&["alone"])), "alone");
}
