//! `custodian-agent wipe` against the real server: its exit status says
//! whether the server holds the attestation, not only whether the wipe
//! passed. A technician who sees success must be able to trust that the
//! disk is recorded as wiped.

use crate::process::{self, Output};
use crate::{Machine, Server, TestDir};

/// Writes a 4 MiB image of "patient records" and wipes it with clear-zero.
async fn wipe(machine: &Machine, dir: &TestDir, name: &str, extra: &[&str]) -> Output {
    let image = dir.join(name);
    std::fs::write(&image, b"PATIENT RECORD ".repeat(280_000)).expect("write the image");
    let mut cmd = machine.agent();
    cmd.args(["wipe", "--method", "clear-zero", "--yes", "--operator", "jo.bloggs", "--device"])
        .arg(&image)
        .arg("--state-dir")
        .arg(machine.state_dir())
        .args(extra);
    let out = process::run(cmd).await;
    assert!(std::fs::read(&image).expect("read the image").iter().all(|b| *b == 0), "the image is wiped:\n{out}");
    out
}

#[tokio::test]
async fn a_wipe_succeeds_only_once_the_server_has_recorded_its_attestation() {
    let dir = TestDir::new();
    let mut server = Server::start(dir.path()).await;
    let machine = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    machine.enroll_ok(&server).await;

    // Delivered and recorded: success.
    let out = wipe(&machine, &dir, "recorded.img", &[]).await.success();
    assert!(out.stdout.contains("wipe PASSED"), "{out}");
    assert!(out.stderr.contains("delivered and recorded by the server"), "{out}");

    // A workstation claiming to be a wipe station: the wipe passed, but the
    // server refuses the attestation, so the disk is not recorded as wiped.
    let out = wipe(&machine, &dir, "refused.img", &["--station"]).await;
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert!(out.stdout.contains("wipe PASSED"), "{out}");
    for needle in ["REJECTED", "a workstation attests only to its own disks", "NOT recorded as wiped"] {
        assert!(out.stderr.contains(needle), "expected {needle:?}:\n{out}");
    }

    // The server down: passed and spooled, exit status 3.
    server.stop().await;
    let out = wipe(&machine, &dir, "spooled.img", &[]).await;
    assert_eq!(out.status.code(), Some(3), "{out}");
    assert!(out.stdout.contains("wipe PASSED"), "{out}");
    assert!(out.stderr.contains("is spooled but not delivered"), "{out}");
    // Back up: the next report delivers it.
    server.restart().await;
    let out = machine.report().await.success();
    assert!(out.stdout.contains("delivered: 2 accepted"), "the spooled attestation and the report: {out}");
}
