//! Crash injection for the host side: deploy, rollback, cleanup and
//! finalize-staged are killed (SIGKILL) at every call of every syscall that
//! changes the filesystem's names (renames, links, symlinks, unlinks,
//! directory creation, syncs) and at every tenth file write. After each
//! crash: `boot/loader` names a complete configuration whose entries all
//! point at complete deployments, it is the old configuration or the new
//! one, `ostree admin status` and ours agree, and both fsck the repository
//! clean.

use std::fs;
use std::path::{Path, PathBuf};

use crate::util::*;

/// Syscalls whose every call is a crash point.
const NAME_CHANGES: &[&str] =
    &["renameat2", "renameat", "symlinkat", "unlinkat", "mkdirat", "linkat", "fsync", "syncfs", "ioctl"];
/// Syscalls sampled every `BULK_STEP` calls (there are many).
const BULK: &[&str] = &["openat", "write"];
const BULK_STEP: usize = 10;
const MAX_CALLS: usize = 2000;

struct Fixture {
    base: PathBuf,
    v1: String,
    v2: String,
}

fn fixture(s: &Scratch) -> Fixture {
    fixture_with(s, &[])
}

/// As [`fixture`], installed with extra `install` arguments.
fn fixture_with(s: &Scratch, install_args: &[&str]) -> Fixture {
    let Build { repo: build, v1, v2 } = build(s);
    let commits = [v1, v2];
    let base = s.join("base");
    let b = base.to_str().expect("utf-8");
    let mut args = vec!["--sysroot", b, "install", "--os", "sample", "--karg", "root=LABEL=root"];
    args.extend_from_slice(install_args);
    args.push(&commits[0]);
    fs::create_dir_all(base.join("boot/efi")).expect("mkdir");
    pur(&build, args).ok();
    // v2's objects are in the sysroot repository, ready to deploy.
    ostree([
        &format!("--repo={}", base.join("ostree/repo").display()),
        "pull-local",
        build.to_str().expect("utf-8"),
        &commits[1],
    ])
    .ok();
    fs::create_dir_all(base.join("ostree/repo/refs/heads/os")).expect("mkdir");
    fs::write(base.join("ostree/repo/refs/heads/os/stable"), format!("{}\n", commits[1])).expect("ref");
    let [v1, v2] = commits;
    Fixture { base, v1, v2 }
}

fn deployments(root: &Path) -> Vec<String> {
    let out = ostree(["admin", "status", &format!("--sysroot={}", root.display())]);
    assert!(out.out.status.success(), "ostree admin status failed: {}", out.stderr());
    out.stdout()
        .lines()
        .filter(|l| l.starts_with("* ") || (l.starts_with("  ") && !l.starts_with("    ")))
        .filter_map(|l| l[2..].split_whitespace().nth(1).map(str::to_owned))
        .collect()
}

fn ours(root: &Path) -> Vec<String> {
    let r = pu(["--sysroot", root.to_str().expect("utf-8"), "--json", "status"]);
    let doc: serde_json::Value = serde_json::from_str(&r.ok()).expect("status json");
    doc["deployments"]
        .as_array()
        .expect("deployments")
        .iter()
        .filter(|d| d["staged"] == false)
        .map(|d| d["deployment"].as_str().expect("name").to_owned())
        .collect()
}

