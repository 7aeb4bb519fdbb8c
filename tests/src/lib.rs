//! End-to-end tests for Custodian: a harness that starts the real binaries
//! (`custodian-server`, `custodian-agent`, `custodianctl`) on loopback, and
//! the cases themselves in `src/tests/`, all in one test binary.
//!
//! - [`TestDir`]: a temporary directory per test, removed on drop.
//! - [`Server`]: an initialised data directory, one operator identity per
//!   role, and a running `custodian-server serve` that can be stopped,
//!   killed with SIGKILL and restarted on the same data directory.
//! - [`Machine`]: a simulated workstation (a fixture root with a known
//!   hostname and serial, read by `custodian-agent --root`) and its agent
//!   state directory.
//! - [`RawDevice`]: an in-process gRPC client holding an enrolled device's
//!   key and certificate, to craft what the real agent never sends
//!   (tampered payloads, bad signatures, replays, reports for another device).
//!
//! The binaries are taken from the cargo target directory the test binary
//! itself runs from, so build them first: `cargo build --workspace`.
//! Every wait has a timeout ([`TIMEOUT`]); no test uses anything but loopback.

pub mod machine;
pub mod process;
pub mod raw;
pub mod server;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use machine::Machine;
pub use process::{Bin, Output, Running};
pub use raw::{DeviceCredentials, RawDevice};
pub use server::Server;

/// The longest any single wait in the harness may take (a command to finish,
/// a log line to appear, a process to exit).
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A temporary directory for one test, removed (with everything in it) on drop.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    /// A fresh empty directory.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("custodian-e2e-").tempdir().expect("create a temporary directory");
        Self { dir }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the directory.
    pub fn join(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests;
