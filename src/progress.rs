//! Progress reporting: a bar on a terminal, JSON Lines for scripts, or
//! nothing. Domain code reports through the [`Progress`] trait and never
//! prints.
//!
//! # Wire format of `--progress json`
//!
//! One JSON object per line on stderr, at most [`PROGRESS_HZ`] lines a
//! second per phase, plus one when a phase starts and one when it ends:
//!
//! ```json
//! {"apiVersion":"photon-upgrade.progress/v1","phase":"commit","unit":"files","done":120,"total":11101,"finished":false}
//! ```
//!
//! `total` is absent when unknown. `unit` is `files`, `objects` or `bytes`.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines per second written with `--progress json` (bootc's
/// `progress_jsonl.rs` uses a similar refresh limit).
pub const PROGRESS_HZ: u32 = 5;
/// Version tag of the JSON Lines format.
pub const PROGRESS_API_VERSION: &str = "photon-upgrade.progress/v1";

/// What a phase counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Files of a tree.
    Files,
    /// Repository objects.
    Objects,
    /// Bytes.
    Bytes,
}

/// A sink for progress.
pub trait Progress: Send + Sync {
    /// A new phase begins.
    fn start(&self, phase: &'static str, unit: Unit, total: Option<u64>);
    /// `n` more units done.
    fn inc(&self, n: u64);
    /// The phase is over.
    fn finish(&self);
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &'static str, _: Unit, _: Option<u64>) {}
    fn inc(&self, _: u64) {}
    fn finish(&self) {}
}

/// An indicatif bar on stderr.
pub struct Bar {
    bar: Mutex<Option<indicatif::ProgressBar>>,
}

impl Bar {
    /// A bar that appears when a phase starts.
    pub fn new() -> Self {
        Bar { bar: Mutex::new(None) }
    }
}

impl Default for Bar {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Bar {
    fn start(&self, phase: &'static str, unit: Unit, total: Option<u64>) {
        let bar = match total {
            Some(t) => indicatif::ProgressBar::new(t),
            None => indicatif::ProgressBar::new_spinner(),
        };
        let tmpl = match (unit, total.is_some()) {
            (Unit::Bytes, true) => "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            (Unit::Bytes, false) => "{msg:>10} {spinner} {bytes} {bytes_per_sec}",
            (_, true) => "{msg:>10} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
            (_, false) => "{msg:>10} {spinner} {pos}",
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(tmpl) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(phase);
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut b) = self.bar.lock()
            && let Some(old) = b.replace(bar)
        {
            old.finish_and_clear();
        }
    }
    fn inc(&self, n: u64) {
        if let Ok(b) = self.bar.lock()
            && let Some(b) = b.as_ref()
        {
            b.inc(n);
        }
    }
    fn finish(&self) {
        if let Ok(mut b) = self.bar.lock()
            && let Some(b) = b.take()
        {
            b.finish_and_clear();
        }
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    api_version: &'static str,
    phase: &'a str,
    unit: Unit,
    done: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    finished: bool,
}

struct JsonState {
    phase: &'static str,
    unit: Unit,
    total: Option<u64>,
    done: u64,
    last: Instant,
}

/// JSON Lines on stderr, rate-limited.
pub struct JsonLines {
    state: Mutex<Option<JsonState>>,
}

impl JsonLines {
    /// A JSON Lines reporter.
    pub fn new() -> Self {
        JsonLines { state: Mutex::new(None) }
    }

    fn emit(s: &JsonState, finished: bool) {
        let line = Line {
            api_version: PROGRESS_API_VERSION,
            phase: s.phase,
            unit: s.unit,
            done: s.done,
            total: s.total,
            finished,
        };
        if let Ok(text) = serde_json::to_string(&line) {
            let mut err = std::io::stderr().lock();
            // Progress is best-effort: a closed stderr must not fail the work.
            let _ = writeln!(err, "{text}");
        }
    }
}

impl Default for JsonLines {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for JsonLines {
    fn start(&self, phase: &'static str, unit: Unit, total: Option<u64>) {
        if let Ok(mut st) = self.state.lock() {
            let s = JsonState { phase, unit, total, done: 0, last: Instant::now() };
            Self::emit(&s, false);
            *st = Some(s);
        }
    }
    fn inc(&self, n: u64) {
        if let Ok(mut st) = self.state.lock()
            && let Some(s) = st.as_mut()
        {
            s.done += n;
            if s.last.elapsed() >= Duration::from_secs(1) / PROGRESS_HZ {
                s.last = Instant::now();
                Self::emit(s, false);
            }
        }
    }
    fn finish(&self) {
        if let Ok(mut st) = self.state.lock()
            && let Some(s) = st.take()
        {
            Self::emit(&s, true);
        }
    }
}
