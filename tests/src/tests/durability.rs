//! What survives: a server restart, a server that is down while the agent
//! reports, and an agent killed between spooling a report and sending it.

use custodian_proto::identity::{DeviceId, Role};
use custodian_proto::v1 as pb;
use custodian_server::store::Store;
use prost::Message;

use crate::process::{Running, Stream};
use crate::raw::{DeviceCredentials, RawDevice};
use crate::{Machine, Server, TestDir};

/// The sequence numbers stored for `device_id`, read from the store of a
/// server that is not running, each checked to decode to a report carrying
/// that sequence number; and the reports' collection times.
fn stored_seqs(server: &Server, device_id: DeviceId) -> (Vec<u64>, Vec<i64>) {
    let store = Store::open(&server.store_path()).expect("open the stopped server's store");
    let mut seqs = Vec::new();
    let mut collected = Vec::new();
    for (seq, envelope) in store.reports(device_id).expect("read reports") {
        let report = pb::Report::decode(envelope.payload.as_slice()).expect("stored payloads decode");
        assert_eq!(report.seq, seq, "report stored under the wrong sequence number");
        assert_eq!(report.device_id, device_id.to_string());
        seqs.push(seq);
        collected.push(report.collected_at_ms);
    }
    (seqs, collected)
}

#[tokio::test]
async fn server_restart_keeps_everything() {
    let dir = TestDir::new();
    let mut server = Server::start(dir.path()).await;
    let kept = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    let revoked = Machine::new(dir.path(), "ward7-pc02", "SN-0002");
    kept.enroll_ok(&server).await;
    revoked.enroll_ok(&server).await;
    kept.report().await.success();
    let unused_token = server.token().await;
    server.ctl_run(Role::Admin, &["device", "revoke", "ward7-pc02", "--reason", "disposed"]).await.success();
    let before_kept = server.device_json("ward7-pc01").await;
    let before_revoked = server.device_json("ward7-pc02").await;
    let before_list = server.ctl_run(Role::ServiceDesk, &["device", "list", "--json"]).await.success();

    // A clean stop, then a crash: both must keep everything.
    for crash in [false, true] {
        if crash {
            server.kill().await;
        } else {
            server.stop().await;
        }
        server.restart().await;

        assert_eq!(server.device_json("ward7-pc01").await, before_kept, "crash={crash}");
        assert_eq!(server.device_json("SN-0002").await, before_revoked, "crash={crash}");
        let list = server.ctl_run(Role::ServiceDesk, &["device", "list", "--json"]).await.success();
        assert_eq!(list.stdout, before_list.stdout, "crash={crash}");
    }
    // The revocation, the unused token and the sequence numbers still hold.
    revoked.report().await.failure(&["has been revoked"]);
    let late = Machine::new(dir.path(), "ward7-pc03", "SN-0003");
    late.enroll(&server, &unused_token).await.success();
    let out = kept.report().await.success();
    assert!(out.stdout.contains("delivered: 1 accepted"), "{out}");
    assert_eq!(server.report_counts("ward7-pc01").await, (3, 3));
}

#[tokio::test]
async fn reports_spooled_while_server_is_down_are_delivered_in_order_once() {
    let dir = TestDir::new();
    let mut server = Server::start(dir.path()).await;
    let machine = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    let device_id = machine.enroll_ok(&server).await;
    server.kill().await;

    for (seq, waiting) in [(2, 1), (3, 2), (4, 3)] {
        let out = machine.report().await;
        let out = out.failure(&[&format!("report {seq} is spooled, {waiting} waiting; not delivered")]);
        // Why, said once: each cause in the chain appears one time.
        for cause in ["Connection refused", "tcp connect error", "transport error"] {
            assert!(out.stderr.matches(cause).count() <= 1, "{cause:?} repeated:\n{out}");
        }
        assert!(out.stderr.contains("Connection refused"), "{out}");
    }

    server.restart().await;
    let out = machine.report().await.success();
    assert!(out.stdout.contains("delivered: 4 accepted, 0 already held, 0 rejected; 0 waiting"), "{out}");
    assert_eq!(server.report_counts("ward7-pc01").await, (5, 5));
    let out = machine.report().await.success();
    assert!(out.stdout.contains("delivered: 1 accepted, 0 already held, 0 rejected; 0 waiting"), "{out}");

    server.stop().await;
    let (seqs, collected) = stored_seqs(&server, device_id);
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6], "every report exactly once");
    assert!(collected.is_sorted(), "reports were collected in sequence order: {collected:?}");
}

