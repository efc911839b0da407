//! Boot health checks: the programs that decide whether a boot of a
//! deployment is good.
//!
//! `photon-upgrade boot check-health`, started by
//! `photon-upgrade-health.service` before `boot-complete.target`, calls
//! [`run_checks`] and [`save_report`]; when a required check fails, the
//! unit fails, `boot-complete.target` is not reached, the deployment is
//! not blessed, and `photon-upgrade boot failed` runs (see
//! `systemd/README.md` for the timeline). `status` reads the reports back
//! with [`load_reports`] to say why a deployment failed.
//!
//! # Where checks come from
//!
//! Executable files in [`CHECK_DIRS`] (tests and `--check-dir` pass
//! others), highest priority first: `/etc/photon-upgrade/health.d/`, then
//! `/usr/lib/photon-upgrade/health.d/`. systemd's drop-in convention
//! applies: a name in `/etc` overrides the same name in `/usr/lib`, and a
//! symlink to `/dev/null` (or an empty file) under that name disables it.
//! Other symlinks are followed. Checks run one at a time, in byte order of
//! their names (so `10-net` runs before `20-disk`), never in parallel: a
//! check may rely on the ones before it having passed.
//!
//! Names starting with `.` (editors' and our own temp files) are ignored
//! silently. These never run and are listed in the report's `skipped` with
//! the reason: a non-executable file (`not-executable`, as systemd and
//! `run-parts` skip them), anything not a regular file (`not-a-file`),
//! a name that is not UTF-8 (`non-utf8-name`), a backup left by an
//! editor or a package manager (`~`, `.dpkg-*`, `.rpmnew`, `.rpmsave`,
//! `.rpmorig`, `.ucf-*`: `ignored-name`), a symlink that leads nowhere
//! (`unreadable`), and masked ones (`masked`).
//!
//! # Required and wanted
//!
//! A check is *required* unless its name ends in [`WANTED_SUFFIX`]
//! (`.wanted`, e.g. `50-ntp-synced.wanted`): a failing wanted check is
//! reported and warned about but does not fail the boot. The suffix is part
//! of the name, so `/etc` overrides `50-x.wanted` only with `50-x.wanted`;
//! to demote a vendor's required `50-x`, mask it and add
//! `50-x.wanted -> /usr/lib/photon-upgrade/health.d/50-x`. We chose the
//! name over a marker comment inside the file because it is visible in
//! `ls`, works for compiled checks, and needs no file read before the run.
//!
//! # How a check runs
//!
//! - stdin is `/dev/null`; the working directory is `/`; the environment is
//!   the runner's plus [`ENV_DEPLOYMENT`] (`CHECKSUM.SERIAL` of the booted
//!   deployment) and [`ENV_BOOT_ATTEMPT`] (which try of that deployment
//!   this boot is, from the boot counter).
//! - stdout and stderr are captured separately; the last
//!   [`OUTPUT_TAIL_BYTES`] of each are kept (the end of a log says why it
//!   failed), with the total byte count.
//! - It runs in a process group of its own. After [`HealthOptions::timeout`]
//!   (default [`DEFAULT_TIMEOUT`]) the whole group is killed with `SIGKILL`
//!   and the check fails with "timed out after Ns". When the check exits by
//!   itself, whatever it left running in its group is killed too: a
//!   leftover would hold the output pipes open and outlive the check (a
//!   service's `KillMode=control-group` does the same). A process that left
//!   the group (`setsid`) cannot be found without a cgroup; its output is
//!   waited for at most [`PIPE_GRACE`].
//! - Exit status 0 passes; anything else (a non-zero status, a signal, a
//!   timeout, a program that cannot be started) fails.
//!
//! The boot passes when every required check passed; no checks at all is a
//! pass.
//!
//! # Wire format (report files, kind `HealthReport`)
//!
//! One JSON document per run, in `STATE/CHECKSUM.SERIAL/SEQ-attempt-N.json`
//! (`STATE` is [`STATE_DIR`] in production; `SEQ` is eight or more digits
//! counting runs for that deployment; `N` the boot attempt). The last
//! [`KEEP_REPORTS`] per deployment are kept; a report is never larger than
//! [`MAX_REPORT_BYTES`] (output tails are shortened to fit). Files are mode
//! 0640 in a 0750 directory: check output can hold anything a log can.
//! Each is written to a temp file, fsynced, renamed into place, and the
//! directory fsynced.
//!
//! ```json
//! {"apiVersion": "photon-upgrade/v1", "kind": "HealthReport",
//!  "deployment": "CSUM.0", "bootAttempt": 1, "started": 1700000000,
//!  "durationMs": 1520, "passed": false,
//!  "checks": [{"name": "10-net", "path": "/usr/lib/photon-upgrade/health.d/10-net",
//!     "kind": "required", "status": "failed", "exitCode": 1, "signal": null,
//!     "reason": "exited with status 1", "durationMs": 12,
//!     "stdout": {"text": "...", "bytes": 10, "truncated": false},
//!     "stderr": {"text": "no route to update server\n", "bytes": 26, "truncated": false}}],
//!  "skipped": [{"name": "40-legacy", "path": "/etc/photon-upgrade/health.d/40-legacy",
//!     "reason": "masked", "detail": null}]}
//! ```
//!
//! `status` is `passed`, `failed`, `timed-out` or `not-started` (the
//! program could not be executed; `reason` says why); `exitCode` and
//! `signal` are those of the process when it ran; `reason` is null for a
//! pass. Output `text` is UTF-8 with invalid bytes replaced; `bytes`
//! counts what the check wrote, `truncated` says the front was dropped.
//! Times are seconds since the epoch, as in every `--json` document. New
//! fields may appear within v1.
//!
//! # Errors
//!
//! Functions return [`HealthError`], one `thiserror` enum: this module is
//! a library with two callers (the `boot check-health` command and
//! `status`) that branch on what went wrong: a bad report file is shown
//! and skipped, an unusable state directory is fatal. Each variant names
//! the file; the I/O or JSON cause is kept as its `source`, so print it
//! with `{:#}` through `anyhow`, as `main` does. A failing *check* is not
//! an error: it is a result in the report.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};
use serde::{Deserialize, Serialize};

