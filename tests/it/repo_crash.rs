//! Crash injection: the process is killed (SIGKILL, via strace's syscall
//! fault injection) at every invocation of every filesystem syscall a
//! command makes. After each crash the repository must be usable: fsck
//! clean for us and for `ostree`, and the branch at the old or the new
//! commit, never anywhere else.

use std::fs;
use std::path::Path;

use crate::util::*;

/// The filesystem syscalls our writers make.
const SYSCALLS: &[&str] = &[
    "openat",
    "write",
    "renameat2",
    "renameat",
    "fsync",
    "syncfs",
    "mkdirat",
    "unlinkat",
    "fsetxattr",
    "fchmod",
    "symlinkat",
];
/// Stop stepping through one syscall after this many invocations (the
/// fixture needs far fewer; this only bounds a runaway loop).
const MAX_STEPS: usize = 400;

fn check_consistent(repo: &Path, branch: &str, allowed: &[&str], at: &str) {
    let r = pur(repo, ["repo", "fsck"]);
    assert!(r.out.status.success(), "{at}: fsck after crash: {}", r.stderr());
    let theirs = ostree([&format!("--repo={}", repo.display()), "fsck"]);
    assert!(theirs.out.status.success(), "{at}: ostree fsck after crash: {}", theirs.stderr());
    let head = pur(repo, ["repo", "rev-parse", branch]).ok();
    assert!(allowed.contains(&head.as_str()), "{at}: branch at {head}, expected one of {allowed:?}");
    let staging: Vec<_> = fs::read_dir(repo.join("objects"))
        .expect("objects")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(staging.is_empty(), "{at}: temp files visible in objects/");
}

#[test]
fn commit_survives_a_crash_at_every_step() {
    let s = Scratch::new();
    let tree = s.join("tree");
    fixture_tree(&tree, false);
    let base = s.join("base");
    pur(&base, ["repo", "init", "--mode", "archive"]).ok();
    let c1 = pur(&base, ["repo", "commit", "-b", "t", "--timestamp", "1", tree.to_str().expect("utf-8")]).ok();
    fs::write(tree.join("etc/os-release"), "ID=two\n").expect("write");
    fs::write(tree.join("usr/bin/new"), vec![7u8; 100_000]).expect("write");
    let args = ["repo", "commit", "-b", "t", "--timestamp", "2", tree.to_str().expect("utf-8")];
    // The commit that an uninterrupted run makes.
    let clean = s.join("clean");
    copy_tree(&base, &clean);
    let c2 = pur(&clean, args).ok();
    let work = s.join("work");
    let mut crashes = 0;
    for syscall in SYSCALLS {
        for n in 1..=MAX_STEPS {
            copy_tree(&base, &work);
            if !run_killed(&["--repo", work.to_str().expect("utf-8")], syscall, n, &args) {
                break;
            }
            crashes += 1;
            let at = format!("killed at {syscall}#{n}");
            check_consistent(&work, "t", &[&c1, &c2], &at);
            // The next run recovers: it finishes the commit and cleans up
            // (explicit parent: the crash may have come after the ref moved).
            let mut rerun = args.to_vec();
            rerun.splice(2..2, ["--parent", c1.as_str()]);
            assert_eq!(pur(&work, &rerun).ok(), c2, "{at}: rerun");
            assert!(
                fs::read_dir(work.join("tmp"))
                    .expect("tmp")
                    .filter_map(Result::ok)
                    .all(|e| !e.file_name().to_string_lossy().starts_with("staging-")),
                "{at}: stale staging left"
            );
        }
    }
    assert!(crashes > 50, "only {crashes} crash points: injection is not reaching the writer");
}

#[test]
fn prune_survives_a_crash_at_every_step() {
    let s = Scratch::new();
    let tree = s.join("tree");
    fixture_tree(&tree, false);
    let base = s.join("base");
    pur(&base, ["repo", "init", "--mode", "archive"]).ok();
    for (i, body) in ["one", "two", "three"].iter().enumerate() {
        fs::write(tree.join("etc/os-release"), body).expect("write");
        fs::write(tree.join(format!("usr/bin/file{i}")), body.repeat(1000)).expect("write");
        pur(&base, ["repo", "commit", "-b", "t", "--timestamp", &i.to_string(), tree.to_str().expect("utf-8")]).ok();
    }
    let head = pur(&base, ["repo", "rev-parse", "t"]).ok();
    let work = s.join("work");
    let args = ["repo", "prune", "--refs-only", "--depth", "0"];
    let mut crashes = 0;
    for syscall in ["unlinkat", "openat", "syncfs"] {
        for n in 1..=MAX_STEPS {
            copy_tree(&base, &work);
            if !run_killed(&["--repo", work.to_str().expect("utf-8")], syscall, n, &args) {
                break;
            }
            crashes += 1;
            check_consistent(&work, "t", &[&head], &format!("prune killed at {syscall}#{n}"));
        }
    }
    assert!(crashes > 5, "only {crashes} crash points");
}
