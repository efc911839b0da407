//! Boot health checks (`src/health.rs`) run as real processes against
//! scratch check directories, their reports on disk, and the systemd units
//! in `systemd/` checked by `systemd-analyze verify`.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use photon_upgrade::health::{
    self, CheckKind, CheckStatus, HealthContext, HealthError, HealthEvent, HealthOptions, HealthReport, SkipReason,
};

use crate::util::{Scratch, bin, sh};

fn deployment() -> String {
    format!("{}.0", "ab".repeat(32))
}

/// A scratch `/etc` and `/usr/lib` check directory pair.
struct Dirs {
    scratch: Scratch,
    etc: PathBuf,
    lib: PathBuf,
}

impl Dirs {
    fn new() -> Dirs {
        let scratch = Scratch::new();
        let etc = scratch.join("etc/photon-upgrade/health.d");
        let lib = scratch.join("usr/lib/photon-upgrade/health.d");
        fs::create_dir_all(&etc).expect("mkdir etc");
        fs::create_dir_all(&lib).expect("mkdir lib");
        Dirs { scratch, etc, lib }
    }

    fn list(&self) -> Vec<PathBuf> {
        vec![self.etc.clone(), self.lib.clone()]
    }

    fn run(&self, attempt: u32, timeout: Duration) -> HealthReport {
        let dirs = self.list();
        let dep = deployment();
        let ctx = HealthContext { deployment: &dep, boot_attempt: attempt, check_dirs: &dirs };
        let mut events = Vec::new();
        let report = health::run_checks(&ctx, &HealthOptions { timeout }, &mut |e| {
            events.push(match e {
                HealthEvent::Starting(c) => format!("start {}", c.name),
                HealthEvent::Finished(r) => format!("end {}", r.name),
            })
        })
        .expect("running the checks");
        let want: Vec<String> =
            report.checks.iter().flat_map(|c| [format!("start {}", c.name), format!("end {}", c.name)]).collect();
        assert_eq!(events, want, "events");
        report
    }
}

/// Writes an executable shell script.
fn script(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("writing a check");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod a check");
}

fn check<'a>(r: &'a HealthReport, name: &str) -> &'a health::CheckResult {
    r.checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name} in {r:#?}"))
}

/// Kills the processes whose pids are in these files when dropped, so a
/// failing assertion leaves nothing running.
struct Reap(Vec<PathBuf>);

