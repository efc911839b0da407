//! Byte-compatibility with the real `ostree`: same commit ids from the same
//! tree, each tool reads and checks what the other wrote, in every mode.

use std::fs;
use std::path::Path;

use crate::util::*;

const TS: &str = "1700000000";

fn ostree_commit(repo: &Path, tree_arg: &str, branch: &str) -> String {
    ostree([
        &format!("--repo={}", repo.display()),
        "commit",
        "-b",
        branch,
        "--subject=sample",
        "--body=body text",
        "--timestamp=@1700000000",
        "--add-metadata-string=version=1.2.3",
        tree_arg,
    ])
    .ok()
}

fn our_commit(repo: &Path, source: &Path, branch: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "repo",
        "commit",
        "-b",
        branch,
        "--subject=sample",
        "--body=body text",
        "--timestamp",
        TS,
        "--version",
        "1.2.3",
    ];
    args.extend_from_slice(extra);
    args.push(source.to_str().expect("utf-8 path"));
    pur(repo, args).ok()
}

fn init_both(s: &Scratch, mode: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (ours, theirs) = (s.join(format!("ours-{mode}")), s.join(format!("theirs-{mode}")));
    pur(&ours, ["repo", "init", "--mode", mode]).ok();
    ostree([&format!("--repo={}", theirs.display()), "init", &format!("--mode={mode}")]).ok();
    (ours, theirs)
}

/// The same tree committed by both tools gets the same commit id, in every
/// repository mode; each tool's fsck accepts the other's repository, and
/// both list the tree identically.
#[test]
fn commit_ids_match_ostree_in_every_mode() {
    require_root();
    let s = Scratch::new();
    let tree = s.join("tree");
    fixture_tree(&tree, true);
    for mode in ["archive", "bare", "bare-user", "bare-user-only"] {
        let (ours, theirs) = init_both(&s, mode);
        let a = our_commit(&ours, &tree, "os/x86_64/stable", &[]);
        let b = ostree_commit(&theirs, &format!("--tree=dir={}", tree.display()), "os/x86_64/stable");
        assert_eq!(a, b, "mode {mode}: commit ids differ");
        ostree([&format!("--repo={}", ours.display()), "fsck"]).ok();
        pur(&theirs, ["repo", "fsck"]).ok();
        let ls_ours = pur(&ours, ["repo", "ls", "-R", &a]).ok();
        let ls_theirs = ostree([&format!("--repo={}", ours.display()), "ls", "-R", &a]).ok();
        assert_eq!(ls_ours, ls_theirs, "mode {mode}: ls differs");
        let show = pur(&theirs, ["repo", "show", "os/x86_64/stable"]).ok();
        assert!(show.contains("Version: 1.2.3") && show.contains("    sample"), "{show}");
    }
}

/// Checkouts by both tools of the same commit are identical, from our
/// repository and from theirs.
#[test]
fn checkouts_match_ostree() {
    require_root();
    let s = Scratch::new();
    let tree = s.join("tree");
    fixture_tree(&tree, true);
    for mode in ["bare", "archive", "bare-user"] {
        let (ours, theirs) = init_both(&s, mode);
        let c = our_commit(&ours, &tree, "t", &[]);
        ostree_commit(&theirs, &format!("--tree=dir={}", tree.display()), "t");
        for (repo, label) in [(&ours, "ours"), (&theirs, "theirs")] {
            let (us, them) = (s.join(format!("co-us-{mode}-{label}")), s.join(format!("co-them-{mode}-{label}")));
            let user_mode = mode == "bare-user";
            let mut args = vec!["repo", "checkout", &c, us.to_str().expect("utf-8")];
            if user_mode {
                args.push("--user-mode");
            }
            pur(repo, args).ok();
            let mut oargs = vec![format!("--repo={}", repo.display()), "checkout".into()];
            if user_mode {
                oargs.push("-U".into());
            }
            // Copy, as ours does without --hardlink (ostree hardlinks by default).
            oargs.push("-C".into());
            oargs.extend([c.clone(), them.display().to_string()]);
            ostree(oargs).ok();
            assert_eq!(describe_tree(&us, !user_mode), describe_tree(&them, !user_mode), "mode {mode}, {label} repo");
        }
        // The fixture itself, seen through a full round trip (root owner info kept).
        if mode == "bare" {
            assert_eq!(describe_tree(&s.join(format!("co-us-{mode}-ours")), true), describe_tree(&tree, true));
        }
    }
}

/// Hardlink checkouts share inodes with the objects, as `ostree checkout -H`.
#[test]
fn hardlink_checkout() {
    require_root();
    let s = Scratch::new();
    let tree = s.join("tree");
    fixture_tree(&tree, true);
    let repo = s.join("repo");
    pur(&repo, ["repo", "init", "--mode", "bare"]).ok();
    let c = our_commit(&repo, &tree, "t", &[]);
    let dest = s.join("co");
    let out = pur(&repo, ["--json", "repo", "checkout", "--hardlink", &c, dest.to_str().expect("utf-8")]).ok();
    let doc: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(doc["kind"], "Checkout");
    assert!(doc["stats"]["hardlinked"].as_u64().expect("count") >= 10, "{doc}");
    use std::os::unix::fs::MetadataExt;
    assert!(fs::metadata(dest.join("usr/bin/tool")).expect("stat").nlink() >= 2);
    assert_eq!(describe_tree(&dest, true), describe_tree(&tree, true));
    let archive = s.join("archive");
    pur(&archive, ["repo", "init", "--mode", "archive"]).ok();
    our_commit(&archive, &tree, "t", &[]);
    let err =
        pur(&archive, ["repo", "checkout", "--hardlink", "t", s.join("co2").to_str().expect("utf-8")]).error_line();
    assert!(err.contains("--hardlink needs a bare repository"), "{err}");
}