use crate::fsutil::{self, Dir, FileType};

/// Where checks are looked for, highest priority first (systemd's
/// `/etc` over `/usr/lib`).
pub const CHECK_DIRS: [&str; 2] = ["/etc/photon-upgrade/health.d", "/usr/lib/photon-upgrade/health.d"];
/// Where reports are kept in production.
pub const STATE_DIR: &str = "/var/lib/photon-upgrade/health";
/// Time a check gets before its process group is killed. A minute is long
/// for a health probe and short against the boot deadline (15 minutes,
/// `photon-upgrade-boot-deadline.timer`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of each of stdout and stderr a report keeps (the tail).
pub const OUTPUT_TAIL_BYTES: usize = 64 * 1024;
/// Reports kept per deployment: enough to see a pattern over the boots a
/// deployment gets (3 tries by default) plus a few reruns.
pub const KEEP_REPORTS: usize = 10;
/// Largest report file written or read. Output tails are 128 KiB per check
/// before JSON escaping (up to 6 bytes per byte); 16 MiB holds dozens of
/// noisy checks, and a reader never allocates more for a hostile file.
pub const MAX_REPORT_BYTES: u64 = 16 * 1024 * 1024;
/// Names ending in this are wanted checks: they warn, they do not fail the boot.
pub const WANTED_SUFFIX: &str = ".wanted";
/// Environment variable carrying the deployment (`CHECKSUM.SERIAL`).
pub const ENV_DEPLOYMENT: &str = "PHOTON_DEPLOYMENT";
/// Environment variable carrying the boot attempt.
pub const ENV_BOOT_ATTEMPT: &str = "PHOTON_BOOT_ATTEMPT";
/// `apiVersion` of a report; the same version as every `--json` document
/// (`cli::output`), which a domain module does not import.
pub const REPORT_API_VERSION: &str = "photon-upgrade/v1";
/// `kind` of a report.
pub const REPORT_KIND: &str = "HealthReport";
/// How long output is still collected after a check's process group is
/// gone: only a process that escaped the group (`setsid`) can hold a pipe
/// that long, and the boot must not wait for it.
pub const PIPE_GRACE: Duration = Duration::from_secs(1);

/// Major and minor number of `/dev/null`, which masks a check when an
/// entry resolves to it (Linux's devices.txt: 1, 3).
const NULL_DEVICE: (u32, u32) = (1, 3);
/// Mode of report files and of their per-deployment directory: a check's
/// output can hold anything a log can, and like the journal it is not for
/// every local user.
const REPORT_MODE: u32 = 0o640;
/// See [`REPORT_MODE`].
const REPORT_DIR_MODE: u32 = 0o750;
/// Read size of the output collectors.
const READ_CHUNK: usize = 8 * 1024;
/// Longest sleep between two looks at a running check: bounds how late a
/// finished check is noticed.
const MAX_POLL: Duration = Duration::from_millis(20);

/// What can go wrong around the checks (not in them: a failing check is a
/// result, see [`CheckStatus`]).
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// Not `CHECKSUM.SERIAL`; refused before it is used in a file name.
    #[error("{name:?} is not a deployment name (64 hex digits, a dot, a serial number)")]
    InvalidDeployment {
        /// What was given.
        name: String,
    },
    /// A file-system step failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done ("reading", "creating", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A report file is larger than any report we write.
    #[error("{}: {size} bytes, more than a health report may have ({limit}); refusing to read it", path.display())]
    ReportTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// [`MAX_REPORT_BYTES`].
        limit: u64,
    },
    /// A report file is not valid JSON of the expected shape.
    #[error("{}: not a valid health report", path.display())]
    BadJson {
        /// The file.
        path: PathBuf,
        /// The parser's complaint (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// A report file parses but is not what its place says it is.
    #[error("{}: {field} is {found:?}, expected {expected:?}", path.display())]
    ReportMismatch {
        /// The file.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// What its name or place requires.
        expected: String,
        /// What the file holds.
        found: String,
    },
    /// The report could not be made small enough (thousands of checks).
    #[error(
        "the health report of {deployment} has {checks} checks and is {size} bytes without any output; the limit is {limit}"
    )]
    ReportTooBig {
        /// The deployment.
        deployment: String,
        /// Number of checks.
        checks: usize,
        /// Serialized size with every output tail emptied.
        size: u64,
        /// [`MAX_REPORT_BYTES`].
        limit: u64,
    },
    /// Serializing a report failed (not expected: all fields are plain data).
    #[error("serializing the health report")]
    Serialize(#[source] serde_json::Error),
}

fn io_err(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> HealthError {
    let path = path.into();
    move |source| HealthError::Io { action, path, source }
}

/// Required checks fail the boot; wanted ones only warn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    /// A failure fails the boot.
    Required,
    /// A failure is reported and warned about (name ends in [`WANTED_SUFFIX`]).
    Wanted,
}

impl CheckKind {
    /// The kind a check name implies.
    pub fn of(name: &str) -> CheckKind {
        if name.ends_with(WANTED_SUFFIX) { CheckKind::Wanted } else { CheckKind::Required }
    }
}