impl Drop for Reap {
    fn drop(&mut self) {
        for f in &self.0 {
            if let Some(pid) = read_pid(f) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
}

fn read_pid(f: &Path) -> Option<u32> {
    fs::read_to_string(f).ok()?.trim().parse().ok()
}

/// True when `pid` is gone (or a zombie waiting for an init that does not reap).
fn is_gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[track_caller]
fn assert_gone_soon(pid: u32) {
    let t0 = Instant::now();
    while !is_gone(pid) {
        assert!(t0.elapsed() < Duration::from_secs(5), "process {pid} survived its check");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn checks_run_in_order_with_overrides_masks_and_wanted() {
    let d = Dirs::new();
    script(&d.etc, "05-etc-only", "exit 0");
    script(&d.lib, "10-env", r#"echo "$PHOTON_DEPLOYMENT $PHOTON_BOOT_ATTEMPT"; readlink /proc/self/fd/0; pwd"#);
    script(&d.lib, "20-overridden", "echo 'disk full' >&2; exit 3");
    script(&d.etc, "20-overridden", "echo overridden");
    script(&d.lib, "30-ntp.wanted", "echo 'clock not synced' >&2; exit 1");
    script(&d.lib, "40-masked", "exit 1");
    symlink("/dev/null", d.etc.join("40-masked")).expect("mask");
    script(&d.lib, "42-emptied", "exit 1");
    fs::write(d.etc.join("42-emptied"), "").expect("empty mask");
    script(&d.lib, "45-linked", "echo via symlink");
    symlink(d.lib.join("45-linked"), d.etc.join("45-linked")).expect("symlink override");
    script(&d.lib, "50-noexec", "exit 1");
    fs::set_permissions(d.lib.join("50-noexec"), fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::create_dir(d.lib.join("60-dir")).expect("mkdir");
    script(&d.lib, "70-fails", "echo 'service x is down'; exit 4");
    script(&d.lib, "70-fails.dpkg-old", "exit 1");
    script(&d.lib, ".hidden", "exit 1");
    script(&d.etc, "80-unusual~", "exit 1");

    let r = d.run(2, Duration::from_secs(30));
    let names: Vec<&str> = r.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["05-etc-only", "10-env", "20-overridden", "30-ntp.wanted", "45-linked", "70-fails"]);

    let env = check(&r, "10-env");
    assert_eq!(env.stdout.text, format!("{} 2\n/dev/null\n/\n", deployment()));
    assert_eq!(
        (env.status, env.exit_code, env.kind, env.reason.as_deref()),
        (CheckStatus::Passed, Some(0), CheckKind::Required, None)
    );

    let over = check(&r, "20-overridden");
    assert_eq!(
        (over.status, over.stdout.text.as_str(), over.stderr.text.as_str()),
        (CheckStatus::Passed, "overridden\n", "")
    );
    assert_eq!(over.path, d.etc.join("20-overridden").display().to_string());
    assert_eq!(check(&r, "45-linked").stdout.text, "via symlink\n");

    let ntp = check(&r, "30-ntp.wanted");
    assert_eq!(
        (ntp.kind, ntp.status, ntp.stderr.text.as_str()),
        (CheckKind::Wanted, CheckStatus::Failed, "clock not synced\n")
    );

    let fails = check(&r, "70-fails");
    assert_eq!(
        (fails.status, fails.exit_code, fails.signal, fails.reason.as_deref()),
        (CheckStatus::Failed, Some(4), None, Some("exited with status 4"))
    );
    assert_eq!(fails.stdout.text, "service x is down\n");
    assert!(!r.passed);
    assert_eq!(r.failed_required().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["70-fails"]);
    assert_eq!(r.failed_wanted().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["30-ntp.wanted"]);
    assert_eq!(r.summary(), "failed: 70-fails (exited with status 4)");
    assert_eq!((r.deployment.as_str(), r.boot_attempt), (deployment().as_str(), 2));

    let skipped: Vec<(&str, SkipReason)> = r.skipped.iter().map(|s| (s.name.as_str(), s.reason)).collect();
    assert_eq!(
        skipped,
        [
            ("40-masked", SkipReason::Masked),
            ("42-emptied", SkipReason::Masked),
            ("50-noexec", SkipReason::NotExecutable),
            ("60-dir", SkipReason::NotAFile),
            ("70-fails.dpkg-old", SkipReason::IgnoredName),
            ("80-unusual~", SkipReason::IgnoredName),
        ]
    );
    assert_eq!(r.skipped[0].path, d.etc.join("40-masked").display().to_string());

    // Masking the failure in /etc leaves only the wanted one: a pass with a warning.
    symlink("/dev/null", d.etc.join("70-fails")).expect("mask");
    let r = d.run(3, Duration::from_secs(30));
    assert!(r.passed, "{r:#?}");
    assert_eq!(r.summary(), "passed (5 checks, 1 wanted failed)");
}

#[test]
fn no_checks_is_a_pass() {
    let d = Dirs::new();
    fs::remove_dir(&d.etc).expect("rmdir");
    let r = d.run(1, Duration::from_secs(1));
    assert!(r.passed && r.checks.is_empty() && r.skipped.is_empty(), "{r:#?}");
    assert_eq!(r.summary(), "passed (0 checks)");
}

#[test]
fn broken_checks_fail_or_are_skipped_with_a_reason() {
    let d = Dirs::new();
    let p = d.lib.join("10-bad-interpreter");
    fs::write(&p, "#!/nonexistent/interpreter\n").expect("write");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
    symlink(d.lib.join("missing"), d.etc.join("20-dangling")).expect("symlink");
    let odd = std::ffi::OsStr::from_bytes(b"30-not-utf8-\xff");
    script(&d.lib, "placeholder", "exit 0");
    fs::rename(d.lib.join("placeholder"), d.lib.join(odd)).expect("rename");
    script(&d.lib, "40-killed", "kill -TERM $$");

    let r = d.run(1, Duration::from_secs(30));
    let bad = check(&r, "10-bad-interpreter");
    assert_eq!((bad.status, bad.exit_code), (CheckStatus::NotStarted, None));
    assert!(bad.reason.as_deref().is_some_and(|s| s.starts_with("could not start: ")), "{bad:#?}");
    let killed = check(&r, "40-killed");
    assert_eq!(
        (killed.status, killed.signal, killed.reason.as_deref()),
        (CheckStatus::Failed, Some(15), Some("killed by signal 15"))
    );
    assert!(!r.passed);
    let skipped: Vec<(&str, SkipReason)> = r.skipped.iter().map(|s| (s.name.as_str(), s.reason)).collect();
    assert_eq!(skipped, [("20-dangling", SkipReason::Unreadable), ("30-not-utf8-\u{fffd}", SkipReason::NonUtf8Name)]);
    assert!(r.skipped[0].detail.is_some());
}

#[test]
fn a_check_that_hangs_is_killed_with_its_process_group() {
    let d = Dirs::new();
    let bg = d.scratch.join("bg.pid");
    let _reap = Reap(vec![bg.clone()]);
    script(&d.lib, "10-hangs", &format!("sleep 300 & echo $! > {}; echo started; sleep 300", bg.display()));
    script(&d.lib, "20-after", "echo still runs");
    let t0 = Instant::now();
    let r = d.run(1, Duration::from_secs(1));
    let elapsed = t0.elapsed();
    let hung = check(&r, "10-hangs");
    assert_eq!(
        (hung.status, hung.signal, hung.reason.as_deref()),
        (CheckStatus::TimedOut, Some(9), Some("timed out after 1s"))
    );
    assert_eq!(hung.stdout.text, "started\n");
    assert!((1000..3000).contains(&hung.duration_ms), "{}", hung.duration_ms);
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    assert_eq!(check(&r, "20-after").stdout.text, "still runs\n");
    assert!(!r.passed);
    assert_gone_soon(read_pid(&bg).expect("the check wrote its background pid"));
}

#[test]
fn leftovers_of_a_passing_check_are_killed() {
    let d = Dirs::new();
    let bg = d.scratch.join("bg.pid");
    let escaped = d.scratch.join("escaped.pid");
    let _reap = Reap(vec![bg.clone(), escaped.clone()]);
    // A leftover in the group holds stdout open; it is killed and the
    // check ends at once.
    script(&d.lib, "10-leaves-one", &format!("sleep 300 & echo $! > {}; echo done", bg.display()));
    // One that escapes the group (setsid) cannot be killed without a
    // cgroup; its output is waited for at most PIPE_GRACE.
    script(
        &d.lib,
        "20-escapes",
        &format!(
            "setsid sh -c 'echo $$ > {e}; exec sleep 300' & while [ ! -s {e} ]; do sleep 0.01; done; echo done",
            e = escaped.display()
        ),
    );
    let r = d.run(1, Duration::from_secs(30));
    let one = check(&r, "10-leaves-one");
    assert_eq!((one.status, one.stdout.text.as_str()), (CheckStatus::Passed, "done\n"));
    assert!(one.duration_ms < 1000, "waited for the leftover: {}ms", one.duration_ms);
    assert_gone_soon(read_pid(&bg).expect("background pid"));
    let two = check(&r, "20-escapes");
    assert_eq!((two.status, two.stdout.text.as_str()), (CheckStatus::Passed, "done\n"));
    let grace = u64::try_from(health::PIPE_GRACE.as_millis()).expect("small");
    assert!((grace..grace + 2000).contains(&two.duration_ms), "{}ms", two.duration_ms);
    assert!(r.passed);
}

#[test]
fn output_keeps_the_last_64_kib_of_each_stream() {
    let d = Dirs::new();
    script(
        &d.lib,
        "10-chatty",
        "head -c 1048576 /dev/zero | tr '\\0' x; echo; echo END-OUT\n\
         head -c 300000 /dev/zero | tr '\\0' y >&2; echo END-ERR >&2; exit 1",
    );
    let r = d.run(1, Duration::from_secs(30));
    let c = check(&r, "10-chatty");
    assert_eq!(c.status, CheckStatus::Failed);
    assert_eq!((c.stdout.bytes, c.stdout.truncated), (1_048_576 + 1 + 8, true));
    assert_eq!(c.stdout.text.len(), health::OUTPUT_TAIL_BYTES);
    assert!(c.stdout.text.ends_with("xxx\nEND-OUT\n"));
    assert!(c.stdout.text.trim_end_matches("\nEND-OUT\n").bytes().all(|b| b == b'x'));
    assert_eq!((c.stderr.bytes, c.stderr.truncated), (300_000 + 8, true));
    assert_eq!(c.stderr.text.len(), health::OUTPUT_TAIL_BYTES);
    assert!(c.stderr.text.ends_with("yyyEND-ERR\n"));
}

fn quick_report(d: &Dirs, attempt: u32) -> HealthReport {
    if !d.lib.join("10-ok").exists() {
        script(&d.lib, "10-ok", "echo ok");
    }
    d.run(attempt, Duration::from_secs(30))
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn reports_are_saved_durably_and_rotated() {
    let d = Dirs::new();
    let state = d.scratch.join("var/lib/photon-upgrade/health");
    let dep = deployment();
    let other = format!("{}.1", "cd".repeat(32));
    let mut other_report = quick_report(&d, 1);
    other_report.deployment = other.clone();
    health::save_report(&state, &other_report).expect("saving");

    let mut saved = Vec::new();
    for attempt in 1..=12 {
        let r = quick_report(&d, attempt);
        let path = health::save_report(&state, &r).expect("saving");
        assert_eq!(path, state.join(&dep).join(format!("{attempt:08}-attempt-{attempt}.json")));
        saved.push(r);
    }
    let names = file_names(&state.join(&dep));
    let want: Vec<String> = (3..=12).map(|a| format!("{a:08}-attempt-{a}.json")).collect();
    assert_eq!(names, want, "the newest {} are kept, nothing else", health::KEEP_REPORTS);
    let newest = state.join(&dep).join(&want[9]);
    assert_eq!(fs::metadata(&newest).expect("stat").permissions().mode() & 0o777, 0o640);
    assert_eq!(fs::metadata(state.join(&dep)).expect("stat").permissions().mode() & 0o777, 0o750);
    let text = fs::read_to_string(&newest).expect("read");
    assert!(text.starts_with("{\n  \"apiVersion\": \"photon-upgrade/v1\",\n  \"kind\": \"HealthReport\",\n"), "{text}");

    let loaded = health::load_reports(&state, &dep).expect("loading");
    assert_eq!(
        loaded.iter().map(|s| (s.sequence, s.boot_attempt)).collect::<Vec<_>>(),
        (3..=12).map(|a| (a, a as u32)).collect::<Vec<_>>()
    );
    for (s, r) in loaded.iter().zip(&saved[2..]) {
        assert_eq!(s.report.as_ref().expect("a good report"), r);
    }
    // Other deployments are separate; removing one removes only its reports.
    assert_eq!(health::load_reports(&state, &other).expect("loading").len(), 1);
    health::remove_reports(&state, &dep).expect("removing");
    assert!(health::load_reports(&state, &dep).expect("loading").is_empty());
    assert_eq!(file_names(&state), [other]);
    // Nothing at all yet is no error.
    assert!(health::load_reports(&d.scratch.join("nowhere"), &dep).expect("loading").is_empty());
    health::remove_reports(&state, &dep).expect("removing twice");
}

#[test]
fn hostile_report_files_are_errors_that_name_the_file() {
    let d = Dirs::new();
    let state = d.scratch.join("health");
    let dep = deployment();
    let good = health::save_report(&state, &quick_report(&d, 1)).expect("saving");
    let dir = state.join(&dep);
    let valid = fs::read_to_string(&good).expect("read");
    let plant = |name: &str, data: &str| fs::write(dir.join(name), data).expect("plant");
    plant("00000002-attempt-1.json", "{not json");
    let huge = fs::File::create(dir.join("00000003-attempt-1.json")).expect("create");
    huge.set_len(health::MAX_REPORT_BYTES + 1).expect("sparse file");
    symlink("/etc/passwd", dir.join("00000004-attempt-1.json")).expect("symlink");
    plant("00000005-attempt-1.json", &valid.replace("\"HealthReport\"", "\"Other\""));
    plant("00000006-attempt-1.json", &valid.replace(&dep, &format!("{}.7", "ef".repeat(32))));
    plant("00000007-attempt-9.json", &valid);
    fs::create_dir(dir.join("00000008-attempt-1.json")).expect("mkdir");
    plant("00000009-attempt-1.json", &format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)));
    sh("mkfifo", &[&dir.join("00000010-attempt-1.json").display().to_string()]).ok();
    plant("notes.txt", "ignored");
    plant("00000011-attempt-1.json.bak", "ignored");

    let loaded = health::load_reports(&state, &dep).expect("loading");
    assert_eq!(loaded.len(), 10);
    assert!(loaded[0].report.is_ok(), "{:?}", loaded[0].report);
    for s in &loaded[1..] {
        let e = s.report.as_ref().expect_err("a planted file must not load");
        assert!(e.to_string().contains(&s.path.display().to_string()), "{e} does not name {}", s.path.display());
        let ok = match s.sequence {
            2 | 9 => matches!(e, HealthError::BadJson { .. }),
            3 => matches!(e, HealthError::ReportTooLarge { .. }),
            4 | 8 | 10 => matches!(e, HealthError::Io { .. }),
            5 => matches!(e, HealthError::ReportMismatch { field: "kind", .. }),
            6 => matches!(e, HealthError::ReportMismatch { field: "deployment", .. }),
            7 => matches!(e, HealthError::ReportMismatch { field: "bootAttempt", .. }),
            _ => false,
        };
        assert!(ok, "file {}: unexpected {e:?}", s.sequence);
    }

    // Saves after them take the next numbers and rotate the oldest out,
    // whatever they are (the directory too).
    for seq in 11..=19 {
        let next = health::save_report(&state, &quick_report(&d, 2)).expect("saving");
        assert_eq!(next, dir.join(format!("{seq:08}-attempt-2.json")));
    }
    let mut want: Vec<String> = (11..=19).map(|s| format!("{s:08}-attempt-2.json")).collect();
    want.extend(["00000010-attempt-1.json".into(), "00000011-attempt-1.json.bak".into(), "notes.txt".into()]);
    want.sort();
    assert_eq!(file_names(&dir), want);
    assert!(!good.exists());

    // Deployment names become paths: anything else is refused.
    for bad in ["../x.0", "", &format!("{dep}/.."), "x.0"] {
        assert!(matches!(health::load_reports(&state, bad), Err(HealthError::InvalidDeployment { .. })), "{bad}");
        let mut r = quick_report(&d, 1);
        r.deployment = bad.to_owned();
        assert!(matches!(health::save_report(&state, &r), Err(HealthError::InvalidDeployment { .. })), "{bad}");
    }
}

#[test]
fn a_symlinked_deployment_directory_is_refused() {
    let d = Dirs::new();
    let state = d.scratch.join("health");
    let elsewhere = d.scratch.join("elsewhere");
    fs::create_dir_all(&state).expect("mkdir");
    fs::create_dir_all(&elsewhere).expect("mkdir");
    symlink(&elsewhere, state.join(deployment())).expect("symlink");
    let e = health::save_report(&state, &quick_report(&d, 1)).expect_err("must not write through a symlink");
    assert!(e.to_string().contains(&state.join(deployment()).display().to_string()), "{e}");
    assert!(health::load_reports(&state, &deployment()).is_err());
    assert!(file_names(&elsewhere).is_empty());
}

// ---- systemd units ----

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd")
}

fn unit_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(units_dir())
        .expect("reading systemd/")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            matches!(p.extension().and_then(|e| e.to_str()), Some("service" | "timer" | "path" | "target" | "socket"))
        })
        .collect();
    v.sort();
    v
}

