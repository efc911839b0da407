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
    let build = s.join("build");
    pur(&build, ["repo", "init", "--mode", "archive"]).ok();
    let mut commits = Vec::new();
    for (v, ts) in [("1.0", "100"), ("2.0", "200")] {
        let tree = s.join(format!("tree-{v}"));
        sh(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sample-os.sh"), &[tree.to_str().expect("utf-8"), v]).ok();
        commits.push(
            pur(
                &build,
                ["repo", "commit", "-b", "os/stable", "--version", v, "--timestamp", ts, tree.to_str().expect("utf-8")],
            )
            .ok(),
        );
    }
    let base = s.join("base");
    pur(
        &build,
        [
            "--sysroot",
            base.to_str().expect("utf-8"),
            "install",
            "--os",
            "sample",
            "--karg",
            "root=LABEL=root",
            &commits[0],
        ],
    )
    .ok();
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
    Fixture { base, v2: commits.pop().expect("v2"), v1: commits.pop().expect("v1") }
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
    let mut crashes = 0;
    for (list, step) in [(NAME_CHANGES, 1), (BULK, BULK_STEP)] {
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