/// Every entry of the current configuration names a complete deployment.
fn entries_complete(root: &Path, at: &str) {
    let entries = root.join("boot/loader/entries");
    for e in fs::read_dir(&entries).unwrap_or_else(|e| panic!("{at}: {}: {e}", entries.display())) {
        let text = fs::read_to_string(e.expect("entry").path()).expect("read entry");
        let arg = text
            .split_whitespace()
            .find(|w| w.starts_with("ostree="))
            .unwrap_or_else(|| panic!("{at}: entry without ostree=: {text}"));
        let link = root.join(arg.trim_start_matches("ostree=/"));
        let dir = fs::canonicalize(&link).unwrap_or_else(|e| panic!("{at}: bootlink {} dangles: {e}", link.display()));
        for must in ["usr/lib/os-release", "etc/hostname", "usr/lib/modules"] {
            assert!(dir.join(must).exists(), "{at}: deployment {} lacks {must}", dir.display());
        }
        let origin = PathBuf::from(format!("{}.origin", dir.display()));
        assert!(origin.exists(), "{at}: {} has no origin", dir.display());
        for f in text.lines().filter(|l| l.starts_with("linux ") || l.starts_with("initrd ")) {
            let p = root.join("boot").join(f.split_whitespace().nth(1).expect("path").trim_start_matches('/'));
            assert!(p.exists(), "{at}: {f} missing from /boot");
        }
    }
}

fn check(root: &Path, allowed: &[&[String]], at: &str) {
    entries_complete(root, at);
    let theirs = deployments(root);
    assert!(allowed.contains(&theirs.as_slice()), "{at}: deployments {theirs:?}, expected one of {allowed:?}");
    assert_eq!(ours(root), theirs, "{at}: our status disagrees with ostree's");
    pur(&root.join("ostree/repo"), ["repo", "fsck"]).ok();
    ostree([&format!("--repo={}", root.join("ostree/repo").display()), "fsck"]).ok();
}

/// Kills `args` at every crash point, checks after each, and returns how many crashes there were.
fn crash_everywhere(
    start: &Path,
    work: &Path,
    pre: &[&str],
    args: &[&str],
    allowed: &[&[String]],
    after: impl Fn(&Path),
) -> usize {
    crash_at(&[(NAME_CHANGES, 1), (BULK, BULK_STEP)], start, work, pre, args, allowed, after)
}

/// [`crash_everywhere`] with chosen crash points: (syscalls, every how many calls).
fn crash_at(
    points: &[(&[&str], usize)],
    start: &Path,
    work: &Path,
    pre: &[&str],
    args: &[&str],
    allowed: &[&[String]],
    after: impl Fn(&Path),
) -> usize {
    let mut crashes = 0;
    for &(list, step) in points {
        for syscall in list.iter() {
            let mut n = 1;
            while n <= MAX_CALLS {
                copy_tree(start, work);
                let mut all: Vec<&str> = vec!["--sysroot", work.to_str().expect("utf-8")];
                all.extend_from_slice(pre);
                if !run_killed(&all, syscall, n, args) {
                    break;
                }
                crashes += 1;
                let at = format!("{} killed at {syscall}#{n}", args.join(" "));
                check(work, allowed, &at);
                after(work);
                n += step;
            }
        }
    }
    crashes
}

#[test]
fn deploy_rollback_cleanup_survive_crashes() {
    require_root();
    let s = Scratch::new();
    let f = fixture(&s);
    let old = vec![format!("{}.0", f.v1)];
    let new = vec![format!("{}.0", f.v2), format!("{}.0", f.v1)];
    let work = s.join("work");
    let n = crash_everywhere(&f.base, &work, &[], &["deploy", "--os", "sample", &f.v2], &[&old, &new], |w| {
        // A rerun after the crash completes the deploy.
        pu(["--sysroot", w.to_str().expect("utf-8"), "deploy", "--os", "sample", &f.v2]).ok();
        // From the old configuration: v2 over v1 (serial 1 if the crash left
        // a v2.0 directory behind); from the new one: v2 over v2.
        let over_v1 = [format!("{}.1", f.v2), format!("{}.0", f.v1)];
        let over_v2 = [format!("{}.1", f.v2), format!("{}.0", f.v2)];
        check(w, &[&new, &over_v1, &over_v2], "rerun after crash");
    });
    assert!(n > 40, "only {n} crash points in deploy");

    // From two deployments: rollback, then cleanup.
    let two = s.join("two");
    copy_tree(&f.base, &two);
    pu(["--sysroot", two.to_str().expect("utf-8"), "deploy", "--os", "sample", &f.v2]).ok();
    let rolled = vec![format!("{}.0", f.v1), format!("{}.0", f.v2)];
    let n = crash_everywhere(&two, &work, &[], &["rollback"], &[&new, &rolled], |_| {});
    assert!(n > 10, "only {n} crash points in rollback");
    let n = crash_everywhere(&two, &work, &[], &["cleanup"], &[&new], |_| {});
    assert!(n > 3, "only {n} crash points in cleanup");
}

