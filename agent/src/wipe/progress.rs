//! Progress of a pass: a bar on the terminal (bytes done, rate, time left)
//! and, every [`LOG_EVERY`], a line in the agent's log, so a wipe run from a
//! service or a script leaves a trail too.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::info;

/// How often progress is logged.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// One phase's progress (a write pass or a verification).
pub struct Progress {
    bar: ProgressBar,
    phase: String,
    total: u64,
    started: Instant,
    last_log: Mutex<Instant>,
}

impl Progress {
    /// Progress of `phase` over `total` bytes; the bar shows only when
    /// `show_bar` and stderr is a terminal.
    pub fn new(phase: impl Into<String>, total: u64, show_bar: bool) -> Self {
        let bar = ProgressBar::with_draw_target(
            Some(total),
            if show_bar { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
        );
        let phase = phase.into();
        bar.set_style(
            ProgressStyle::with_template("{msg:>12} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}")
                .expect("the template is valid")
                .progress_chars("=> "),
        );
        bar.set_message(phase.clone());
        let now = Instant::now();
        Self { bar, phase, total, started: now, last_log: Mutex::new(now) }
    }

    /// Progress that shows nothing but still logs (tests, benchmarks).
    pub fn hidden(phase: impl Into<String>, total: u64) -> Self {
        Self::new(phase, total, false)
    }

    /// Counts `bytes` more done.
    pub fn inc(&self, bytes: u64) {
        self.bar.inc(bytes);
        let mut last = self.last_log.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= LOG_EVERY {
            *last = Instant::now();
            let done = self.bar.position();
            let secs = self.started.elapsed().as_secs_f64().max(1e-6);
            let rate = done as f64 / secs;
            let eta_s = if rate > 0.0 { ((self.total - done.min(self.total)) as f64 / rate) as u64 } else { 0 };
            info!(phase = %self.phase, done, total = self.total, mib_per_s = rate / 1048576.0, eta_s, "wipe progress");
        }
    }

    /// Ends the bar and logs the phase's rate.
    pub fn finish(&self) -> f64 {
        self.bar.finish_and_clear();
        let secs = self.started.elapsed().as_secs_f64().max(1e-6);
        let rate = self.bar.position() as f64 / secs / 1048576.0;
        info!(phase = %self.phase, bytes = self.bar.position(), secs, mib_per_s = rate, "wipe phase done");
        rate
    }
}
