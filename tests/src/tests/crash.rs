//! Issue 2, item 6: a server killed with SIGKILL at random moments during
//! ingest, many times over, never loses a report it acknowledged.
//!
//! Several devices submit signed reports concurrently, in small batches,
//! like agents with a spool: whatever was not acknowledged is sent again,
//! byte for byte, after the restart. After every kill the store is opened
//! directly and every acknowledged envelope must be in it verbatim; after
//! every restart, resending what was acknowledged must come back as a
//! duplicate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use custodian_proto::v1 as pb;
use custodian_server::store::Store;
use pb::Outcome;
use rand::Rng;

use crate::{DeviceCredentials, Machine, RawDevice, Server, TIMEOUT, TestDir};

const ITERATIONS: usize = 25;
const DEVICES: usize = 4;
/// How many of the latest acknowledged reports each device resends after a restart.
const RESEND: usize = 16;

/// One simulated agent: what it has had acknowledged and what it still holds.
struct Client {
    creds: DeviceCredentials,
    hostname: String,
    next_seq: u64,
    acked: BTreeMap<u64, pb::SignedEnvelope>,
    unacked: Vec<(u64, pb::SignedEnvelope)>,
}

impl Client {
    fn new_envelope(&mut self) -> (u64, pb::SignedEnvelope) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut report = self.creds.report(seq, &self.hostname);
        // Vary the size a little, so batches are not all alike.
        report.agent_version = "x".repeat(rand::thread_rng().gen_range(1..200));
        (seq, self.creds.sign(&report))
    }
}

/// Submits until the server goes away. First resends the latest acknowledged
/// reports (which must be duplicates) and everything unacknowledged (which
/// must be accepted, or be duplicates if the acknowledgement was lost), then
/// new reports in batches of 1 to 8.
async fn ingest(mut client: Client, url: String, acks: Arc<AtomicUsize>) -> Client {
    let Some(device) = RawDevice::try_connect(&url, client.creds.clone()).await else { return client };
    let mut resend: Vec<(u64, pb::SignedEnvelope, bool)> =
        client.acked.iter().rev().take(RESEND).map(|(seq, envelope)| (*seq, envelope.clone(), true)).collect();
    resend.reverse();
    resend.extend(client.unacked.iter().map(|(seq, envelope)| (*seq, envelope.clone(), false)));
    let envelopes = resend.iter().map(|(_, envelope, _)| envelope.clone()).collect();
    let Ok(results) = device.submit(envelopes).await else { return client };
    for ((seq, envelope, was_acked), result) in resend.into_iter().zip(results) {
        assert_eq!(result.seq, seq);
        if was_acked {
            assert_eq!(result.outcome(), Outcome::Duplicate, "an acknowledged report was not held: {result:?}");
        } else {
            assert!(matches!(result.outcome(), Outcome::Accepted | Outcome::Duplicate), "resend refused: {result:?}");
            client.acked.insert(seq, envelope);
        }
    }
    client.unacked.clear();

    loop {
        let n = rand::thread_rng().gen_range(1..=8);
        let batch: Vec<_> = (0..n).map(|_| client.new_envelope()).collect();
        client.unacked.extend(batch.iter().cloned());
        let Ok(results) = device.submit(batch.iter().map(|(_, envelope)| envelope.clone()).collect()).await else {
            return client;
        };
        assert_eq!(results.len(), batch.len());
        for ((seq, envelope), result) in batch.into_iter().zip(results) {
            assert_eq!((result.seq, result.outcome()), (seq, Outcome::Accepted), "{result:?}");
            client.acked.insert(seq, envelope);
            acks.fetch_add(1, Ordering::Relaxed);
        }
        client.unacked.clear();
    }
}

/// Opens the dead server's store and checks every acknowledged report is
/// there byte for byte, with no gaps in the sequence.
fn check_store(server: &Server, clients: &[Client], iteration: usize) {
    let store = Store::open(&server.store_path()).expect("open the killed server's store");
    for client in clients {
        let device_id = client.creds.device_id;
        let device = store.device(device_id).unwrap().expect("the device is registered");
        let max_acked = client.acked.keys().next_back().copied().unwrap_or(1);
        assert!(
            device.last_seq >= max_acked,
            "iteration {iteration}: last_seq {} < acked {max_acked}",
            device.last_seq
        );
        assert_eq!(device.n_reports, device.last_seq, "iteration {iteration}: reports are missing or doubled");
        for (seq, sent) in &client.acked {
            let stored = store
                .report(device_id, *seq)
                .unwrap()
                .unwrap_or_else(|| panic!("iteration {iteration}: acknowledged report {device_id}/{seq} was lost"));
            assert!(
                stored.payload == sent.payload
                    && stored.signature == sent.signature
                    && stored.payload_type == sent.payload_type,
                "iteration {iteration}: report {device_id}/{seq} differs from what was acknowledged"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_reports_survive_sigkill_during_ingest() {
    let dir = TestDir::new();
    let mut server = Server::start(dir.path()).await;
    let mut clients = Vec::new();
    for i in 0..DEVICES {
        let machine = Machine::new(dir.path(), &format!("crash-pc{i:02}"), &format!("SN-CRASH-{i:02}"));
        machine.enroll_ok(&server).await;
        clients.push(Client {
            creds: DeviceCredentials::load(machine.state_dir()),
            hostname: machine.hostname.clone(),
            next_seq: 2,
            acked: BTreeMap::new(),
            unacked: Vec::new(),
        });
    }
    server.kill().await;

    let mut total_acked = 0;
    for iteration in 0..ITERATIONS {
        server.serve().await;
        let acks = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> =
            clients.drain(..).map(|client| tokio::spawn(ingest(client, server.url(), acks.clone()))).collect();
        if iteration % 3 == 0 {
            // Kill at a random moment soon after the start: during handshakes
            // and resends as often as during new reports.
            let delay = rand::thread_rng().gen_range(0..150);
            tokio::time::sleep(Duration::from_millis(delay)).await;
        } else {
            // Kill at a random moment once new reports are flowing.
            let deadline = tokio::time::Instant::now() + TIMEOUT;
            while acks.load(Ordering::Relaxed) == 0 {
                assert!(tokio::time::Instant::now() < deadline, "no report was acknowledged\n{}", server.log());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let delay = rand::thread_rng().gen_range(0..300);
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        server.kill().await;
        for task in tasks {
            let client =
                tokio::time::timeout(TIMEOUT, task).await.expect("client stops").expect("client task panicked");
            clients.push(client);
        }
        total_acked = clients.iter().map(|c| c.acked.len()).sum::<usize>();
        check_store(&server, &clients, iteration);
    }
    assert!(total_acked > ITERATIONS * DEVICES, "too few reports to mean anything: {total_acked}");

    // After the last crash, every acknowledged report is still a duplicate.
    server.serve().await;
    for client in &clients {
        let device = RawDevice::connect(&server.url(), client.creds.clone()).await;
        let acked: Vec<_> = client.acked.values().cloned().collect();
        for chunk in acked.chunks(500) {
            let results = device.submit(chunk.to_vec()).await.unwrap();
            assert!(results.iter().all(|r| r.outcome() == Outcome::Duplicate), "{results:?}");
        }
    }
    println!("{total_acked} acknowledged reports survived {ITERATIONS} SIGKILLs");
}