#[test]
fn finalize_staged_survives_crashes() {
    require_root();
    let s = Scratch::new();
    let f = fixture(&s);
    // Pretend the base sysroot is booted into v1 and stage v2.
    let staged = s.join("staged");
    copy_tree(&f.base, &staged);
    let run = s.join("run");
    let cmdline = s.join("cmdline");
    let entry = fs::read_to_string(staged.join("boot/loader/entries/ostree-1-sample.conf")).expect("entry");
    fs::write(
        &cmdline,
        entry.lines().find(|l| l.starts_with("options ")).expect("options").trim_start_matches("options "),
    )
    .expect("write");
    let host = |root: &Path, run: &Path| -> Vec<String> {
        vec![
            "--booted-root".into(),
            root.join(format!("ostree/deploy/sample/deploy/{}.0", f.v1)).display().to_string(),
            "--cmdline".into(),
            cmdline.display().to_string(),
            "--run-dir".into(),
            run.display().to_string(),
        ]
    };
    let h = host(&staged, &run);
    let mut args: Vec<&str> = vec!["--sysroot", staged.to_str().expect("utf-8")];
    args.extend(h.iter().map(String::as_str));
    args.extend(["deploy", "--stage", "--os", "sample", &f.v2]);
    pu(args).ok();
    let old = vec![format!("{}.0", f.v1)];
    let new = vec![format!("{}.0", f.v2), format!("{}.0", f.v1)];
    let work = s.join("work");
    let work_run = s.join("work-run");
    let h = host(&work, &work_run);
    let pre: Vec<&str> = h.iter().map(String::as_str).collect();
    let mut crashes = 0;
    for syscall in NAME_CHANGES {
        for n in 1..=MAX_CALLS {
            copy_tree(&staged, &work);
            copy_tree(&run, &work_run);
            let mut all = vec!["--sysroot", work.to_str().expect("utf-8")];
            all.extend_from_slice(&pre);
            if !run_killed(&all, syscall, n, &["finalize-staged"]) {
                break;
            }
            crashes += 1;
            check(&work, &[&old, &new], &format!("finalize-staged killed at {syscall}#{n}"));
        }
    }
    assert!(crashes >= 2, "only {crashes} crash points in finalize-staged");
}

/// Boot flags that make `root` look booted into `deployment` (the command
/// line is the options of its entry on the partition).
fn booted_as(s: &Scratch, root: &Path, deployment: &str) -> Vec<String> {
    let esp = root.join("boot/efi");
    let entries = crate::boot::esp_entries(&esp);
    let (_, e) = entries.iter().find(|(n, _)| n.contains(deployment)).expect("an entry");
    let cmdline = s.join(format!("cmdline-{deployment}"));
    fs::write(&cmdline, e.get("options").expect("options")).expect("write");
    vec![
        "--booted-root".into(),
        root.join(format!("ostree/deploy/sample/deploy/{deployment}")).display().to_string(),
        "--cmdline".into(),
        cmdline.display().to_string(),
        "--run-dir".into(),
        s.join("run").display().to_string(),
    ]
}

/// Runs `boot mark-good` on `root` with the booted-system flags `pre`.
fn mark_good(root: &Path, pre: &[&str]) {
    let mut args = vec!["--sysroot", root.to_str().expect("utf-8")];
    args.extend_from_slice(pre);
    args.extend(["boot", "mark-good"]);
    pu(args).ok();
}

