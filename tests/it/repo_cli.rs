//! The command-line contract: exit codes, one-line errors, REV syntax,
//! refs, log, JSON documents, prune semantics.

use std::fs;

use crate::util::*;

fn sample_repo(s: &Scratch, mode: &str) -> std::path::PathBuf {
    let tree = s.join("tree");
    if !tree.exists() {
        fixture_tree(&tree, false);
    }
    let repo = s.join(format!("repo-{mode}"));
    pur(&repo, ["repo", "init", "--mode", mode]).ok();
    repo
}

fn commit(repo: &std::path::Path, tree: &std::path::Path, branch: &str, ts: &str) -> String {
    pur(repo, ["repo", "commit", "-b", branch, "--timestamp", ts, "-s", "subject", tree.to_str().expect("utf-8")]).ok()
}

#[test]
fn exit_codes_and_error_lines() {
    let s = Scratch::new();
    let repo = sample_repo(&s, "archive");
    // Usage error: exit 2.
    pu(["repo", "commit"]).fails(2);
    pu(["no-such-command"]).fails(2);
    // Missing repository: exit 1, one line naming it and what to do.
    let err = pur(&s.join("nope"), ["repo", "refs"]).error_line();
    assert!(err.contains("nope") && err.contains("repo init"), "{err}");
    // Unknown REV.
    let err = pur(&repo, ["repo", "show", "os/missing"]).error_line();
    assert!(err.contains("os/missing"), "{err}");
    // Bad ref names.
    let err = pur(&repo, ["repo", "commit", "-b", "../evil", s.join("tree").to_str().expect("utf-8")]).error_line();
    assert!(err.contains("invalid ref name"), "{err}");
    // Existing repository is not re-initialised.
    let err = pur(&repo, ["repo", "init"]).error_line();
    assert!(err.contains("already a repository"), "{err}");
    // Checkout over an existing path.
    let tree = s.join("tree");
    commit(&repo, &tree, "t", "1");
    let err = pur(&repo, ["repo", "checkout", "t", tree.to_str().expect("utf-8")]).error_line();
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn revs_refs_and_log() {
    let s = Scratch::new();
    let repo = sample_repo(&s, "bare-user");
    let tree = s.join("tree");
    let c1 = commit(&repo, &tree, "os/x86_64/stable", "100");
    fs::write(tree.join("etc/os-release"), "ID=two\n").expect("write");
    let c2 = commit(&repo, &tree, "os/x86_64/stable", "200");
    assert_eq!(pur(&repo, ["repo", "rev-parse", "os/x86_64/stable"]).ok(), c2);
    assert_eq!(pur(&repo, ["repo", "rev-parse", "os/x86_64/stable^"]).ok(), c1);
    assert_eq!(pur(&repo, ["repo", "rev-parse", &c2[..10]]).ok(), c2);
    assert_eq!(pur(&repo, ["repo", "rev-parse", &c2]).ok(), c2);
    let err = pur(&repo, ["repo", "rev-parse", "os/x86_64/stable^^"]).error_line();
    assert!(err.contains("no parent"), "{err}");
    let log = pur(&repo, ["repo", "log", "os/x86_64/stable"]).ok();
    assert_eq!(log.matches("commit ").count(), 2, "{log}");
    let doc: serde_json::Value =
        serde_json::from_str(&pur(&repo, ["--json", "repo", "log", "os/x86_64/stable"]).ok()).expect("json");
    assert_eq!(doc["apiVersion"], "photon-upgrade/v1");
    assert_eq!(doc["kind"], "CommitLog");
    assert_eq!(doc["commits"][1]["commit"], c1.as_str());
    assert_eq!(doc["commits"][0]["parent"], c1.as_str());
    assert_eq!(doc["commits"][0]["timestamp"], 200);
    assert_eq!(doc["commits"][0]["metadata"]["ostree.ref-binding"][0], "os/x86_64/stable");
    // The same commit under a second branch, then delete the first.
    pur(&repo, ["repo", "commit", "-b", "other", "--parent", "none", tree.to_str().expect("utf-8")]).ok();
    assert_eq!(pur(&repo, ["repo", "refs"]).ok(), "os/x86_64/stable\nother");
    pur(&repo, ["repo", "refs", "--delete", "other"]).ok();
    assert_eq!(pur(&repo, ["repo", "refs"]).ok(), "os/x86_64/stable");
    let err = pur(&repo, ["repo", "refs", "--delete", "other"]).error_line();
    assert!(err.contains("does not exist"), "{err}");
    // ostree reads our refs and history.
    assert_eq!(ostree([&format!("--repo={}", repo.display()), "rev-parse", "os/x86_64/stable^"]).ok(), c1);
    // cat and ls of one file.
    assert_eq!(pur(&repo, ["repo", "cat", "os/x86_64/stable", "/etc/os-release"]).ok(), "ID=two");
    let ls = pur(&repo, ["repo", "ls", "os/x86_64/stable", "/usr/bin/relative-link"]).ok();
    assert!(ls.ends_with("/usr/bin/relative-link -> tool"), "{ls}");
}

#[test]
fn prune_keeps_what_refs_need() {
    let s = Scratch::new();
    let repo = sample_repo(&s, "archive");
    let tree = s.join("tree");
    let c1 = commit(&repo, &tree, "t", "100");
    fs::write(tree.join("etc/os-release"), "ID=two\n").expect("write");
    let c2 = commit(&repo, &tree, "t", "200");
    fs::write(tree.join("etc/os-release"), "ID=three\n").expect("write");
    let c3 = commit(&repo, &tree, "t", "300");
    let before = object_files(&repo).len();
    // Default prune: every commit is kept, nothing to delete.
    let doc: serde_json::Value = serde_json::from_str(&pur(&repo, ["--json", "repo", "prune"]).ok()).expect("json");
    assert_eq!(doc["objectsPruned"], 0, "{doc}");
    // Dry run with depth 0: would delete c1, c2 and their unique files.
    let dry: serde_json::Value =
        serde_json::from_str(&pur(&repo, ["--json", "repo", "prune", "--refs-only", "--depth", "0", "--dry-run"]).ok())
            .expect("json");
    assert_eq!(dry["commitsPruned"].as_array().map(Vec::len), Some(2), "{dry}");
    assert_eq!(object_files(&repo).len(), before, "dry run deleted something");
    // ostree agrees on how many objects would go.
    let theirs =
        ostree([&format!("--repo={}", repo.display()), "prune", "--refs-only", "--depth=0", "--no-prune"]).ok();
    let n = dry["objectsPruned"].as_u64().expect("count");
    assert!(theirs.contains(&format!("Would delete: {n} objects")), "ostree says {theirs:?}, we say {n}");
    pur(&repo, ["repo", "prune", "--refs-only", "--depth", "1"]).ok();
    assert_eq!(pur(&repo, ["repo", "rev-parse", "t^"]).ok(), c2);
    assert!(pur(&repo, ["repo", "show", &c1]).fails(1).contains("missing"));
    pur(&repo, ["repo", "fsck"]).ok();
    ostree([&format!("--repo={}", repo.display()), "fsck"]).ok();
    // keep-younger-than: c2 (t=200) is older than the cutoff (1970 + 250s).
    pur(&repo, ["repo", "prune", "--keep-younger-than", "1970-01-01T00:04:10Z"]).ok();
    assert!(pur(&repo, ["repo", "show", &c2]).fails(1).contains("missing"));
    assert_eq!(pur(&repo, ["repo", "rev-parse", "t"]).ok(), c3);
    pur(&repo, ["repo", "fsck"]).ok();
}

#[test]
fn progress_json_lines() {
    let s = Scratch::new();
    let repo = sample_repo(&s, "archive");
    let r = pur(&repo, ["--progress", "json", "repo", "commit", "-b", "t", s.join("tree").to_str().expect("utf-8")]);
    r.ok();
    let lines: Vec<serde_json::Value> =
        r.stderr().lines().map(|l| serde_json::from_str(l).expect("each stderr line is JSON")).collect();
    assert!(lines.iter().any(|l| l["phase"] == "committing" && l["finished"] == true), "{lines:?}");
    assert!(lines.iter().all(|l| l["apiVersion"] == "photon-upgrade.progress/v1"));
}

#[test]
fn man_pages_and_completions() {
    let s = Scratch::new();
    pu(["internals", "man", s.join("man").to_str().expect("utf-8")]).ok();
    assert!(s.join("man/photon-upgrade-repo-commit.1").exists());
    let bash = pu(["internals", "completions", "bash"]).ok();
    assert!(bash.contains("photon-upgrade"));
}

/// `repo delta list/show/delete`, the summary's delta list, and `repo
/// prune` dropping deltas whose target commit it deleted.
#[test]
fn delta_list_show_delete_and_prune() {
    let s = Scratch::new();
    let repo = sample_repo(&s, "archive");
    let tree = s.join("tree");
    let v1 = commit(&repo, &tree, "os", "100");
    fs::write(tree.join("added"), b"new in v2").expect("write");
    let v2 = commit(&repo, &tree, "os", "200");
    let (v1, v2) = (v1.trim(), v2.trim());
    pur(&repo, ["repo", "delta", "generate", "--to", "os"]).ok();
    pur(&repo, ["repo", "delta", "generate", "--from", "os^", "--to", "os"]).ok();
    let update = format!("{v1}-{v2}");
    let list = pur(&repo, ["repo", "delta", "list"]).ok();
    let mut want = vec![v2, update.as_str()];
    want.sort_unstable();
    assert_eq!(list.lines().collect::<Vec<_>>(), want, "sorted by id");
    let show = pur(&repo, ["--json", "repo", "delta", "show", &update]).ok();
    let doc: serde_json::Value = serde_json::from_str(&show).expect("json");
    assert_eq!(doc["delta"]["from"], v1);
    assert_eq!(doc["delta"]["contentObjects"], 1, "{show}");
    let err = pur(&repo, ["repo", "delta", "show", &format!("{v2}-{v1}")]).error_line();
    assert!(err.contains("no delta") && err.contains("repo delta list"), "{err}");

    // The summary lists both; after a delete, only the other.
    pur(&repo, ["repo", "summary", "--update"]).ok();
    let summary = fs::read(repo.join("summary")).expect("summary");
    assert!(summary.windows(update.len()).any(|w| w == update.as_bytes()));
    pur(&repo, ["repo", "delta", "delete", &update]).ok();
    pur(&repo, ["repo", "summary", "--update"]).ok();
    let summary = fs::read(repo.join("summary")).expect("summary");
    assert!(!summary.windows(update.len()).any(|w| w == update.as_bytes()), "deleted delta still listed");
    assert!(summary.windows(v2.len()).any(|w| w == v2.as_bytes()));

    // Prune: v2's history is cut to v2 alone; the from-empty delta to v2 stays.
    pur(&repo, ["repo", "delta", "generate", "--to", "os^"]).ok();
    pur(&repo, ["repo", "prune", "--refs-only", "--depth", "0"]).ok();
    assert_eq!(pur(&repo, ["repo", "delta", "list"]).ok().lines().collect::<Vec<_>>(), vec![v2]);
}