/// A scratch copy of the units as `systemd-analyze verify` needs them.
///
/// verify insists that every `ExecStart=`/`ExecStop=` program exists and is
/// executable on the machine running it, and `--root=` does not help: with
/// it, verify looks for every unit (sysinit.target, boot-complete.target,
/// ...) below the root too and fails on the first one missing. So the
/// units are copied with `/usr/bin/photon-upgrade` replaced by a scratch
/// executable, the only change, and verified against the host's own
/// systemd units. The copies are enabled as an image builder does
/// (`systemctl --root=IMAGE enable`, then the `.wants/`/`.requires/` links
/// it made are recreated next to the copies), so that verifying
/// `multi-user.target` builds the boot transaction with our units in it and
/// would report an ordering cycle. `Documentation=man:photon-upgrade(1)`
/// is checked against the man pages our binary generates (`MANPATH`).
struct VerifyTree {
    scratch: Scratch,
    units: PathBuf,
    manpath: String,
}

impl VerifyTree {
    fn new(edit: impl Fn(&str, String) -> String) -> VerifyTree {
        let scratch = Scratch::new();
        let units = scratch.join("units");
        let image = scratch.join("image/usr/lib/systemd/system");
        fs::create_dir_all(&units).expect("mkdir");
        fs::create_dir_all(&image).expect("mkdir");
        let fake = scratch.join("photon-upgrade");
        fs::write(&fake, "#!/bin/sh\nexit 0\n").expect("fake binary");
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut enable = vec!["--root".to_owned(), scratch.join("image").display().to_string(), "enable".to_owned()];
        for f in unit_files() {
            let name = f.file_name().expect("name").to_string_lossy().into_owned();
            let text = fs::read_to_string(&f).expect("reading a unit");
            if name.ends_with(".service") {
                assert!(text.contains("/usr/bin/photon-upgrade "), "{name} does not run /usr/bin/photon-upgrade");
            }
            let text = edit(&name, text.replace("/usr/bin/photon-upgrade ", &format!("{} ", fake.display())));
            fs::write(units.join(&name), &text).expect("copy");
            fs::copy(&f, image.join(&name)).expect("copy");
            if text.contains("\n[Install]\n") {
                enable.push(name);
            }
        }
        let args: Vec<&str> = enable.iter().map(String::as_str).collect();
        sh("systemctl", &args).ok();
        let etc = scratch.join("image/etc/systemd/system");
        for dep in fs::read_dir(&etc).expect("systemctl enable made no links") {
            let dep = dep.expect("entry").path();
            let dep_name = dep.file_name().expect("name").to_owned();
            fs::create_dir_all(units.join(&dep_name)).expect("mkdir");
            for link in fs::read_dir(&dep).expect("readdir") {
                let link = link.expect("entry");
                symlink(Path::new("..").join(link.file_name()), units.join(&dep_name).join(link.file_name()))
                    .expect("symlink");
            }
        }
        let man = scratch.join("man");
        sh(bin(), &["internals", "man", &man.join("man1").display().to_string()]).ok();
        // The trailing colon keeps the system's man pages (systemd.special(7)).
        let manpath = format!("{}:", man.display());
        VerifyTree { scratch, units, manpath }
    }

