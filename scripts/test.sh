#!/usr/bin/env bash
# Runs every test: unit tests, and the end-to-end tests that start the real
# binaries against each other over mutual TLS on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

# The end-to-end tests run the binaries from target/debug, so build them first.
cargo build --workspace --bins --locked
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast "$@"
else
    echo "cargo-nextest not found; using cargo test" >&2
    cargo test --workspace --locked --no-fail-fast "$@"
fi