/// Replays systemd-boot's rename of a counted entry before it boots it.
fn firmware_try(root: &Path, deployment: &str) {
    let dir = root.join("boot/efi/loader/entries");
    for (name, _) in crate::boot::esp_entries(&root.join("boot/efi")) {
        if name.contains(deployment)
            && let Some(next) = bootloader::EntryName::parse(&name).expect("name").decrement()
        {
            fs::rename(dir.join(&name), dir.join(next.file_name())).expect("rename");
        }
    }
}

/// The systemd-boot view through deploy and mark-good: killed at every
/// step, the partition's entries all boot complete deployments, and the
/// one the firmware picks is the old default or the new one.
#[test]
fn boot_entries_and_mark_good_survive_crashes() {
    require_root();
    let s = Scratch::new();
    let f = fixture_with(&s, &["--bootloader", "systemd-boot"]);
    let (d1, d2) = (format!("{}.0", f.v1), format!("{}.0", f.v2));
    let old = vec![d1.clone()];
    let new = vec![d2.clone(), d1.clone()];
    let work = s.join("work");
    let esp_default = |w: &Path, at: &str| crate::boot::esp_default(w, &w.join("boot/efi"), at);
    // Deploy's own steps are covered above: here the name changes, which
    // include every step of the partition's update.
    let points: &[(&[&str], usize)] = &[(NAME_CHANGES, 1)];
    let n = crash_at(points, &f.base, &work, &[], &["deploy", "--os", "sample", &f.v2], &[&old, &new], |w| {
        let picked = esp_default(w, "deploy killed");
        assert!(picked == d1 || picked == d2, "the firmware would boot {picked}");
        // The next command brings the partition in line with the truth.
        pu(["--sysroot", w.to_str().expect("utf-8"), "boot", "sync"]).ok();
        assert_eq!(esp_default(w, "after boot sync"), deployments(w)[0]);
    });
    assert!(n > 40, "only {n} crash points in deploy");

    // v2 deployed, booted once (counted), its boot good: bless it.
    let two = s.join("two");
    copy_tree(&f.base, &two);
    pu(["--sysroot", two.to_str().expect("utf-8"), "deploy", "--os", "sample", &f.v2]).ok();
    firmware_try(&two, &d2);
    let host = booted_as(&s, &work, &d2);
    let pre: Vec<&str> = host.iter().map(String::as_str).collect();
    let n = crash_everywhere(&two, &work, &pre, &["boot", "mark-good"], &[&new], |w| {
        assert_eq!(esp_default(w, "mark-good killed"), d2);
        mark_good(w, &pre);
        assert_eq!(esp_default(w, "mark-good rerun"), d2);
        let names: Vec<String> = crate::boot::esp_entries(&w.join("boot/efi")).into_iter().map(|(n, _)| n).collect();
        assert!(names.iter().all(|n| !n.contains('+')), "still counted after mark-good: {names:?}");
    });
    assert!(n >= 2, "only {n} crash points in mark-good");

    // v2's tries spent; the firmware fell back to v1, whose boot is good.
    let spent = s.join("spent");
    copy_tree(&two, &spent);
    for _ in 0..3 {
        firmware_try(&spent, &d2);
    }
    let host = booted_as(&s, &work, &d1);
    let pre: Vec<&str> = host.iter().map(String::as_str).collect();
    let back = vec![d1.clone(), d2.clone()];
    let n = crash_everywhere(&spent, &work, &pre, &["boot", "mark-good"], &[&new, &back], |w| {
        assert_eq!(esp_default(w, "fallback mark-good killed"), d1);
        mark_good(w, &pre);
        assert_eq!(deployments(w), back, "after the rerun");
        assert_eq!(esp_default(w, "fallback rerun"), d1);
    });
    assert!(n > 10, "only {n} crash points in the fallback");
}