    /// `systemd-analyze verify` on our units plus the targets a boot
    /// starts; returns (success, everything it printed).
    fn verify(&self) -> (bool, String) {
        let mut args: Vec<PathBuf> =
            unit_files().iter().map(|f| self.units.join(f.file_name().expect("name"))).collect();
        args.push(PathBuf::from("/usr/lib/systemd/system/multi-user.target"));
        args.push(PathBuf::from("/usr/lib/systemd/system/graphical.target"));
        // --recursive-errors=one: report problems of the units named here
        // and of their direct dependencies, not of everything else this
        // machine has installed. (=no would be quieter still, but it also
        // stops verify from pulling dependencies into the transactions it
        // builds, so it could not see an ordering cycle.)
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg("--recursive-errors=one")
            .args(&args)
            .env("MANPATH", &self.manpath)
            .env("SYSTEMD_LOG_COLOR", "0")
            .current_dir(self.scratch.path_buf())
            .output()
            .expect("running systemd-analyze (Debian: systemd)");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }
}

#[test]
fn units_pass_systemd_analyze_verify_without_a_warning() {
    let names: Vec<String> =
        unit_files().iter().map(|f| f.file_name().expect("name").to_string_lossy().into_owned()).collect();
    assert_eq!(
        names,
        [
            "photon-finalize-staged.path",
            "photon-finalize-staged.service",
            "photon-upgrade-boot-deadline.service",
            "photon-upgrade-boot-deadline.timer",
            "photon-upgrade-boot-failed.service",
            "photon-upgrade-health.service",
            "photon-upgrade-mark-good.service",
            "photon-upgrade.service",
            "photon-upgrade.timer",
        ]
    );
    let tree = VerifyTree::new(|_, t| t);
    let (ok, text) = tree.verify();
    assert!(ok && text.is_empty(), "systemd-analyze verify complained:\n{text}");
}

