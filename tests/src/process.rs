//! Running the real binaries: finding them in the target directory, running
//! a command to completion with a timeout, and keeping a long-running one
//! (the server, an agent about to be killed) whose output can be waited on.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::TIMEOUT;

/// Environment variables the binaries read that must not leak in from the
/// environment the tests run in.
const SCRUBBED_ENV: &[&str] = &["RUST_LOG", "CUSTODIAN_SERVER", "CUSTODIAN_IDENTITY"];

/// One of the workspace's binaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bin {
    /// `custodian-server`.
    Server,
    /// `custodian-agent`.
    Agent,
    /// `custodianctl`.
    Ctl,
}

impl Bin {
    /// The binary's file name.
    pub fn name(self) -> &'static str {
        match self {
            Bin::Server => "custodian-server",
            Bin::Agent => "custodian-agent",
            Bin::Ctl => "custodianctl",
        }
    }

    /// Where cargo put the binary: beside the `deps/` directory holding this
    /// test binary (`target/debug/deps/e2e-HASH` → `target/debug/NAME`).
    pub fn path(self) -> PathBuf {
        let exe = std::env::current_exe().expect("the test binary knows its own path");
        let deps = exe.parent().expect("the test binary is in a directory");
        let profile_dir = if deps.file_name().is_some_and(|name| name == "deps") {
            deps.parent().expect("deps/ is inside the profile directory")
        } else {
            deps
        };
        profile_dir.join(self.name())
    }

    /// A command running this binary, with output captured, stdin closed,
    /// the `CUSTODIAN_*`/`RUST_LOG` environment cleared, and the child
    /// killed if the command's handle is dropped.
    ///
    /// Panics with instructions if the binary has not been built, or is
    /// older than the sources it is built from: `cargo test` and `cargo
    /// nextest run` build the libraries this test binary links, but not the
    /// other packages' binaries, so `cargo build --workspace` must run first.
    pub fn command(self) -> Command {
        let path = self.path();
        assert!(
            path.is_file(),
            "{} not found: the end-to-end tests run the real binaries, so build them first \
             with `cargo build --workspace` (then run the tests again)",
            path.display()
        );
        check_fresh(&path);
        let mut cmd = Command::new(&path);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        for var in SCRUBBED_ENV {
            cmd.env_remove(var);
        }
        cmd
    }
}

/// Fails the test if `binary` is older than any source file it is built
/// from, as listed in the dep-info file cargo writes beside it
/// (`target/debug/NAME.d`): testing a stale binary would test old code.
fn check_fresh(binary: &Path) {
    let built = std::fs::metadata(binary).and_then(|m| m.modified()).expect("read the binary's modification time");
    // Without dep-info there is nothing to compare with.
    let Ok(dep_info) = std::fs::read_to_string(binary.with_extension("d")) else { return };
    let Some((_, sources)) = dep_info.split_once(": ") else { return };
    let target_dir = binary.parent().and_then(Path::parent);
    let mut newest = None;
    // Spaces inside paths are escaped as `\ `.
    for source in sources.replace("\\ ", "\0").split_whitespace() {
        let source = PathBuf::from(source.replace('\0', " "));
        if target_dir.is_some_and(|target| source.starts_with(target)) {
            continue; // Generated during the build.
        }
        newest_file(&source, &mut newest);
    }
    if let Some((changed, source)) = newest {
        assert!(
            changed <= built,
            "{} is older than {}: the end-to-end tests run the real binaries, so rebuild them \
             with `cargo build --workspace` (then run the tests again)",
            binary.display(),
            source.display()
        );
    }
}

/// Updates `newest` with the most recently modified file under `path`
/// (skipping build output and hidden files).
fn newest_file(path: &Path, newest: &mut Option<(SystemTime, PathBuf)>) {
    let Ok(metadata) = std::fs::metadata(path) else { return };
    if metadata.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                newest_file(&entry.path(), newest);
            }
        }
    } else if let Ok(modified) = metadata.modified()
        && newest.as_ref().is_none_or(|(time, _)| modified > *time)
    {
        *newest = Some((modified, path.to_owned()));
    }
}

/// What a finished command did.
pub struct Output {
    /// The command line, for messages.
    pub what: String,
    /// How it exited.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr (logs and errors).
    pub stderr: String,
}

impl Output {
    /// Asserts the command succeeded, and returns it.
    #[track_caller]
    pub fn success(self) -> Self {
        assert!(self.status.success(), "expected success:\n{self}");
        self
    }

    /// Asserts the command failed with every one of `needles` in its
    /// stderr, and returns it.
    #[track_caller]
    pub fn failure(self, needles: &[&str]) -> Self {
        assert!(!self.status.success(), "expected failure:\n{self}");
        for needle in needles {
            assert!(self.stderr.contains(needle), "expected {needle:?} in stderr:\n{self}");
        }
        self
    }

