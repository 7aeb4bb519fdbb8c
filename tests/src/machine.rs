//! A simulated workstation: a fixture root that `custodian-agent --root`
//! reads (so each machine has a known hostname and serial), and the agent's
//! state directory.

use std::path::{Path, PathBuf};

use custodian_agent::state::StateDir;
use custodian_proto::identity::DeviceId;
use tokio::process::Command;

use crate::Server;
use crate::process::{self, Bin, Output};

/// Vendor every simulated machine reports.
pub const VENDOR: &str = "Dell Inc.";
/// Model every simulated machine reports.
pub const MODEL: &str = "OptiPlex 7010";

/// A simulated workstation with its agent.
pub struct Machine {
    /// The hostname the agent reads.
    pub hostname: String,
    /// The system serial the agent reads.
    pub serial: String,
    root: PathBuf,
    state: PathBuf,
}

impl Machine {
    /// Builds the fixture root for a machine called `hostname` with system
    /// serial `serial` under `dir/hostname/`.
    pub fn new(dir: &Path, hostname: &str, serial: &str) -> Self {
        let base = dir.join(hostname);
        let root = base.join("root");
        let files = [
            ("proc/sys/kernel/hostname", format!("{hostname}\n")),
            ("proc/sys/kernel/osrelease", "6.1.0-18-amd64\n".to_owned()),
            ("proc/meminfo", "MemTotal:       16318508 kB\nMemFree:         1000000 kB\n".to_owned()),
            (
                "proc/cpuinfo",
                "processor\t: 0\nmodel name\t: Intel(R) Core(TM) i5-3470 CPU @ 3.20GHz\nphysical id\t: 0\ncore id\t\t: 0\n\n\
                 processor\t: 1\nmodel name\t: Intel(R) Core(TM) i5-3470 CPU @ 3.20GHz\nphysical id\t: 0\ncore id\t\t: 1\n"
                    .to_owned(),
            ),
            ("etc/os-release", "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n".to_owned()),
            ("sys/class/dmi/id/sys_vendor", format!("{VENDOR}\n")),
            ("sys/class/dmi/id/product_name", format!("{MODEL}\n")),
            ("sys/class/dmi/id/product_serial", format!("{serial}\n")),
        ];
        for (relative, contents) in files {
            let path = root.join(relative);
            std::fs::create_dir_all(path.parent().expect("fixture files are in directories"))
                .expect("create fixture directory");
            std::fs::write(&path, contents).expect("write fixture file");
        }
        Self { hostname: hostname.to_owned(), serial: serial.to_owned(), root, state: base.join("state") }
    }

    /// Renames the machine: the agent reads `hostname` from now on.
    pub fn rename(&mut self, hostname: &str) {
        std::fs::write(self.root.join("proc/sys/kernel/hostname"), format!("{hostname}\n")).expect("write hostname");
        self.hostname = hostname.to_owned();
    }

    /// The agent's state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// A `custodian-agent` command reading this machine's fixture root.
    pub fn agent(&self) -> Command {
        let mut cmd = Bin::Agent.command();
        cmd.arg("--root").arg(&self.root);
        cmd
    }

    /// A `custodian-agent enroll` command against `server` with `token`.
    pub fn enroll_command(&self, server: &Server, token: &str) -> Command {
        let mut cmd = self.agent();
        cmd.args(["enroll", "--server", &server.url(), "--token", token, "--ca"])
            .arg(server.ca_path())
            .arg("--state-dir")
            .arg(&self.state);
        cmd
    }

    /// `custodian-agent enroll` against `server` with `token`.
    pub async fn enroll(&self, server: &Server, token: &str) -> Output {
        process::run(self.enroll_command(server, token)).await
    }

    /// Creates a token and enrols, asserting success (the first report is delivered too).
    pub async fn enroll_ok(&self, server: &Server) -> DeviceId {
        let token = server.token().await;
        let out = self.enroll(server, &token).await.success();
        assert!(out.stdout.contains("first report delivered"), "the first report was not delivered:\n{out}");
        self.device_id()
    }

    /// A `custodian-agent report` command (to the enrolled server).
    pub fn report_command(&self) -> Command {
        let mut cmd = self.agent();
        cmd.arg("report").arg("--state-dir").arg(&self.state);
        cmd
    }

    /// `custodian-agent report` to the enrolled server.
    pub async fn report(&self) -> Output {
        process::run(self.report_command()).await
    }

    /// The device id the agent was enrolled as.
    pub fn device_id(&self) -> DeviceId {
        StateDir::new(&self.state).load_enrollment().expect("the machine is enrolled").device_id
    }
}