/// The check above can fail: with default dependencies, mark-good (wanted
/// by multi-user.target) closes the cycle multi-user.target -> mark-good ->
/// boot-complete.target -> health checks -> multi-user.target, and verify
/// says so. This is why mark-good has DefaultDependencies=no.
#[test]
fn verify_catches_the_boot_complete_ordering_cycle() {
    let tree = VerifyTree::new(|name, t| {
        if name == "photon-upgrade-mark-good.service" { t.replace("DefaultDependencies=no\n", "") } else { t }
    });
    let (ok, text) = tree.verify();
    assert!(!ok && text.contains("ordering cycle"), "expected an ordering cycle, got ({ok}):\n{text}");
}

/// Every command the units run exists in the CLI with these arguments
/// (`--help` parses them without running anything).
#[test]
fn units_run_commands_the_cli_has() {
    let mut seen = Vec::new();
    for f in unit_files() {
        let text = fs::read_to_string(&f).expect("reading a unit");
        for line in text.lines() {
            let Some((key, cmd)) = line.split_once('=') else { continue };
            if !key.starts_with("Exec") || cmd.is_empty() {
                continue;
            }
            let args: Vec<&str> = cmd.split_whitespace().collect();
            assert_eq!(args[0], "/usr/bin/photon-upgrade", "{}: {line}", f.display());
            let mut with_help = args[1..].to_vec();
            with_help.push("--help");
            sh(bin(), &with_help).ok();
            seen.push(args[1..].join(" "));
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "boot check-health",
            "boot failed",
            "boot failed --reason deadline",
            "boot mark-good",
            "finalize-staged",
            "upgrade --stage",
        ]
    );
}