#[tokio::test]
async fn agent_killed_between_spooling_and_sending_sends_on_next_run() {
    let dir = TestDir::new();
    let mut server = Server::start(dir.path()).await;
    let machine = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    let device_id = machine.enroll_ok(&server).await;

    // A "server" that accepts connections and never answers: the agent
    // spools its report, then hangs in the TLS handshake.
    let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let black_hole_url = format!("https://{}", black_hole.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = black_hole.accept().await {
            held.push(conn);
        }
    });
    let mut cmd = machine.report_command();
    cmd.args(["--server", &black_hole_url]);
    let mut agent = Running::spawn(cmd);
    // A report or a heartbeat: either is signed and spooled before sending.
    let line = agent.wait_for_line(Stream::Stderr, " spooled").await;
    assert!(line.contains("seq=2"), "{line}");
    let status = agent.kill().await;
    assert!(!status.success());
    holder.abort();
    assert_eq!(server.report_counts("ward7-pc01").await, (1, 1), "nothing can have been delivered yet");

    let out = machine.report().await.success();
    assert!(out.stdout.contains("delivered: 2 accepted, 0 already held, 0 rejected; 0 waiting"), "{out}");
    assert_eq!(server.report_counts("ward7-pc01").await, (3, 3));
    server.stop().await;
    assert_eq!(stored_seqs(&server, device_id).0, vec![1, 2, 3]);
}

