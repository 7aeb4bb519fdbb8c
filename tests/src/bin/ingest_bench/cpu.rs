//! CPU accounting for the benchmark: a process's CPU time in all and by
//! thread (from `/proc/PID/stat` and `/proc/PID/task`), and the whole
//! machine's busy, idle and stolen time (from `/proc/stat`), so a run shows
//! whether its cores were saturated.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;

/// A process's CPU time so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct CpuTime {
    /// All its threads, including those that have exited.
    pub(crate) total: Duration,
    /// Its live threads, summed by name with any trailing `-N` removed
    /// (`sled-io-3` counts as `sled-io`).
    pub(crate) by_thread: BTreeMap<String, Duration>,
}

impl CpuTime {
    /// What was used since `earlier`; threads that have since exited are
    /// left out of `by_thread` (but not `total`).
    pub(crate) fn since(&self, earlier: &CpuTime) -> CpuTime {
        let by_thread = self
            .by_thread
            .iter()
            .map(|(name, now)| {
                let before = earlier.by_thread.get(name).copied().unwrap_or_default();
                (name.clone(), now.saturating_sub(before))
            })
            .collect();
        CpuTime { total: self.total.saturating_sub(earlier.total), by_thread }
    }
}

/// The CPU time (user and system) of the process or thread whose `stat`
/// file is at `path`.
pub(crate) fn process_cpu_time(path: &str) -> anyhow::Result<Duration> {
    // The kernel reports these in USER_HZ, which is 100 on Linux.
    const TICKS_PER_SEC: u64 = 100;
    let stat = std::fs::read_to_string(path).with_context(|| format!("read {path}"))?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let after_comm = stat.rsplit_once(')').context("parse stat")?.1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let tick = |idx: usize| fields.get(idx).and_then(|f| f.parse::<u64>().ok()).context("parse stat times");
    let ticks = tick(11)? + tick(12)?;
    Ok(Duration::from_millis(ticks * 1000 / TICKS_PER_SEC))
}

/// The CPU time of each live thread under `task_dir` (`/proc/PID/task`),
/// summed by thread name. A thread that exits while it is read is skipped.
pub(crate) fn thread_cpu_times(task_dir: &str) -> BTreeMap<String, Duration> {
    let mut by_name = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(task_dir) else { return by_name };
    for task in tasks.flatten() {
        let path = task.path();
        let (Ok(comm), Ok(cpu)) =
            (std::fs::read_to_string(path.join("comm")), process_cpu_time(&path.join("stat").to_string_lossy()))
        else {
            continue;
        };
        *by_name.entry(thread_group(comm.trim()).to_owned()).or_default() += cpu;
    }
    by_name
}

/// A thread's name without a trailing `-N` (a pool thread's index).
fn thread_group(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((group, index)) if !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) => group,
        _ => name,
    }
}

/// The whole machine's CPU time so far, in clock ticks summed over every
/// core, from the first line of `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MachineCpu {
    /// Running anything: user, nice, system, irq and softirq time.
    pub(crate) busy: u64,
    /// Idle, including waiting for I/O.
    pub(crate) idle: u64,
    /// Taken by the hypervisor for other guests (a VM's "steal").
    pub(crate) stolen: u64,
}

impl MachineCpu {
    /// Reads `/proc/stat`.
    pub(crate) fn read() -> anyhow::Result<Self> {
        Self::parse(&std::fs::read_to_string("/proc/stat").context("read /proc/stat")?)
    }

    /// Parses the `cpu` line of a `/proc/stat` text.
    fn parse(stat: &str) -> anyhow::Result<Self> {
        let line = stat.lines().find(|l| l.starts_with("cpu ")).context("no cpu line in /proc/stat")?;
        let ticks: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("parse /proc/stat line {line:?}"))?;
        // user nice system idle iowait irq softirq steal [guest guest_nice];
        // guest time is already counted in user and nice.
        let tick = |idx: usize| ticks.get(idx).copied().unwrap_or(0);
        if ticks.len() < 4 {
            anyhow::bail!("too few fields in /proc/stat line {line:?}");
        }
        Ok(Self { busy: tick(0) + tick(1) + tick(2) + tick(5) + tick(6), idle: tick(3) + tick(4), stolen: tick(7) })
    }

    /// What was used since `earlier`.
    pub(crate) fn since(&self, earlier: &MachineCpu) -> MachineCpu {
        MachineCpu {
            busy: self.busy.saturating_sub(earlier.busy),
            idle: self.idle.saturating_sub(earlier.idle),
            stolen: self.stolen.saturating_sub(earlier.stolen),
        }
    }

    /// Busy, idle and stolen time as percentages of their sum.
    pub(crate) fn percentages(&self) -> (f64, f64, f64) {
        let total = (self.busy + self.idle + self.stolen).max(1) as f64;
        let pct = |ticks: u64| ticks as f64 * 100.0 / total;
        (pct(self.busy), pct(self.idle), pct(self.stolen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_threads_are_summed_under_one_name() {
        assert_eq!(thread_group("sled-io-3"), "sled-io");
        assert_eq!(thread_group("tokio-rt-worker"), "tokio-rt-worker");
        assert_eq!(thread_group("report-committe"), "report-committe");
        assert_eq!(thread_group("odd-"), "odd-");
    }

    #[test]
    fn a_process_s_threads_are_found_by_name() {
        // A new thread names itself once it runs, so wait until it has
        // started before looking, and keep it alive until we have looked.
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let probe = std::thread::Builder::new()
            .name("bench-probe-7".to_owned())
            .spawn(move || {
                started_tx.send(()).expect("the test waits");
                let _ = done_rx.recv();
            })
            .expect("spawn a thread");
        started_rx.recv().expect("the thread starts");
        let threads = thread_cpu_times("/proc/self/task");
        drop(done_tx);
        probe.join().expect("the thread ends");
        assert!(threads.contains_key("bench-probe"), "{threads:?}");
    }

    #[test]
    fn cpu_since_subtracts_by_thread_and_keeps_only_live_threads() {
        let ms = Duration::from_millis;
        let earlier = CpuTime {
            total: ms(100),
            by_thread: BTreeMap::from([("a".to_owned(), ms(60)), ("gone".to_owned(), ms(40))]),
        };
        let now = CpuTime {
            total: ms(250),
            by_thread: BTreeMap::from([("a".to_owned(), ms(160)), ("new".to_owned(), ms(30))]),
        };
        let used = now.since(&earlier);
        assert_eq!(used.total, ms(150));
        assert_eq!(used.by_thread, BTreeMap::from([("a".to_owned(), ms(100)), ("new".to_owned(), ms(30))]));
    }

    #[test]
    fn machine_time_is_split_into_busy_idle_and_stolen() {
        let stat = "cpu  100 5 20 300 10 3 2 7 40 0\ncpu0 50 2 10 150 5 1 1 3 20 0\nintr 1\n";
        let cpu = MachineCpu::parse(stat).expect("parses");
        assert_eq!(cpu, MachineCpu { busy: 130, idle: 310, stolen: 7 });
        let later = MachineCpu { busy: 230, idle: 410, stolen: 7 };
        let (busy, idle, stolen) = later.since(&cpu).percentages();
        assert_eq!((busy, idle, stolen), (50.0, 50.0, 0.0));
    }

    #[test]
    fn a_malformed_stat_line_is_an_error() {
        assert!(MachineCpu::parse("cpu  1 2 x 4\n").is_err());
        assert!(MachineCpu::parse("cpu  1 2\n").is_err());
        assert!(MachineCpu::parse("intr 1\n").is_err());
        assert!(MachineCpu::read().is_ok());
    }
}
