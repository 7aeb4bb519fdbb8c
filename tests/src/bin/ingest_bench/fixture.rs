//! The benchmark's fixture: the real server and the echo server as child
//! processes, an engineer identity, and a fleet of enrolled simulated agents.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use custodian_agent::keys::DeviceKey;
use custodian_proto::channel::{ClientIdentity, connect};
use custodian_proto::identity::DeviceId;
use custodian_proto::v1 as pb;
use ed25519_dalek::pkcs8::{EncodePrivateKey, spki::der::pem::LineEnding};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use crate::cpu::{CpuTime, process_cpu_time, thread_cpu_times};

/// How long a child server may take to print its address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// The line prefix both servers print once they listen.
const LISTENING: &str = "listening on ";

/// The path of `name` in the directory this binary was built into.
pub(crate) fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("find this binary")?;
    let path = exe.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} not found; build it first with `cargo build --release -p custodian-server` (or pass --server-bin)",
            path.display()
        );
    }
    Ok(path)
}

/// A child server process, killed when dropped.
struct ChildServer {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    url: String,
}

impl ChildServer {
    /// Spawns `command` and waits for its `listening on ADDR` line.
    async fn spawn(mut command: Command, log: &Path) -> anyhow::Result<Self> {
        let log_file = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .context("spawn server")?;
        let mut stdout = BufReader::new(child.stdout.take().context("take server stdout")?);
        let mut line = String::new();
        tokio::time::timeout(STARTUP_TIMEOUT, stdout.read_line(&mut line))
            .await
            .context("wait for the server to listen")?
            .context("read server stdout")?;
        let Some(addr) = line.trim().strip_prefix(LISTENING) else {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            bail!("the server did not start (stdout {line:?}); its log:\n{log}");
        };
        let url = format!("https://{addr}");
        Ok(Self { child, _stdout: stdout, url })
    }

    /// The CPU time (user and system) the process has used so far, in all
    /// and by thread.
    fn cpu_time(&self) -> anyhow::Result<CpuTime> {
        let pid = self.child.id().context("the server has exited")?;
        if std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| stat.contains(") Z ")) {
            bail!("the server (pid {pid}) has exited");
        }
        Ok(CpuTime {
            total: process_cpu_time(&format!("/proc/{pid}/stat"))?,
            by_thread: thread_cpu_times(&format!("/proc/{pid}/task")),
        })
    }
}

/// The real `custodian-server serve` over a fresh data directory.
pub(crate) struct Server {
    child: ChildServer,
    /// Its data directory.
    pub(crate) data_dir: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub(crate) url: String,
    /// The engineer identity directory (`ca.pem`, `cert.pem`, `key.pem`).
    operator_dir: PathBuf,
}

impl Server {
    /// Creates a data directory and an engineer identity in `work_dir`, and
    /// starts serving on a free loopback port.
    pub(crate) async fn start(server_bin: &Path, work_dir: &Path) -> anyhow::Result<Self> {
        let data_dir = work_dir.join("server");
        let operator_dir = work_dir.join("operator");
        run_to_end(Command::new(server_bin).arg("init").arg("--data-dir").arg(&data_dir)).await?;
        run_to_end(
            Command::new(server_bin)
                .args(["operator", "issue", "--name", "bench", "--role", "engineer", "--data-dir"])
                .arg(&data_dir)
                .arg("--out")
                .arg(&operator_dir),
        )
        .await?;
        let mut command = Command::new(server_bin);
        command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data_dir);
        let child = ChildServer::spawn(command, &work_dir.join("server.log")).await?;
        let url = child.url.clone();
        Ok(Self { child, data_dir, url, operator_dir })
    }

    /// The server's CPU time so far.
    pub(crate) fn cpu_time(&self) -> anyhow::Result<CpuTime> {
        self.child.cpu_time()
    }

    /// An Operator client with the engineer identity.
    async fn operator(&self) -> anyhow::Result<pb::operator_client::OperatorClient<tonic::transport::Channel>> {
        let read = |file: &str| {
            let path = self.operator_dir.join(file);
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))
        };
        let (ca, cert, key) = (read("ca.pem")?, read("cert.pem")?, read("key.pem")?);
        let channel = connect(&self.url, &ca, Some(ClientIdentity { cert_pem: &cert, key_pem: &key })).await?;
        Ok(pb::operator_client::OperatorClient::new(channel))
    }

    /// Revokes `device_id` as the engineer.
    pub(crate) async fn revoke(&self, device_id: DeviceId) -> anyhow::Result<()> {
        let req = pb::RevokeDeviceRequest { query: device_id.to_string(), reason: "ingest_bench check".to_owned() };
        self.operator().await?.revoke_device(req).await.context("revoke device")?;
        Ok(())
    }

    /// Checks through the Operator API that every device's last accepted
    /// sequence number and report count are `n_reports`.
    pub(crate) async fn check_stored(&self, fleet: &Fleet, n_reports: u64) -> anyhow::Result<()> {
        let mut operator = self.operator().await?;
        for device in &fleet.devices {
            let res = operator
                .get_device(pb::GetDeviceRequest { query: device.device_id.to_string() })
                .await
                .with_context(|| format!("get device {}", device.device_id))?
                .into_inner();
            let summary = res.device.context("the server returned no device")?;
            if summary.last_seq != n_reports || summary.n_reports != n_reports {
                bail!(
                    "device {} has last_seq {} and {} reports stored, expected {n_reports}",
                    device.device_id,
                    summary.last_seq,
                    summary.n_reports
                );
            }
        }
        Ok(())
    }
}