/// Tar sources (plain, gzip, zstd, stdin) give the tree a directory gives,
/// and the commit `ostree commit --tree=tar=` gives.
#[test]
fn tar_sources_match_directory_and_ostree() {
    require_root();
    let s = Scratch::new();
    let tree = s.join("tree");
    fixture_tree(&tree, true);
    let repo = s.join("repo");
    pur(&repo, ["repo", "init", "--mode", "archive"]).ok();
    let from_dir = our_commit(&repo, &tree, "t", &[]);
    // ostree's tar import keeps empty-valued xattrs while its directory
    // commit drops them; we drop them for both, so one tree gives one
    // commit id. Compare with ostree's tar import on a tree without one.
    sh("setfattr", &["-x", "user.empty", tree.join("etc/os-release").to_str().expect("utf-8")]).ok();
    let tar = s.join("t.tar");
    sh(
        "tar",
        &[
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "-C",
            tree.to_str().expect("utf-8"),
            "-cf",
            tar.to_str().expect("utf-8"),
            ".",
        ],
    )
    .ok();
    sh("gzip", &["-k", tar.to_str().expect("utf-8")]).ok();
    sh("zstd", &["-q", "-k", tar.to_str().expect("utf-8")]).ok();
    for src in ["t.tar", "t.tar.gz", "t.tar.zst"] {
        let c = our_commit(&repo, &s.join(src), "t", &["--parent", "none"]);
        assert_eq!(c, from_dir, "{src} differs from the directory commit");
    }
    // stdin
    let out = std::process::Command::new(bin())
        .args([
            "--repo",
            repo.to_str().expect("utf-8"),
            "repo",
            "commit",
            "-b",
            "t",
            "--subject=sample",
            "--body=body text",
        ])
        .args(["--timestamp", TS, "--version", "1.2.3", "--parent", "none", "-"])
        .stdin(fs::File::open(&tar).expect("open tar"))
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), from_dir);
    // ostree's own tar import agrees.
    let theirs = s.join("theirs");
    ostree([&format!("--repo={}", theirs.display()), "init", "--mode=archive"]).ok();
    let c = ostree_commit(&theirs, &format!("--tree=tar={}", tar.display()), "t");
    assert_eq!(c, from_dir);
}

/// Device nodes are refused as `ostree commit` refuses them.
#[test]
fn special_files_are_refused() {
    require_root();
    let s = Scratch::new();
    let tree = s.join("tree");
    fs::create_dir_all(tree.join("dev")).expect("mkdir");
    sh("mknod", &[tree.join("dev/null").to_str().expect("utf-8"), "c", "1", "3"]).ok();
    let repo = s.join("repo");
    pur(&repo, ["repo", "init", "--mode", "archive"]).ok();
    let err = pur(&repo, ["repo", "commit", "-b", "t", tree.to_str().expect("utf-8")]).error_line();
    assert!(err.contains("dev/null") && err.contains("device nodes"), "{err}");
    assert!(pur(&repo, ["repo", "refs"]).ok().is_empty(), "a failed commit moved a ref");
    ostree([&format!("--repo={}", repo.display()), "commit", "-b", "t", &format!("--tree=dir={}", tree.display())])
        .fails(1);
}

/// `repo diff` agrees with `ostree diff`; owner override matches
/// `ostree commit --owner-uid/--owner-gid`.
#[test]
fn diff_and_owner_override_match_ostree() {
    require_root();
    let s = Scratch::new();
    let tree = s.join("tree");
    fixture_tree(&tree, true);
    let (ours, theirs) = init_both(&s, "archive");
    let a = our_commit(&ours, &tree, "t", &[]);
    fs::write(tree.join("etc/os-release"), "NAME=Changed\n").expect("write");
    fs::remove_file(tree.join("usr/bin/dangling")).expect("rm");
    fs::create_dir(tree.join("usr/new")).expect("mkdir");
    fs::write(tree.join("usr/new/file"), "x").expect("write");
    let b = our_commit(&ours, &tree, "t", &[]);
    let ours_diff = pur(&ours, ["repo", "diff", &a, &b]).ok();
    let theirs_diff = ostree([&format!("--repo={}", ours.display()), "diff", &a, &b]).ok();
    let norm = |s: &str| {
        let mut v: Vec<String> = s.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
        v.sort();
        v
    };
    assert_eq!(norm(&ours_diff), norm(&theirs_diff));
    assert_eq!(pur(&ours, ["repo", "rev-parse", "t^"]).ok(), a);

    let c1 = our_commit(&ours, &tree, "owned", &["--owner-uid", "0", "--owner-gid", "0"]);
    let c2 = ostree([
        &format!("--repo={}", theirs.display()),
        "commit",
        "-b",
        "owned",
        "--subject=sample",
        "--body=body text",
        "--timestamp=@1700000000",
        "--add-metadata-string=version=1.2.3",
        "--owner-uid=0",
        "--owner-gid=0",
        &format!("--tree=dir={}", tree.display()),
    ])
    .ok();
    assert_eq!(c1, c2);
}
