//! The real `custodian-agent wipe` binary: a finished wipe is spooled as
//! passed, Ctrl-C (SIGINT) is attested as interrupted with a non-zero exit,
//! and a wipe killed outright is attested as interrupted at the next start.
//! The state directory is made by hand (key and enrolment record) and the
//! server URL points at a closed port, so attestations stay in the spool
//! where the test reads and verifies them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use custodian_agent::keys::DeviceKey;
use custodian_agent::spool::Spool;
use custodian_agent::state::{Enrollment, StateDir};
use custodian_agent::wipe::attestation::{CRASH_REASON, MARKER_FILE};
use custodian_proto::envelope::{self, WIPE_ATTESTATION_PAYLOAD_TYPE};
use custodian_proto::v1 as pb;
use prost::Message;

const AGENT: &str = env!("CARGO_BIN_EXE_custodian-agent");
/// Nothing listens here, so delivery fails and attestations stay spooled.
const NO_SERVER: &str = "https://127.0.0.1:9";

fn enrolled_state(dir: &Path) -> (StateDir, DeviceKey) {
    let state = StateDir::new(dir.join("state"));
    std::fs::create_dir_all(state.root()).unwrap();
    let key = DeviceKey::load_or_generate(&state).unwrap();
    state
        .save_enrollment(&Enrollment {
            server: NO_SERVER.to_owned(),
            device_id: "00000000-0000-4000-8000-0000000000aa".parse().unwrap(),
            cert_issued_at_ms: 0,
            cert_not_after_ms: i64::MAX,
        })
        .unwrap();
    (state, key)
}

fn wipe(state: &StateDir, device: &Path) -> Command {
    let mut cmd = Command::new(AGENT);
    cmd.args(["--log-level", "warn", "wipe", "--method", "clear-zero", "--yes", "--operator", "test", "--server"])
        .arg(NO_SERVER)
        .arg("--device")
        .arg(device)
        .arg("--state-dir")
        .arg(state.root());
    cmd
}

/// The attestations in the spool, verified under the device key.
fn spooled(state: &StateDir, key: &DeviceKey) -> Vec<pb::WipeAttestation> {
    let spool = Spool::open(&state.spool()).unwrap();
    spool
        .pending(100)
        .unwrap()
        .into_iter()
        .filter(|(_, env)| env.payload_type == WIPE_ATTESTATION_PAYLOAD_TYPE)
        .map(|(_, env)| {
            let payload = envelope::verify(&key.signing.verifying_key(), &env, WIPE_ATTESTATION_PAYLOAD_TYPE).unwrap();
            pb::WipeAttestation::decode(payload).unwrap()
        })
        .collect()
}

fn outcome(att: &pb::WipeAttestation) -> pb::WipeOutcome {
    pb::WipeOutcome::try_from(att.result.as_ref().unwrap().outcome).unwrap()
}

/// Starts a wipe of a large sparse image and waits (up to a minute) until
/// its in-progress marker exists, i.e. until it is about to write.
fn start_long_wipe(state: &StateDir, dir: &Path) -> (Child, PathBuf) {
    let image = dir.join("big.img");
    std::fs::File::create(&image).unwrap().set_len(16 << 30).unwrap();
    let child = wipe(state, &image).stderr(Stdio::piped()).spawn().unwrap();
    let marker = state.root().join(MARKER_FILE);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the wipe never wrote its in-progress marker");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, image)
}

#[test]
fn a_finished_wipe_is_spooled_as_passed() {
    let dir = tempfile::tempdir().unwrap();
    let (state, key) = enrolled_state(dir.path());
    let image = dir.path().join("disk.img");
    std::fs::write(&image, b"PATIENT RECORD ".repeat(100_000)).unwrap();
    let out = wipe(&state, &image).output().unwrap();
    // Passed, but the server is unreachable: exit status 3, not success.
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("wipe PASSED"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("spooled but not delivered"));
    let atts = spooled(&state, &key);
    assert_eq!(atts.len(), 1);
    assert_eq!(outcome(&atts[0]), pb::WipeOutcome::Passed);
    assert_eq!(atts[0].operator, "test");
    assert_eq!(atts[0].source_device_id, "00000000-0000-4000-8000-0000000000aa");
    assert!(std::fs::read(&image).unwrap().iter().all(|b| *b == 0));
    assert!(!state.root().join(MARKER_FILE).exists());
}

#[test]
fn ctrl_c_stops_the_wipe_and_attests_it_as_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let (state, key) = enrolled_state(dir.path());
    let (child, _image) = start_long_wipe(&state, dir.path());
    assert!(Command::new("kill").arg("-INT").arg(child.id().to_string()).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "an interrupted wipe exits non-zero");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("wipe INTERRUPTED"), "{stderr}");
    let atts = spooled(&state, &key);
    assert_eq!(atts.len(), 1);
    assert_eq!(outcome(&atts[0]), pb::WipeOutcome::Interrupted);
    assert!(!state.root().join(MARKER_FILE).exists(), "the marker goes once the attestation is spooled");
}

#[test]
fn a_killed_wipe_is_attested_as_interrupted_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let (state, key) = enrolled_state(dir.path());
    let (mut child, _image) = start_long_wipe(&state, dir.path());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(spooled(&state, &key).is_empty(), "nothing was attested before the crash");
    assert!(state.root().join(MARKER_FILE).exists());
    // The next start of the agent, for any command, attests the leftover.
    let out = Command::new(AGENT).arg("report").arg("--state-dir").arg(state.root()).output().unwrap();
    assert!(!out.status.success(), "no server: the report is not delivered");
    let atts = spooled(&state, &key);
    assert_eq!(atts.len(), 1);
    assert_eq!(outcome(&atts[0]), pb::WipeOutcome::Interrupted);
    assert_eq!(atts[0].result.as_ref().unwrap().reason, CRASH_REASON);
    assert!(!state.root().join(MARKER_FILE).exists());
}