/// A check that will run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// File name (the sort key and the override key).
    pub name: String,
    /// The file that runs (in the highest-priority directory holding `name`).
    pub path: PathBuf,
    /// Required or wanted.
    pub kind: CheckKind,
}

/// Why a file in a check directory does not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// A symlink to `/dev/null` (the administrator disabled it).
    Masked,
    /// A regular file without any execute bit.
    NotExecutable,
    /// A directory, device, socket or FIFO.
    NotAFile,
    /// An editor's or package manager's backup (`~`, `.dpkg-old`, `.rpmnew`, ...).
    IgnoredName,
    /// The name is not UTF-8.
    NonUtf8Name,
    /// It could not be examined (a dangling symlink, a permission error).
    Unreadable,
}

/// A file in a check directory that does not run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedCheck {
    /// File name (lossy if not UTF-8).
    pub name: String,
    /// Where it is.
    pub path: String,
    /// Why it does not run.
    pub reason: SkipReason,
    /// The error, for `unreadable`.
    pub detail: Option<String>,
}

/// The checks found in the check directories.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckSet {
    /// What runs, in order.
    pub checks: Vec<Check>,
    /// What does not, in name order.
    pub skipped: Vec<SkippedCheck>,
}

/// True for names of backups that package managers and editors leave next
/// to a file; they must not run as a second copy of the check.
fn is_backup_name(name: &[u8]) -> bool {
    const MARKERS: [&[u8]; 5] = [b".dpkg-", b".rpmnew", b".rpmsave", b".rpmorig", b".ucf-"];
    name.ends_with(b"~") || MARKERS.iter().any(|m| name.windows(m.len()).any(|w| w == *m))
}

/// Finds the checks in `dirs` (highest priority first; a missing directory
/// is empty). See the module documentation for the rules.
pub fn discover(dirs: &[PathBuf]) -> Result<CheckSet, HealthError> {
    // Name -> the directory that decides it (the first one holding it).
    let mut chosen: BTreeMap<Vec<u8>, PathBuf> = BTreeMap::new();
    for dir_path in dirs {
        // Absolute, because checks run with `/` as their working directory
        // and a relative program path would be ambiguous.
        let dir_path = std::path::absolute(dir_path).map_err(io_err("resolving check directory", dir_path))?;
        let dir = match Dir::open(&dir_path) {
            Ok(d) => d,
            Err(e) if fsutil::is_not_found(&e) => continue,
            Err(e) => return Err(io_err("opening check directory", dir_path)(e)),
        };
        for entry in dir.sorted_entries().map_err(io_err("listing check directory", &dir_path))? {
            let name = entry.name.as_os_str().as_bytes().to_vec();
            if name.starts_with(b".") {
                continue;
            }
            chosen.entry(name).or_insert_with(|| dir_path.join(&entry.name));
        }
    }
    let mut set = CheckSet::default();
    for (name, path) in chosen {
        let skip = |reason, detail: Option<String>| SkippedCheck {
            name: String::from_utf8_lossy(&name).into_owned(),
            path: path.display().to_string(),
            reason,
            detail,
        };
        if let Err((reason, detail)) = classify(&path) {
            set.skipped.push(skip(reason, detail));
            continue;
        }
        // Checked after masking, so a mask of a backup name is still a mask.
        if is_backup_name(&name) {
            set.skipped.push(skip(SkipReason::IgnoredName, None));
            continue;
        }
        let Ok(name) = String::from_utf8(name.clone()) else {
            set.skipped.push(skip(SkipReason::NonUtf8Name, None));
            continue;
        };
        let kind = CheckKind::of(&name);
        set.checks.push(Check { name, path, kind });
    }
    Ok(set)
}

/// Whether one directory entry is a runnable check.
///
/// Symlinks are followed, as systemd and exec(2) do: checks are installed
/// by the image or the administrator, not taken from a tree we distrust.
/// Masking is systemd's rule (`null_or_empty()` in its conf-files code):
/// the entry resolves to the null device, or is an empty regular file.
fn classify(path: &Path) -> Result<(), (SkipReason, Option<String>)> {
    let meta = std::fs::metadata(path).map_err(|e| (SkipReason::Unreadable, Some(e.to_string())))?;
    let is_null_device = meta.file_type().is_char_device()
        && rustix::fs::major(meta.rdev()) == NULL_DEVICE.0
        && rustix::fs::minor(meta.rdev()) == NULL_DEVICE.1;
    if is_null_device || (meta.is_file() && meta.len() == 0) {
        return Err((SkipReason::Masked, None));
    }
    if !meta.is_file() {
        return Err((SkipReason::NotAFile, None));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err((SkipReason::NotExecutable, None));
    }
    Ok(())
}

/// Required inputs of a run.
#[derive(Debug, Clone, Copy)]
pub struct HealthContext<'a> {
    /// The booted deployment, `CHECKSUM.SERIAL`.
    pub deployment: &'a str,
    /// Which try of this deployment this boot is (1 for the first; 0 when
    /// the deployment is not being counted because it is already good).
    /// Passed to the checks and kept in the report's file name.
    pub boot_attempt: u32,
    /// Check directories, highest priority first ([`CHECK_DIRS`] in production).
    pub check_dirs: &'a [PathBuf],
}

/// Choices with defaults.
#[derive(Debug, Clone)]
pub struct HealthOptions {
    /// Per-check time limit.
    pub timeout: Duration,
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions { timeout: DEFAULT_TIMEOUT }
    }
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckStatus {
    /// Exit status 0.
    Passed,
    /// Any other exit status, or killed by a signal it did not get from us.
    Failed,
    /// Killed by us after the timeout.
    TimedOut,
    /// The program could not be executed (bad interpreter, permissions).
    NotStarted,
}