/// The preset an image builder applies enables exactly the boot-safety
/// units, where their [Install] sections say, and leaves automatic updates
/// off.
#[test]
fn preset_enables_the_boot_units() {
    let scratch = Scratch::new();
    let image = scratch.join("image");
    let units = image.join("usr/lib/systemd/system");
    let presets = image.join("usr/lib/systemd/system-preset");
    fs::create_dir_all(&units).expect("mkdir");
    fs::create_dir_all(&presets).expect("mkdir");
    for f in unit_files() {
        fs::copy(&f, units.join(f.file_name().expect("name"))).expect("copy");
    }
    fs::copy(units_dir().join("80-photon-upgrade.preset"), presets.join("80-photon-upgrade.preset")).expect("copy");
    sh("systemctl", &["--root", &image.display().to_string(), "preset-all"]).ok();
    let etc = image.join("etc/systemd/system");
    let mut links = Vec::new();
    for dep in fs::read_dir(&etc).expect("preset made no links") {
        let dep = dep.expect("entry").path();
        for link in fs::read_dir(&dep).expect("readdir") {
            let link = link.expect("entry").path();
            let target = fs::read_link(&link).expect("a symlink");
            let rel = link.strip_prefix(&etc).expect("below etc");
            links.push(format!("{} -> {}", rel.display(), target.display()));
        }
    }
    links.sort();
    assert_eq!(
        links,
        [
            "boot-complete.target.requires/photon-upgrade-health.service -> /usr/lib/systemd/system/photon-upgrade-health.service",
            "multi-user.target.wants/photon-finalize-staged.path -> /usr/lib/systemd/system/photon-finalize-staged.path",
            "multi-user.target.wants/photon-upgrade-mark-good.service -> /usr/lib/systemd/system/photon-upgrade-mark-good.service",
            "timers.target.wants/photon-upgrade-boot-deadline.timer -> /usr/lib/systemd/system/photon-upgrade-boot-deadline.timer",
        ]
    );
}
