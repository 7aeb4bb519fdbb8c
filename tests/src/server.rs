//! A real `custodian-server`: its data directory, one operator identity per
//! role, and the serving process, which can be stopped, killed and restarted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use custodian_proto::identity::Role;
use tokio::process::Command;

use crate::process::{self, Bin, Output, Running, Stream};

/// What `custodian-server serve` prints once it is bound.
const LISTENING: &str = "listening on ";

/// A Custodian server under test.
pub struct Server {
    data_dir: PathBuf,
    identities: PathBuf,
    addr: Option<SocketAddr>,
    process: Option<Running>,
}

impl Server {
    /// Initialises a data directory in `dir`, issues one operator per role,
    /// and starts serving on a free loopback port.
    pub async fn start(dir: &Path) -> Self {
        let mut server = Self::init(dir).await;
        server.serve().await;
        server
    }

    /// Initialises a data directory in `dir` and issues one operator per
    /// role (`alice-admin`, …), without serving.
    pub async fn init(dir: &Path) -> Self {
        let data_dir = dir.join("server");
        let identities = dir.join("operators");
        let mut init = Bin::Server.command();
        init.arg("init").arg("--data-dir").arg(&data_dir);
        process::run(init).await.success();
        for role in Role::ALL {
            let mut issue = Bin::Server.command();
            issue
                .args(["operator", "issue", "--data-dir"])
                .arg(&data_dir)
                .args(["--name", &format!("alice-{role}"), "--role", role.as_str(), "--out"])
                .arg(identities.join(role.as_str()));
            process::run(issue).await.success();
        }
        Self { data_dir, identities, addr: None, process: None }
    }

    /// Sets `key = "value"` in the data directory's `server.toml` (the key
    /// must already be there); takes effect at the next start.
    pub fn configure(&self, key: &str, value: &str) {
        let path = self.data_dir.join("server.toml");
        let text = std::fs::read_to_string(&path).expect("read server.toml");
        let prefix = format!("{key} = ");
        assert!(text.lines().any(|line| line.starts_with(&prefix)), "no {key} in server.toml:\n{text}");
        let text: Vec<String> = text
            .lines()
            .map(|line| if line.starts_with(&prefix) { format!("{prefix}{value:?}") } else { line.to_owned() })
            .collect();
        std::fs::write(&path, text.join("\n") + "\n").expect("write server.toml");
    }

    /// Starts serving on a fresh loopback port.
    pub async fn serve(&mut self) {
        self.serve_on(SocketAddr::from(([127, 0, 0, 1], 0))).await;
    }

    /// Starts serving again on the port it last used (agents enrolled with
    /// that URL find it there).
    pub async fn restart(&mut self) {
        let addr = self.addr.expect("the server has served before");
        self.serve_on(addr).await;
    }

    async fn serve_on(&mut self, listen: SocketAddr) {
        assert!(self.process.is_none(), "the server is already running");
        let mut cmd = Bin::Server.command();
        cmd.arg("serve").arg("--data-dir").arg(&self.data_dir).arg("--listen").arg(listen.to_string());
        let mut running = Running::spawn(cmd);
        let line = running.wait_for_line(Stream::Stdout, LISTENING).await;
        let addr = line
            .split_once(LISTENING)
            .and_then(|(_, addr)| addr.trim().parse::<SocketAddr>().ok())
            .unwrap_or_else(|| panic!("cannot read the address from {line:?}"));
        self.addr = Some(addr);
        self.process = Some(running);
    }

    /// Kills the server with SIGKILL (no chance to flush or clean up) and
    /// waits until it is gone.
    pub async fn kill(&mut self) {
        let mut running = self.process.take().expect("the server is running");
        running.kill().await;
    }

    /// Stops the server with SIGTERM and checks it shut down cleanly.
    pub async fn stop(&mut self) {
        let mut running = self.process.take().expect("the server is running");
        let status = running.terminate().await;
        assert!(status.success(), "the server did not shut down cleanly ({status})\n{}", running.transcript());
    }

    /// The server's log (stderr) so far, if it is running.
    pub fn log(&self) -> String {
        self.process.as_ref().map(|p| p.output(Stream::Stderr)).unwrap_or_default()
    }

    /// The server's URL, `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr.expect("the server has served"))
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The sled store inside the data directory.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("store")
    }

    /// The CA certificate agents are given at enrolment.
    pub fn ca_path(&self) -> PathBuf {
        self.data_dir.join("ca.pem")
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.ca_path()).expect("read the CA certificate")
    }

    /// The identity directory (`ca.pem`, `cert.pem`, `key.pem`) of the operator with `role`.
    pub fn identity(&self, role: Role) -> PathBuf {
        self.identities.join(role.as_str())
    }

    /// A `custodianctl` command as the operator with `role`, aimed at this server.
    pub fn ctl(&self, role: Role) -> Command {
        let mut cmd = Bin::Ctl.command();
        cmd.arg("--server").arg(self.url()).arg("--identity").arg(self.identity(role));
        cmd
    }

    /// Runs `custodianctl ARGS` as `role`.
    pub async fn ctl_run(&self, role: Role, args: &[&str]) -> Output {
        let mut cmd = self.ctl(role);
        cmd.args(args);
        process::run(cmd).await
    }

    /// Creates an enrolment token as an engineer (default lifetime).
    pub async fn token(&self) -> String {
        let out = self.ctl_run(Role::Engineer, &["token", "create", "--site", "ward-7"]).await.success();
        let token = out.first_line().to_owned();
        assert!(!token.is_empty(), "no token printed:\n{out}");
        token
    }

    /// `custodianctl device show QUERY --json`, parsed.
    pub async fn device_json(&self, query: &str) -> serde_json::Value {
        let out = self.ctl_run(Role::ServiceDesk, &["device", "show", query, "--json"]).await.success();
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("device show printed invalid JSON ({e}):\n{out}"))
    }

    /// The device's `(n_reports, last_seq)` as the register shows them.
    pub async fn report_counts(&self, query: &str) -> (u64, u64) {
        let device = self.device_json(query).await;
        let number = |key: &str| device[key].as_u64().unwrap_or_else(|| panic!("no {key} in {device:#}"));
        (number("n_reports"), number("last_seq"))
    }
}