    /// The first line of stdout, trimmed.
    pub fn first_line(&self) -> &str {
        self.stdout.lines().next().unwrap_or_default().trim()
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited with {}\n--- stdout\n{}--- stderr\n{}---",
            self.what, self.status, self.stdout, self.stderr
        )
    }
}

/// A human-readable command line.
pub fn describe(cmd: &Command) -> String {
    let cmd = cmd.as_std();
    let program = Path::new(cmd.get_program()).file_name().unwrap_or(cmd.get_program()).to_string_lossy().into_owned();
    std::iter::once(program)
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion, failing the test if it takes longer than [`TIMEOUT`].
pub async fn run(mut cmd: Command) -> Output {
    let what = describe(&cmd);
    let output = tokio::time::timeout(TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("`{what}` did not finish within {TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("failed to run `{what}`: {e}"));
    Output {
        what,
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Which output stream to wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error (where the binaries log).
    Stderr,
}

/// A running child process whose output is collected in the background.
/// It is killed (SIGKILL) when dropped.
pub struct Running {
    what: String,
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Spawns `cmd` (from [`Bin::command`]).
    pub fn spawn(mut cmd: Command) -> Self {
        let what = describe(&cmd);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("failed to start `{what}`: {e}"));
        let (stdout, stdout_reader) = collect(child.stdout.take().expect("stdout is piped"));
        let (stderr, stderr_reader) = collect(child.stderr.take().expect("stderr is piped"));
        Self { what, child, stdout, stderr, readers: vec![stdout_reader, stderr_reader] }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the child has not been reaped yet")
    }

    /// Everything the child has written to `stream` so far.
    pub fn output(&self, stream: Stream) -> String {
        let buffer = match stream {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        };
        buffer.lock().expect("output buffer lock").clone()
    }

    /// Waits until a line of `stream` contains `needle` and returns that line.
    /// Fails the test if the child exits first or [`TIMEOUT`] passes.
    pub async fn wait_for_line(&mut self, stream: Stream, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if let Some(line) = self.output(stream).lines().find(|line| line.contains(needle)) {
                return line.to_owned();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the readers drain what the child wrote before it exited.
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Some(line) = self.output(stream).lines().find(|line| line.contains(needle)) {
                    return line.to_owned();
                }
                panic!("`{}` exited with {status} before printing {needle:?}\n{}", self.what, self.transcript());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "`{}` did not print {needle:?} within {TIMEOUT:?}\n{}",
                self.what,
                self.transcript()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the child with SIGKILL and waits for it to be gone.
    pub async fn kill(&mut self) -> ExitStatus {
        let _ = self.child.start_kill();
        self.wait().await
    }

    /// Asks the child to stop with SIGTERM and waits for it to exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        let pid = self.pid().to_string();
        let status = run_plain("kill", &["-TERM", &pid]).await;
        assert!(status.success(), "kill -TERM {pid} failed");
        self.wait().await
    }

    /// Waits for the child to exit.
    pub async fn wait(&mut self) -> ExitStatus {
        let status = match tokio::time::timeout(TIMEOUT, self.child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => panic!("failed to wait for `{}`: {e}", self.what),
            Err(_) => panic!("`{}` did not exit within {TIMEOUT:?}\n{}", self.what, self.transcript()),
        };
        // The child has exited, but its last output may still be in the
        // pipes: read them to the end so callers see everything it wrote.
        for reader in self.readers.drain(..) {
            if tokio::time::timeout(TIMEOUT, reader).await.is_err() {
                panic!("`{}` exited but its output did not end within {TIMEOUT:?}", self.what);
            }
        }
        status
    }

    /// The child's output so far, for failure messages.
    pub fn transcript(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}---", self.output(Stream::Stdout), self.output(Stream::Stderr))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.start_kill().is_ok() {
            // Give the kernel a moment to take the process down, so the test's
            // temporary directory is not removed under a live process.
            for _ in 0..100 {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Copies `reader` into a shared buffer until it closes.
fn collect(reader: impl AsyncRead + Unpin + Send + 'static) -> (Arc<Mutex<String>>, tokio::task::JoinHandle<()>) {
    let buffer = Arc::new(Mutex::new(String::new()));
    let sink = buffer.clone();
    let task = tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut sink = sink.lock().expect("output buffer lock");
            sink.push_str(&line);
            sink.push('\n');
        }
    });
    (buffer, task)
}

/// Runs a system tool (not one of ours) and returns how it exited.
async fn run_plain(program: &str, args: &[&str]) -> ExitStatus {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    tokio::time::timeout(TIMEOUT, cmd.status())
        .await
        .unwrap_or_else(|_| panic!("`{program}` did not finish within {TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("failed to run `{program}`: {e}"))
}