/// The kept end of one output stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputTail {
    /// The last bytes written (at most [`OUTPUT_TAIL_BYTES`]), as UTF-8
    /// with invalid sequences replaced.
    pub text: String,
    /// Bytes the check wrote in all.
    pub bytes: u64,
    /// The front was dropped.
    pub truncated: bool,
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// File name.
    pub name: String,
    /// The file that ran.
    pub path: String,
    /// Required or wanted.
    pub kind: CheckKind,
    /// How it ended.
    pub status: CheckStatus,
    /// Exit status, if it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// Why it did not pass, in words (`None` when it passed).
    pub reason: Option<String>,
    /// Wall-clock time.
    pub duration_ms: u64,
    /// End of stdout.
    pub stdout: OutputTail,
    /// End of stderr.
    pub stderr: OutputTail,
}

impl CheckResult {
    /// True when it exited 0.
    pub fn passed(&self) -> bool {
        self.status == CheckStatus::Passed
    }
}

/// The result of one run of all checks. A report file holds it inside
/// the `apiVersion`/`kind` envelope of every `--json` document (so
/// `boot check-health --json` can print it with `cli::output::json`,
/// kind [`REPORT_KIND`], and get the same document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    /// `CHECKSUM.SERIAL`.
    pub deployment: String,
    /// The boot attempt the run belonged to.
    pub boot_attempt: u32,
    /// Start, seconds since the epoch.
    pub started: u64,
    /// Wall-clock time of the whole run.
    pub duration_ms: u64,
    /// Every required check passed.
    pub passed: bool,
    /// What ran, in order.
    pub checks: Vec<CheckResult>,
    /// What did not run, and why.
    pub skipped: Vec<SkippedCheck>,
}

impl HealthReport {
    /// Required checks that did not pass: these failed the boot.
    pub fn failed_required(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| c.kind == CheckKind::Required && !c.passed())
    }

    /// Wanted checks that did not pass: warnings.
    pub fn failed_wanted(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| c.kind == CheckKind::Wanted && !c.passed())
    }

    /// One line for `status` and the journal: "passed (4 checks)", or the
    /// failed required checks and their reasons.
    pub fn summary(&self) -> String {
        let failed: Vec<String> = self
            .failed_required()
            .map(|c| format!("{} ({})", c.name, c.reason.as_deref().unwrap_or("failed")))
            .collect();
        if failed.is_empty() {
            let warned = self.failed_wanted().count();
            let mut s = format!("passed ({} checks", self.checks.len());
            if warned > 0 {
                s.push_str(&format!(", {warned} wanted failed"));
            }
            s.push(')');
            s
        } else {
            format!("failed: {}", failed.join(", "))
        }
    }
}