#[tokio::test]
async fn daemon_reports_on_its_interval_and_stops_on_sigterm() {
    let dir = TestDir::new();
    let server = Server::start(dir.path()).await;
    let machine = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    machine.enroll_ok(&server).await;

    let mut cmd = machine.agent();
    cmd.args(["run", "--interval", "1s", "--state-dir"]).arg(machine.state_dir());
    let mut daemon = Running::spawn(cmd);
    daemon.wait_for_line(Stream::Stderr, "agent running").await;
    let deadline = tokio::time::Instant::now() + crate::TIMEOUT;
    loop {
        let (n_reports, last_seq) = server.report_counts("ward7-pc01").await;
        assert_eq!(n_reports, last_seq);
        if n_reports >= 4 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the daemon did not report\n{}", daemon.transcript());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let status = daemon.terminate().await;
    assert!(status.success(), "the daemon did not stop cleanly ({status})\n{}", daemon.transcript());
    assert!(daemon.output(Stream::Stderr).contains("agent stopping"), "{}", daemon.transcript());
}

#[tokio::test]
async fn daemon_renews_its_certificate_and_keeps_reporting_past_the_first_ones_expiry() {
    let dir = TestDir::new();
    let mut server = Server::init(dir.path()).await;
    server.configure("device_cert_lifetime", "6s");
    server.serve().await;
    let machine = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    machine.enroll_ok(&server).await;
    let first_expiry = server.device_json("ward7-pc01").await["cert_not_after"].clone();

    let mut cmd = machine.agent();
    cmd.args(["run", "--interval", "1s", "--state-dir"]).arg(machine.state_dir());
    let mut daemon = Running::spawn(cmd);
    // Due with a third of the 6 s left: renewed at about 4 s, then with the
    // renewed certificate again at about 8 s, after the first has expired.
    let deadline = tokio::time::Instant::now() + crate::TIMEOUT;
    while daemon.output(Stream::Stderr).matches("certificate renewed").count() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no second renewal\n{}", daemon.transcript());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (n_reports, _) = server.report_counts("ward7-pc01").await;
    loop {
        let (now_reports, last_seq) = server.report_counts("ward7-pc01").await;
        assert_eq!(now_reports, last_seq);
        if now_reports >= n_reports + 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "reports stopped after renewal\n{}", daemon.transcript());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_ne!(server.device_json("ward7-pc01").await["cert_not_after"], first_expiry);
    daemon.terminate().await;
    assert!(!daemon.output(Stream::Stderr).contains("failed to renew"), "{}", daemon.transcript());
}

#[tokio::test]
async fn daemon_spools_while_the_server_is_down_and_catches_up() {
    let dir = TestDir::new();
    let mut server = Server::start(dir.path()).await;
    let machine = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    let device_id = machine.enroll_ok(&server).await;
    let mut cmd = machine.agent();
    cmd.args(["run", "--interval", "1s", "--state-dir"]).arg(machine.state_dir());
    let mut daemon = Running::spawn(cmd);
    daemon.wait_for_line(Stream::Stderr, "agent running").await;

    server.kill().await;
    // The daemon keeps collecting while the server is away.
    let deadline = tokio::time::Instant::now() + crate::TIMEOUT;
    while daemon.output(Stream::Stderr).matches("failed to deliver reports").count() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "the daemon did not retry\n{}", daemon.transcript());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let spooled = daemon.output(Stream::Stderr).matches(" spooled").count();
    assert!(spooled >= 3, "{}", daemon.transcript());

    server.restart().await;
    loop {
        let (n_reports, last_seq) = server.report_counts("ward7-pc01").await;
        assert_eq!(n_reports, last_seq, "a report was lost or stored twice");
        if n_reports as usize > spooled + 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the daemon did not catch up\n{}", daemon.transcript());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let status = daemon.terminate().await;
    assert!(status.success(), "{}", daemon.transcript());
    server.stop().await;
    let (seqs, _) = stored_seqs(&server, device_id);
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_certificate_that_expired_while_the_server_was_down_is_renewed_and_the_spool_delivered() {
    let dir = TestDir::new();
    let mut server = Server::init(dir.path()).await;
    server.configure("device_cert_lifetime", "4s");
    server.serve().await;
    let machine = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    machine.enroll_ok(&server).await;
    let expired = DeviceCredentials::load(machine.state_dir());

    // The server is away for longer than the certificate has left.
    server.stop().await;
    machine.report().await.failure(&["report 2 is spooled", "not delivered"]);
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    server.restart().await;

    // The expired certificate is good for renewing it, and nothing else.
    let raw = RawDevice::connect(&server.url(), expired.clone()).await;
    let err = raw.submit_one(expired.sign(&expired.report(2, "ward7-pc01"))).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");
    assert!(err.message().contains("expired at") && err.message().contains("must renew"), "{err}");
    assert_eq!(server.report_counts("ward7-pc01").await, (1, 1), "nothing was stored from the expired certificate");

    // The agent renews, then delivers what it spooled while cut off.
    let out = machine.report().await.success();
    assert!(out.stdout.contains("delivered: 2 accepted"), "{out}");
    assert_eq!(server.report_counts("ward7-pc01").await, (3, 3));

    // Past the renewal grace the expired certificate is refused outright,
    // and the agent says what to do.
    server.stop().await;
    server.configure("device_cert_renewal_grace", "1s");
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    server.restart().await;
    machine.report().await.failure(&["report 4 is spooled", "not delivered", "expired"]);
}

#[tokio::test]
async fn an_agent_whose_spool_was_lost_carries_on_above_the_servers_last_sequence_number() {
    let dir = TestDir::new();
    let server = Server::start(dir.path()).await;
    let machine = Machine::new(dir.path(), "ward7-pc01", "SN-0001");
    machine.enroll_ok(&server).await;
    machine.report().await.success();
    machine.report().await.success();
    assert_eq!(server.report_counts("ward7-pc01").await, (3, 3));

    // The spool is lost (a disk repaired, a directory wiped); the key and
    // certificate are not. Its counter starts again at 1, which the server
    // refuses as a replay, and tells the agent where it got to.
    std::fs::remove_dir_all(machine.state_dir().join("spool")).expect("remove the spool");
    let out = machine.report().await.failure(&["rejected by the server"]);
    assert!(out.stderr.contains("beyond this spool's"), "{out}");
    // The next report carries on above it, with a full inventory.
    let out = machine.report().await.success();
    assert!(out.stdout.contains("delivered: 1 accepted"), "{out}");
    assert_eq!(server.report_counts("ward7-pc01").await, (4, 4));
}