/// The baseline echo server (`ingest_bench echo-server`), with the same TLS
/// setup as the real server's data directory.
pub(crate) struct EchoServer {
    child: ChildServer,
    /// `https://127.0.0.1:PORT`.
    pub(crate) url: String,
}

impl EchoServer {
    /// Starts the echo server as a child of this binary.
    pub(crate) async fn start(data_dir: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("find this binary")?;
        let mut command = Command::new(exe);
        command.arg("echo-server").arg("--data-dir").arg(data_dir);
        let log = data_dir.parent().unwrap_or(data_dir).join("echo-server.log");
        let child = ChildServer::spawn(command, &log).await?;
        let url = child.url.clone();
        Ok(Self { child, url })
    }

    /// The echo server's CPU time so far.
    pub(crate) fn cpu_time(&self) -> anyhow::Result<CpuTime> {
        self.child.cpu_time()
    }
}

/// One simulated agent.
pub(crate) struct Device {
    /// The id the server assigned.
    pub(crate) device_id: DeviceId,
    /// Its own Ed25519 key.
    pub(crate) key: DeviceKey,
    /// Its client certificate, PEM.
    pub(crate) cert_pem: String,
    /// Its hostname.
    pub(crate) hostname: String,
    /// Its system serial number.
    pub(crate) serial: String,
}

/// The enrolled simulated agents.
pub(crate) struct Fleet {
    /// The CA every client trusts, PEM.
    pub(crate) ca_pem: String,
    /// The agents.
    pub(crate) devices: Vec<Device>,
}

impl Fleet {
    /// Creates `n_devices` enrolment tokens as the engineer and enrols one
    /// simulated agent with each, the way `custodian-agent enroll` does.
    pub(crate) async fn enroll(server: &Server, n_devices: usize) -> anyhow::Result<Self> {
        let mut operator = server.operator().await?;
        let ca_path = server.data_dir.join("ca.pem");
        let ca_pem = std::fs::read_to_string(&ca_path).with_context(|| format!("read {}", ca_path.display()))?;
        let mut tokens = Vec::with_capacity(n_devices);
        for _ in 0..n_devices {
            let req = pb::CreateEnrollmentTokenRequest { site: "bench".to_owned(), ..Default::default() };
            tokens.push(
                operator.create_enrollment_token(req).await.context("create enrolment token")?.into_inner().token,
            );
        }
        // One at a time: concurrent enrolments can deadlock sled 0.34 (each
        // handler's `flush_async` holds sled's global concurrency-control read
        // lock while it waits for the log, and a queued transaction's write
        // lock then stops the threads that would write the log).
        let mut devices = Vec::with_capacity(n_devices);
        for (device_idx, token) in tokens.into_iter().enumerate() {
            devices.push(enroll_one(&server.url, &ca_pem, &token, device_idx).await?);
        }
        Ok(Self { ca_pem, devices })
    }
}

async fn enroll_one(url: &str, ca_pem: &str, token: &str, device_idx: usize) -> anyhow::Result<Device> {
    let signing = custodian_proto::envelope::generate_key();
    let pem = signing.to_pkcs8_pem(LineEnding::LF).context("encode device key")?.to_string();
    let key = DeviceKey { signing, pem };
    let hostname = format!("ward7-ws-{device_idx:05}");
    let serial = format!("CZC{device_idx:07}");
    let res = custodian_agent::uplink::enroll(url, ca_pem, token, &key, &hostname, Some(&serial)).await?;
    let device_id = res.device_id.parse().context("the server sent an invalid device id")?;
    Ok(Device { device_id, key, cert_pem: res.certificate_pem, hostname, serial })
}

async fn run_to_end(command: &mut Command) -> anyhow::Result<()> {
    let output = command.stdin(Stdio::null()).output().await.context("run custodian-server")?;
    if !output.status.success() {
        bail!("{command:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}