/// What [`run_checks`] reports while it works (for the journal: a check
/// that hangs shows up as started long before its result).
#[derive(Debug)]
pub enum HealthEvent<'a> {
    /// A check is about to run.
    Starting(&'a Check),
    /// A check finished.
    Finished(&'a CheckResult),
}

/// Refuses anything but `CHECKSUM.SERIAL` (64 lowercase hex digits, a dot,
/// a decimal `u32`): the name becomes a directory name.
pub fn validate_deployment(name: &str) -> Result<(), HealthError> {
    let ok = name.split_once('.').is_some_and(|(csum, serial)| {
        csum.len() == 64
            && csum.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && !serial.is_empty()
            && serial.bytes().all(|b| b.is_ascii_digit())
            && serial.parse::<u32>().is_ok()
    });
    if ok { Ok(()) } else { Err(HealthError::InvalidDeployment { name: name.to_owned() }) }
}

/// Runs every check of `ctx.check_dirs` and returns the report (not yet
/// saved: see [`save_report`]). Errors only when a check directory cannot
/// be read; a check that fails is a result.
pub fn run_checks(
    ctx: &HealthContext<'_>,
    opts: &HealthOptions,
    on_event: &mut dyn FnMut(HealthEvent<'_>),
) -> Result<HealthReport, HealthError> {
    validate_deployment(ctx.deployment)?;
    let started = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let t0 = Instant::now();
    let set = discover(ctx.check_dirs)?;
    let mut checks = Vec::with_capacity(set.checks.len());
    for check in &set.checks {
        on_event(HealthEvent::Starting(check));
        let result = run_one(check, ctx, opts);
        on_event(HealthEvent::Finished(&result));
        checks.push(result);
    }
    let passed = checks.iter().all(|c| c.kind == CheckKind::Wanted || c.passed());
    Ok(HealthReport {
        deployment: ctx.deployment.to_owned(),
        boot_attempt: ctx.boot_attempt,
        started,
        duration_ms: millis(t0.elapsed()),
        passed,
        checks,
        skipped: set.skipped,
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// "60s", or "1500ms" for a timeout that is not whole seconds.
fn show_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

/// The end of a stream, bounded: the buffer may grow to twice the cap
/// before its front is dropped, so each byte is moved at most once or
/// twice however much a check writes.
#[derive(Debug)]
struct Tail {
    buf: Vec<u8>,
    total: u64,
    cap: usize,
}

impl Tail {
    fn new(cap: usize) -> Tail {
        Tail { buf: Vec::new(), total: 0, cap }
    }

    fn push(&mut self, data: &[u8]) {
        self.total = self.total.saturating_add(data.len() as u64);
        if data.len() >= self.cap {
            self.buf.clear();
            self.buf.extend_from_slice(&data[data.len() - self.cap..]);
            return;
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() > 2 * self.cap {
            self.buf.drain(..self.buf.len() - self.cap);
        }
    }

    fn finish(&self) -> OutputTail {
        let start = self.buf.len().saturating_sub(self.cap);
        let mut kept = &self.buf[start..];
        let truncated = self.total > kept.len() as u64;
        if truncated {
            // The cut may split a character: drop its continuation bytes
            // rather than show a replacement character.
            let skip = kept.iter().take(3).take_while(|&&b| b & 0xc0 == 0x80).count();
            kept = &kept[skip..];
        }
        OutputTail { text: String::from_utf8_lossy(kept).into_owned(), bytes: self.total, truncated }
    }
}

/// Reads `src` to its end into `tail`; tells `done` when it gets there.
fn collect(
    mut src: impl Read + Send + 'static,
    tail: Arc<Mutex<Tail>>,
    done: mpsc::Sender<()>,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("health-output".into()).spawn(move || {
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            match src.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => tail.lock().unwrap_or_else(|p| p.into_inner()).push(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A read error on a pipe ends the stream: keep what we have.
                Err(_) => break,
            }
        }
        let _ = done.send(());
    })
}

/// Kills the check's process group. `ESRCH` (nothing left) is the common
/// case after a check that cleaned up after itself, and not an error.
fn kill_group(pgid: Pid) {
    // Pid::from_child never yields 1, for which kill(-1) would mean every
    // process; the check is belt and braces.
    if pgid != Pid::INIT {
        let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
    }
}

/// Waits up to `deadline` for the process `pid` to exit; false if it is
/// still running then. It is not reaped (`WNOWAIT`): until it is, its pid,
/// which is also its process group's id, cannot be reused, so killing the
/// group afterwards cannot hit an unrelated process.
fn wait_exit(pid: Pid, deadline: Instant) -> io::Result<bool> {
    // Polling with a growing interval (1 ms up to MAX_POLL) notices a quick
    // check within a millisecond and costs nothing measurable for a slow
    // one, without a waiter thread.
    let mut step = Duration::from_millis(1);
    loop {
        let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        match rustix::process::waitid(WaitId::Pid(pid), opts) {
            Ok(Some(_)) => return Ok(true),
            Ok(None) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        std::thread::sleep(step.min(deadline - now));
        step = (step * 2).min(MAX_POLL);
    }
}

fn run_one(check: &Check, ctx: &HealthContext<'_>, opts: &HealthOptions) -> CheckResult {
    let t0 = Instant::now();
    let mut result = CheckResult {
        name: check.name.clone(),
        path: check.path.display().to_string(),
        kind: check.kind,
        status: CheckStatus::NotStarted,
        exit_code: None,
        signal: None,
        reason: None,
        duration_ms: 0,
        stdout: OutputTail::default(),
        stderr: OutputTail::default(),
    };
    let mut cmd = Command::new(&check.path);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .current_dir("/")
        .env(ENV_DEPLOYMENT, ctx.deployment)
        .env(ENV_BOOT_ATTEMPT, ctx.boot_attempt.to_string())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            result.reason = Some(format!("could not start: {e}"));
            result.duration_ms = millis(t0.elapsed());
            return result;
        }
    };
    let pgid = Pid::from_child(&child);
    let (done_tx, done_rx) = mpsc::channel();
    let out_tail = Arc::new(Mutex::new(Tail::new(OUTPUT_TAIL_BYTES)));
    let err_tail = Arc::new(Mutex::new(Tail::new(OUTPUT_TAIL_BYTES)));
    let mut collectors = 0;
    let mut setup_error = None;
    if let Some(out) = child.stdout.take() {
        match collect(out, out_tail.clone(), done_tx.clone()) {
            Ok(_) => collectors += 1,
            Err(e) => setup_error = Some(e),
        }
    }
    if let Some(err) = child.stderr.take() {
        match collect(err, err_tail.clone(), done_tx) {
            Ok(_) => collectors += 1,
            Err(e) => setup_error = Some(e),
        }
    }
    let waited = match setup_error {
        // Without a collector a chatty check would block on a full pipe:
        // kill it right away. Failing is the safe side for a boot check.
        Some(e) => Err(io::Error::new(e.kind(), format!("cannot collect its output: {e}"))),
        None => wait_exit(pgid, t0 + opts.timeout),
    };
    // Whatever is left of the group goes now: the check itself on a
    // timeout, its leftovers otherwise (see the module documentation).
    kill_group(pgid);
    match waited {
        Ok(true) => {}
        Ok(false) => {
            result.status = CheckStatus::TimedOut;
            result.reason = Some(format!("timed out after {}", show_duration(opts.timeout)));
        }
        Err(e) => {
            result.status = CheckStatus::Failed;
            result.reason = Some(format!("waiting for it failed: {e}"));
        }
    }
    // Reaps it (at once: it has exited, or was just killed).
    match child.wait() {
        Ok(st) => {
            result.exit_code = st.code();
            result.signal = st.signal();
            if result.reason.is_none() {
                (result.status, result.reason) = match (st.code(), st.signal()) {
                    (Some(0), _) => (CheckStatus::Passed, None),
                    (Some(c), _) => (CheckStatus::Failed, Some(format!("exited with status {c}"))),
                    (None, Some(s)) => (CheckStatus::Failed, Some(format!("killed by signal {s}"))),
                    (None, None) => (CheckStatus::Failed, Some(format!("ended with {st}"))),
                };
            }
        }
        Err(e) if result.reason.is_none() => {
            result.status = CheckStatus::Failed;
            result.reason = Some(format!("waiting for it failed: {e}"));
        }
        Err(_) => {}
    }
    // Collectors end when the last writer is gone, which is now unless a
    // process escaped the group; then take what has arrived.
    let grace = Instant::now() + PIPE_GRACE;
    for _ in 0..collectors {
        let left = grace.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            break;
        }
    }
    result.stdout = out_tail.lock().unwrap_or_else(|p| p.into_inner()).finish();
    result.stderr = err_tail.lock().unwrap_or_else(|p| p.into_inner()).finish();
    result.duration_ms = millis(t0.elapsed());
    result
}

/// A report as written to a file: the report inside the envelope.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileDocRef<'a> {
    api_version: &'static str,
    kind: &'static str,
    #[serde(flatten)]
    report: &'a HealthReport,
}

/// A report file as read back; the envelope is checked by the reader.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileDoc {
    api_version: String,
    kind: String,
    #[serde(flatten)]
    report: HealthReport,
}

fn to_file_bytes(report: &HealthReport) -> Result<Vec<u8>, HealthError> {
    let doc = FileDocRef { api_version: REPORT_API_VERSION, kind: REPORT_KIND, report };
    let mut v = serde_json::to_vec_pretty(&doc).map_err(HealthError::Serialize)?;
    v.push(b'\n');
    Ok(v)
}

/// A report file's name: `SEQ-attempt-N.json`.
fn report_file_name(seq: u64, attempt: u32) -> String {
    format!("{seq:08}-attempt-{attempt}.json")
}

/// Sequence and attempt of a report file name; `None` for anything else
/// (temp files, stray files), which readers ignore.
fn parse_report_file_name(name: &[u8]) -> Option<(u64, u32)> {
    let name = std::str::from_utf8(name).ok()?;
    let (seq, attempt) = name.strip_suffix(".json")?.split_once("-attempt-")?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(seq) || !digits(attempt) {
        return None;
    }
    Some((seq.parse().ok()?, attempt.parse().ok()?))
}

/// Report files of one deployment directory, oldest first.
fn list_reports(dir: &Dir) -> Result<Vec<(u64, u32, PathBuf)>, HealthError> {
    let mut v: Vec<(u64, u32, PathBuf)> = dir
        .sorted_entries()
        .map_err(io_err("listing", dir.path()))?
        .into_iter()
        .filter_map(|e| parse_report_file_name(e.name.as_os_str().as_bytes()).map(|(s, a)| (s, a, e.name)))
        .collect();
    v.sort();
    Ok(v)
}

/// Serializes `report`, shortening output tails (all to the same length,
/// halved until it fits, keeping their ends) so that the file fits in
/// [`MAX_REPORT_BYTES`]. Halving all at once needs a few serializations at
/// most, where trimming one tail at a time would need one per check.
fn to_bytes_capped(report: &HealthReport) -> Result<Vec<u8>, HealthError> {
    let bytes = to_file_bytes(report)?;
    if bytes.len() as u64 <= MAX_REPORT_BYTES {
        return Ok(bytes);
    }
    let mut r = report.clone();
    let mut limit = r.checks.iter().flat_map(|c| [c.stdout.text.len(), c.stderr.text.len()]).max().unwrap_or(0);
    while limit > 0 {
        limit /= 2;
        for t in r.checks.iter_mut().flat_map(|c| [&mut c.stdout, &mut c.stderr]) {
            if t.text.len() > limit {
                let mut cut = t.text.len() - limit;
                while !t.text.is_char_boundary(cut) {
                    cut += 1;
                }
                t.text.drain(..cut);
                t.truncated = true;
            }
        }
        let bytes = to_file_bytes(&r)?;
        if bytes.len() as u64 <= MAX_REPORT_BYTES {
            return Ok(bytes);
        }
    }
    Err(HealthError::ReportTooBig {
        deployment: r.deployment.clone(),
        checks: r.checks.len(),
        size: to_file_bytes(&r)?.len() as u64,
        limit: MAX_REPORT_BYTES,
    })
}

/// Opens (creating it if needed) the state directory and the deployment's
/// directory below it.
fn open_deployment_dir(state_dir: &Path, deployment: &str) -> Result<Dir, HealthError> {
    std::fs::create_dir_all(state_dir).map_err(io_err("creating", state_dir))?;
    let state = Dir::open(state_dir).map_err(io_err("opening", state_dir))?;
    let created = state.stat_optional(deployment).map_err(io_err("examining", state.display(deployment)))?.is_none();
    state.ensure_dir(deployment, REPORT_DIR_MODE).map_err(io_err("creating", state.display(deployment)))?;
    if created {
        state.fsync().map_err(io_err("syncing", state_dir))?;
    }
    // No-follow: a symlink planted in the state directory is refused.
    state.open_dir(deployment).map_err(io_err("opening", state.display(deployment)))
}

/// Writes `report` durably (temp file, fsync, rename, fsync of the
/// directory) as the newest report of its deployment in `state_dir`, then
/// removes all but the newest [`KEEP_REPORTS`]. Returns the file written.
pub fn save_report(state_dir: &Path, report: &HealthReport) -> Result<PathBuf, HealthError> {
    validate_deployment(&report.deployment)?;
    let bytes = to_bytes_capped(report)?;
    let dir = open_deployment_dir(state_dir, &report.deployment)?;
    // Two runs at once (a manual rerun during boot) must not pick the same
    // sequence number; the lock lives as long as `dir`.
    dir.lock_exclusive().map_err(io_err("locking", dir.path()))?;
    let existing = list_reports(&dir)?;
    let seq = existing.last().map_or(1, |(s, _, _)| s.saturating_add(1));
    let name = report_file_name(seq, report.boot_attempt);
    dir.write_atomic(&name, &bytes, REPORT_MODE).map_err(io_err("writing", dir.display(&name)))?;
    let excess = (existing.len() + 1).saturating_sub(KEEP_REPORTS);
    for (_, _, old) in existing.iter().take(excess) {
        // remove_all, not unlink: whatever has a report's name goes, even a
        // directory someone put there (it never follows a symlink).
        dir.remove_all(old).map_err(io_err("removing", dir.display(old)))?;
    }
    if excess > 0 {
        dir.fsync().map_err(io_err("syncing", dir.path()))?;
    }
    Ok(dir.display(&name))
}

/// One report file as read back.
#[derive(Debug)]
pub struct StoredReport {
    /// The file.
    pub path: PathBuf,
    /// Its sequence number (grows with every run for the deployment).
    pub sequence: u64,
    /// The boot attempt its name gives.
    pub boot_attempt: u32,
    /// Its contents, or why they cannot be used (one bad file does not
    /// hide the others).
    pub report: Result<HealthReport, HealthError>,
}

/// The reports of `deployment` in `state_dir`, oldest first: at most the
/// newest [`KEEP_REPORTS`], none if there are none. Safe on hostile
/// content: reads are capped at [`MAX_REPORT_BYTES`], symlinks are not
/// followed, and a bad file is an error in its entry naming it.
pub fn load_reports(state_dir: &Path, deployment: &str) -> Result<Vec<StoredReport>, HealthError> {
    validate_deployment(deployment)?;
    let state = match Dir::open(state_dir) {
        Ok(d) => d,
        Err(e) if fsutil::is_not_found(&e) => return Ok(Vec::new()),
        Err(e) => return Err(io_err("opening", state_dir)(e)),
    };
    let Some(dir) = state.open_dir_optional(deployment).map_err(io_err("opening", state.display(deployment)))? else {
        return Ok(Vec::new());
    };
    let files = list_reports(&dir)?;
    let skip = files.len().saturating_sub(KEEP_REPORTS);
    Ok(files
        .into_iter()
        .skip(skip)
        .map(|(sequence, boot_attempt, name)| StoredReport {
            path: dir.display(&name),
            sequence,
            boot_attempt,
            report: read_report(&dir, &name, deployment, boot_attempt),
        })
        .collect())
}

fn read_report(dir: &Dir, name: &Path, deployment: &str, attempt: u32) -> Result<HealthReport, HealthError> {
    let path = dir.display(name);
    let not_regular = |path| HealthError::Io {
        action: "reading",
        path,
        source: io::Error::new(io::ErrorKind::InvalidData, "not a regular file"),
    };
    // Looked at before the open: opening a FIFO for reading would block
    // until a writer came, and `status` would hang.
    let lst = dir.stat(name).map_err(io_err("examining", &path))?;
    if FileType::from_raw_mode(lst.st_mode) != FileType::RegularFile {
        return Err(not_regular(path));
    }
    let f = dir.open_file(name).map_err(io_err("opening", &path))?;
    let st = fsutil::fd_stat(&f).map_err(io_err("examining", &path))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(not_regular(path));
    }
    let size = u64::try_from(st.st_size).unwrap_or(0);
    if size > MAX_REPORT_BYTES {
        return Err(HealthError::ReportTooLarge { path, size, limit: MAX_REPORT_BYTES });
    }
    // The size may change under us; the cap holds whatever it does.
    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    f.take(MAX_REPORT_BYTES + 1).read_to_end(&mut data).map_err(io_err("reading", &path))?;
    if data.len() as u64 > MAX_REPORT_BYTES {
        return Err(HealthError::ReportTooLarge { path, size: data.len() as u64, limit: MAX_REPORT_BYTES });
    }
    let doc: FileDoc =
        serde_json::from_slice(&data).map_err(|source| HealthError::BadJson { path: path.clone(), source })?;
    let report = doc.report;
    let mismatch = |field, expected: &str, found: &str| {
        (expected != found).then(|| HealthError::ReportMismatch {
            path: path.clone(),
            field,
            expected: expected.to_owned(),
            found: found.to_owned(),
        })
    };
    if let Some(e) = mismatch("apiVersion", REPORT_API_VERSION, &doc.api_version)
        .or_else(|| mismatch("kind", REPORT_KIND, &doc.kind))
        .or_else(|| mismatch("deployment", deployment, &report.deployment))
        .or_else(|| mismatch("bootAttempt", &attempt.to_string(), &report.boot_attempt.to_string()))
    {
        return Err(e);
    }
    Ok(report)
}

/// Removes every report of `deployment` (when the deployment itself is
/// removed); nothing to remove is not an error.
pub fn remove_reports(state_dir: &Path, deployment: &str) -> Result<(), HealthError> {
    validate_deployment(deployment)?;
    let state = match Dir::open(state_dir) {
        Ok(d) => d,
        Err(e) if fsutil::is_not_found(&e) => return Ok(()),
        Err(e) => return Err(io_err("opening", state_dir)(e)),
    };
    state.remove_all(deployment).map_err(io_err("removing", state.display(deployment)))?;
    state.fsync().map_err(io_err("syncing", state_dir))
}

/// [`CHECK_DIRS`] as paths.
pub fn default_check_dirs() -> Vec<PathBuf> {
    CHECK_DIRS.iter().map(PathBuf::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_names() {
        let csum = "a".repeat(64);
        for (name, ok) in [
            (format!("{csum}.0"), true),
            (format!("{csum}.4294967295"), true),
            (format!("{csum}.4294967296"), false),
            (format!("{csum}."), false),
            (format!("{csum}.-1"), false),
            (format!("{}.0", "A".repeat(64)), false),
            (format!("{}.0", "a".repeat(63)), false),
            (format!("{csum}.0/.."), false),
            ("../../etc.0".to_owned(), false),
            (String::new(), false),
        ] {
            assert_eq!(validate_deployment(&name).is_ok(), ok, "{name:?}");
        }
    }

    #[test]
    fn report_file_names() {
        for (name, want) in [
            ("00000001-attempt-1.json", Some((1, 1))),
            ("123456789-attempt-0.json", Some((123_456_789, 0))),
            ("00000001-attempt-1.json.tmp", None),
            (".tmp-w-0123-attempt-1.json", None),
            ("x-attempt-1.json", None),
            ("00000001-attempt-.json", None),
            ("00000001-attempt-+1.json", None),
            ("99999999999999999999999-attempt-1.json", None),
        ] {
            assert_eq!(parse_report_file_name(name.as_bytes()), want, "{name}");
        }
        assert_eq!(parse_report_file_name(report_file_name(7, 3).as_bytes()), Some((7, 3)));
    }

    #[test]
    fn tail_keeps_the_end() {
        let cap = 8;
        // (writes, expected text, expected truncated)
        let cases: &[(&[&[u8]], &str, bool)] = &[
            (&[], "", false),
            (&[b"abc"], "abc", false),
            (&[b"abcdefgh"], "abcdefgh", false),
            (&[b"abcdefghi"], "bcdefghi", true),
            (&[b"abc", b"defgh", b"ijk"], "defghijk", true),
            (&[b"0123456789abcdefghij", b"xy"], "efghijxy", true),
            // A cut inside a 3-byte character drops its remains.
            (&[b"\xe2\x82\xacdefghi"], "defghi", true),
            (&[b"\xff"], "\u{fffd}", false),
        ];
        for (writes, text, truncated) in cases {
            let mut t = Tail::new(cap);
            for w in *writes {
                t.push(w);
            }
            let out = t.finish();
            assert_eq!((out.text.as_str(), out.truncated), (*text, *truncated), "{writes:?}");
            assert_eq!(out.bytes, writes.iter().map(|w| w.len() as u64).sum::<u64>());
        }
        // Many small writes stay bounded.
        let mut t = Tail::new(cap);
        for _ in 0..1000 {
            t.push(b"abc");
        }
        assert!(t.buf.len() <= 2 * cap + 3);
        assert_eq!(t.finish().text, "bcabcabc");
    }

    #[test]
    fn kinds_and_backups() {
        assert_eq!(CheckKind::of("50-ntp.wanted"), CheckKind::Wanted);
        assert_eq!(CheckKind::of("50-ntp"), CheckKind::Required);
        assert_eq!(CheckKind::of("50-wanted"), CheckKind::Required);
        for (name, backup) in [
            ("10-net", false),
            ("10-net~", true),
            ("10-net.dpkg-old", true),
            ("10-net.dpkg-dist", true),
            ("10-net.rpmnew", true),
            ("10-net.ucf-old", true),
            ("10-net.wanted", false),
        ] {
            assert_eq!(is_backup_name(name.as_bytes()), backup, "{name}");
        }
    }

    fn report_with_output(n: usize, len: usize) -> HealthReport {
        let check = |i: usize| CheckResult {
            name: format!("{i:02}-x"),
            path: format!("/x/{i:02}-x"),
            kind: CheckKind::Required,
            status: CheckStatus::Passed,
            exit_code: Some(0),
            signal: None,
            reason: None,
            duration_ms: 1,
            // Control bytes: JSON escapes each as six.
            stdout: OutputTail { text: "\u{1}".repeat(len), bytes: len as u64, truncated: false },
            stderr: OutputTail::default(),
        };
        HealthReport {
            deployment: format!("{}.0", "a".repeat(64)),
            boot_attempt: 1,
            started: 0,
            duration_ms: 0,
            passed: true,
            checks: (0..n).map(check).collect(),
            skipped: Vec::new(),
        }
    }

    #[test]
    fn oversized_reports_are_shortened_to_fit() -> Result<(), HealthError> {
        let small = report_with_output(2, 10);
        assert_eq!(to_bytes_capped(&small)?, to_file_bytes(&small)?);
        // 60 checks x 64 KiB of control bytes = about 23 MiB of JSON.
        let big = report_with_output(60, OUTPUT_TAIL_BYTES);
        let bytes = to_bytes_capped(&big)?;
        assert!(bytes.len() as u64 <= MAX_REPORT_BYTES);
        let back: FileDoc = serde_json::from_slice(&bytes).map_err(HealthError::Serialize)?;
        assert_eq!((back.api_version.as_str(), back.kind.as_str()), (REPORT_API_VERSION, REPORT_KIND));
        assert_eq!(back.report.checks.len(), 60);
        assert!(back.report.checks.iter().any(|c| c.stdout.truncated));
        Ok(())
    }

    #[test]
    fn summaries() {
        let mut r = report_with_output(2, 0);
        assert_eq!(r.summary(), "passed (2 checks)");
        r.checks[1].kind = CheckKind::Wanted;
        r.checks[1].status = CheckStatus::Failed;
        assert_eq!(r.summary(), "passed (2 checks, 1 wanted failed)");
        r.checks[0].status = CheckStatus::TimedOut;
        r.checks[0].reason = Some("timed out after 60s".into());
        assert_eq!(r.summary(), "failed: 00-x (timed out after 60s)");
    }
}
