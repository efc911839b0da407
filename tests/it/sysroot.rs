//! The host side against the real `ostree admin`: install, deploy,
//! rollback, cleanup, staged deploys, /var survival, space checks.

use std::fs;
use std::path::{Path, PathBuf};

use crate::util::*;

/// Runs our binary on a sysroot.
fn ps(sysroot: &Path, args: &[&str]) -> Run {
    let mut all = vec!["--sysroot", sysroot.to_str().expect("utf-8")];
    all.extend_from_slice(args);
    pu(all)
}

/// (osname, CSUM.SERIAL) in order, as `ostree admin status` lists them.
fn ostree_status(sysroot: &Path) -> Vec<(String, String)> {
    let out = ostree(["admin", "status", &format!("--sysroot={}", sysroot.display())]).ok();
    parse_status(&out)
}

fn parse_status(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter(|l| l.starts_with("* ") || (l.starts_with("  ") && !l.starts_with("    ")))
        .filter_map(|l| {
            let mut it = l[2..].split_whitespace();
            Some((it.next()?.to_owned(), it.next()?.to_owned()))
        })
        .collect()
}

fn our_status(sysroot: &Path) -> Vec<(String, String)> {
    parse_status(&ps(sysroot, &["status"]).ok())
}

fn install(s: &Scratch, b: &Build) -> PathBuf {
    let root = s.join("sysroot");
    pur(
        &b.repo,
        [
            "--sysroot",
            root.to_str().expect("utf-8"),
            "install",
            "--os",
            "sample",
            "--karg",
            "root=LABEL=root",
            "--karg",
            "quiet",
            &b.v1,
        ],
    )
    .ok();
    root
}

fn deploy_dir(root: &Path, commit: &str, serial: u32) -> PathBuf {
    root.join(format!("ostree/deploy/sample/deploy/{commit}.{serial}"))
}

#[test]
fn install_and_deploy_match_ostree_admin_status() {
    require_root();
    let s = Scratch::new();
    let b = build(&s);
    let root = install(&s, &b);
    assert_eq!(our_status(&root), ostree_status(&root));
    assert_eq!(ostree_status(&root), vec![("sample".to_owned(), format!("{}.0", b.v1))]);
    let entry = fs::read_to_string(root.join("boot/loader/entries/ostree-1-sample.conf")).expect("entry");
    assert!(entry.contains("options root=LABEL=root quiet ostree=/ostree/boot.1/sample/"), "{entry}");
    assert!(entry.starts_with("title Sample Photon 1.0 (ostree:0)\n"), "{entry}");
    // v2 comes from the build repo into the sysroot repo, then deploys.
    let sysrepo = root.join("ostree/repo");
    ps(&root, &["--repo", b.repo.to_str().expect("utf-8"), "install", "--os", "sample", &b.v2]).ok();
    let st = ostree_status(&root);
    assert_eq!(st, vec![("sample".to_owned(), format!("{}.0", b.v2)), ("sample".to_owned(), format!("{}.0", b.v1))]);
    assert_eq!(our_status(&root), st);
    pur(&sysrepo, ["repo", "fsck"]).ok();
    ostree([&format!("--repo={}", sysrepo.display()), "fsck"]).ok();
    // Kernel arguments carry over from the merge deployment.
    let doc: serde_json::Value = serde_json::from_str(&ps(&root, &["--json", "status"]).ok()).expect("json");
    assert_eq!(doc["deployments"][0]["kargs"], "root=LABEL=root quiet");
    assert_eq!(doc["deployments"][1]["rollback"], true);
}

#[test]
fn rollback_undeploy_pin_kargs() {
    require_root();
    let s = Scratch::new();
    let b = build(&s);
    let root = install(&s, &b);
    ps(&root, &["--repo", b.repo.to_str().expect("utf-8"), "install", "--os", "sample", &b.v2]).ok();
    ps(&root, &["rollback"]).ok();
    assert_eq!(ostree_status(&root)[0].1, format!("{}.0", b.v1));
    assert_eq!(our_status(&root), ostree_status(&root));
    let err = ps(&root, &["undeploy", "1"]).error_line();
    assert!(err.contains("rollback target"), "{err}");
    let err = ps(&root, &["undeploy", "0"]).error_line();
    assert!(err.contains("default deployment"), "{err}");
    ps(&root, &["pin", "1"]).ok();
    let doc: serde_json::Value = serde_json::from_str(&ps(&root, &["--json", "status"]).ok()).expect("json");
    assert_eq!(doc["deployments"][1]["pinned"], true);
    ps(&root, &["kargs", "--append", "console=ttyS0", "--delete", "quiet"]).ok();
    assert_eq!(ps(&root, &["kargs"]).ok(), "root=LABEL=root console=ttyS0");
    assert_eq!(our_status(&root), ostree_status(&root));
    let entry = fs::read_dir(root.join("boot/loader/entries"))
        .expect("entries")
        .filter_map(Result::ok)
        .map(|e| fs::read_to_string(e.path()).expect("read"))
        .find(|t| t.contains("version 2"))
        .expect("default entry");
    assert!(entry.contains("console=ttyS0") && !entry.contains("quiet"), "{entry}");
}

/// Our sysroot accepts `ostree admin deploy`, and we read what it did;
/// on a sysroot ostree made, our status, deploy and rollback work.
#[test]
fn ostree_admin_and_we_share_sysroots() {
    require_root();
    let s = Scratch::new();
    let b = build(&s);
    let root = install(&s, &b);
    let sysrepo = root.join("ostree/repo");
    // Bring v2 into the sysroot repository with ostree itself.
    ostree([&format!("--repo={}", sysrepo.display()), "pull-local", b.repo.to_str().expect("utf-8"), &b.v2]).ok();
    ostree(["admin", "deploy", &format!("--sysroot={}", root.display()), "--os=sample", &b.v2]).ok();
    assert_eq!(our_status(&root), ostree_status(&root));
    assert_eq!(our_status(&root)[0].1, format!("{}.0", b.v2));
    ps(&root, &["rollback"]).ok();
    assert_eq!(ostree_status(&root)[0].1, format!("{}.0", b.v1));

    // A sysroot made entirely by ostree.
    let oroot = s.join("ostree-sysroot");
    fs::create_dir_all(&oroot).expect("mkdir");
    ostree(["admin", "init-fs", "--modern", oroot.to_str().expect("utf-8")]).ok();
    ostree(["admin", "os-init", &format!("--sysroot={}", oroot.display()), "sample"]).ok();
    let orepo = oroot.join("ostree/repo");
    ostree([&format!("--repo={}", orepo.display()), "pull-local", b.repo.to_str().expect("utf-8"), &b.v1, &b.v2]).ok();
    ostree(["admin", "deploy", &format!("--sysroot={}", oroot.display()), "--os=sample", "--karg=root=LABEL=x", &b.v1])
        .ok();
    assert_eq!(our_status(&oroot), ostree_status(&oroot));
    // ostree's deploy pruned the unreferenced v2: bring it back.
    ostree([&format!("--repo={}", orepo.display()), "pull-local", b.repo.to_str().expect("utf-8"), &b.v2]).ok();
    ps(&oroot, &["deploy", "--os", "sample", &b.v2]).ok();
    assert_eq!(our_status(&oroot), ostree_status(&oroot));
    assert_eq!(ostree_status(&oroot)[0].1, format!("{}.0", b.v2));
    ps(&oroot, &["rollback"]).ok();
    assert_eq!(ostree_status(&oroot)[0].1, format!("{}.0", b.v1));
    pur(&orepo, ["repo", "fsck"]).ok();
}

/// Container state under /var survives deploy, rollback and cleanup.
#[test]
fn var_survives() {
    require_root();
    let s = Scratch::new();
    let b = build(&s);
    let root = install(&s, &b);
    let var = root.join("ostree/deploy/sample/var");
    for d in ["lib/docker/overlay2/abc", "lib/rkt/pods", "lib/garden/containers"] {
        fs::create_dir_all(var.join(d)).expect("mkdir");
        fs::write(var.join(d).join("state"), d).expect("write");
    }
    let before = describe_tree(&var, true);
    ps(&root, &["--repo", b.repo.to_str().expect("utf-8"), "install", "--os", "sample", &b.v2]).ok();
    ps(&root, &["rollback"]).ok();
    ps(&root, &["cleanup"]).ok();
    assert_eq!(describe_tree(&var, true), before);
}

/// Local /etc changes carry into the new deployment; etc-diff predicts it.
#[test]
fn etc_merge_through_deploy() {
    require_root();
    let s = Scratch::new();
    let b = build(&s);
    let root = install(&s, &b);
    let etc = deploy_dir(&root, &b.v1, 0).join("etc");
    fs::write(etc.join("hostname"), "edited-host\n").expect("write");
    fs::remove_file(etc.join("docker/daemon.json")).expect("rm");
    fs::write(etc.join("added.conf"), "mine\n").expect("write");
    let sysrepo = root.join("ostree/repo");
    ostree([&format!("--repo={}", sysrepo.display()), "pull-local", b.repo.to_str().expect("utf-8"), &b.v2]).ok();
    let preview: serde_json::Value =
        serde_json::from_str(&ps(&root, &["--json", "etc-diff", &b.v2]).ok()).expect("json");
    let out: serde_json::Value = serde_json::from_str(&ps(&root, &["--json", "deploy", &b.v2]).ok()).expect("json");
    assert_eq!(preview["changes"], out["etc"]["changes"], "etc-diff differs from what deploy did");
    let new_etc = deploy_dir(&root, &b.v2, 0).join("etc");
    assert_eq!(fs::read_to_string(new_etc.join("hostname")).expect("read"), "edited-host\n");
    assert!(!new_etc.join("docker/daemon.json").exists());
    assert_eq!(fs::read_to_string(new_etc.join("added.conf")).expect("read"), "mine\n");
    // motd changed upstream and was not touched locally: the new default.
    assert_eq!(fs::read_to_string(new_etc.join("motd")).expect("read"), "Welcome to Sample Photon 2.0\n");
}

/// With the sysroot pretending to be booted (booted root = a deployment,
/// its ostree= on a fake command line), a staged deploy switches only at
/// finalize-staged, and picks up /etc edits made after staging.
#[test]
fn staged_deploy_finalizes_at_shutdown() {
    require_root();
    let s = Scratch::new();
    let b = build(&s);
    let root = install(&s, &b);
    let run = s.join("run");
    fs::create_dir_all(&run).expect("mkdir");
    let booted = deploy_dir(&root, &b.v1, 0);
    let entry = fs::read_to_string(root.join("boot/loader/entries/ostree-1-sample.conf")).expect("entry");
    let cmdline = s.join("cmdline");
    fs::write(
        &cmdline,
        entry.lines().find(|l| l.starts_with("options ")).expect("options").trim_start_matches("options "),
    )
    .expect("write");
    let host = |args: &[&str]| {
        let mut all = vec![
            "--booted-root",
            booted.to_str().expect("utf-8"),
            "--cmdline",
            cmdline.to_str().expect("utf-8"),
            "--run-dir",
            run.to_str().expect("utf-8"),
        ];
        all.extend_from_slice(args);
        ps(&root, &all)
    };
    let sysrepo = root.join("ostree/repo");
    ostree([&format!("--repo={}", sysrepo.display()), "pull-local", b.repo.to_str().expect("utf-8"), &b.v2]).ok();
    host(&["deploy", "--stage", &b.v2]).ok();
    let doc: serde_json::Value = serde_json::from_str(&host(&["--json", "status"]).ok()).expect("json");
    assert_eq!(doc["deployments"][0]["staged"], true, "{doc}");
    assert_eq!(doc["deployments"][1]["booted"], true, "{doc}");
    // Nothing switched yet: ostree still sees only v1.
    assert_eq!(ostree_status(&root), vec![("sample".to_owned(), format!("{}.0", b.v1))]);
    fs::write(booted.join("etc/hostname"), "late-edit\n").expect("write");
    let fin: serde_json::Value = serde_json::from_str(&host(&["--json", "finalize-staged"]).ok()).expect("json");
    assert_eq!(fin["switched"]["remergedEtc"], true, "{fin}");
    assert_eq!(ostree_status(&root)[0].1, format!("{}.0", b.v2));
    assert_eq!(fs::read_to_string(deploy_dir(&root, &b.v2, 0).join("etc/hostname")).expect("read"), "late-edit\n");
    host(&["cleanup"]).ok();
    assert_eq!(our_status(&root), ostree_status(&root));
}

/// A deploy onto a filesystem too small for it fails before writing
/// anything and says how much it needs; the same for a small /boot.
#[test]
fn space_is_checked_before_anything_is_written() {
    require_root();
    let s = Scratch::new();
    let b = build(&s);
    let root = s.join("tiny");
    let tiny = Tmpfs::mount(&root, "3m");
    let r = pur(&b.repo, ["--sysroot", root.to_str().expect("utf-8"), "install", "--os", "sample", &b.v1]);
    let err = r.error_line();
    assert!(err.contains("not enough space") && err.contains("needs") && err.contains("MiB"), "{err}");
    assert!(
        !root.join("ostree/deploy/sample/deploy").read_dir().map(|mut d| d.next().is_some()).unwrap_or(false),
        "a deployment was written"
    );
    // Room for the objects but not for the deployment (directories, /etc
    // copy, margin): the deploy's own check refuses it.
    drop(tiny);
    let _small = Tmpfs::mount(&root, "6m");
    let err =
        pur(&b.repo, ["--sysroot", root.to_str().expect("utf-8"), "install", "--os", "sample", &b.v1]).error_line();
    assert!(err.contains("the deployment needs") && err.contains("MiB are free"), "{err}");
    assert!(
        fs::read_dir(root.join("ostree/deploy/sample/deploy")).expect("deploy dir").next().is_none(),
        "a deployment was written"
    );
    assert!(!root.join("boot/loader").exists(), "the boot configuration changed");
    // /boot on its own small tmpfs: the sysroot fits, the kernel does not.
    let root2 = s.join("smallboot");
    let _boot = Tmpfs::mount(&root2.join("boot"), "512k");
    let err =
        pur(&b.repo, ["--sysroot", root2.to_str().expect("utf-8"), "install", "--os", "sample", &b.v1]).error_line();
    assert!(err.contains("/boot") && err.contains("MiB"), "{err}");
    assert!(fs::read_dir(root2.join("boot")).expect("boot").next().is_none(), "something was written to /boot");
}

/// `upgrade` follows the origin: --check exits 77 when there is nothing
/// new and 0 when there is; --preview lists the changed files; upgrade
/// pulls and deploys.
#[test]
fn upgrade_check_preview_and_deploy() {
    require_root();
    let s = Scratch::new();
    let b = build(&s);
    let nginx = crate::server::Nginx::serve(&b.repo, s.path_buf());
    pur(&b.repo, ["repo", "summary", "--update"]).ok();
    let root = s.join("sysroot");
    pur(
        &b.repo,
        [
            "--sysroot",
            root.to_str().expect("utf-8"),
            "install",
            "--os",
            "sample",
            "--origin",
            "origin:os/stable",
            "os/stable^",
        ],
    )
    .ok();
    ps(&root, &["remote", "add", "origin", &nginx.url(), "--no-sign-verify"]).ok();
    let r = ps(&root, &["upgrade", "--check"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(r.stdout().contains("update available"), "{}", r.stdout());
    let preview = ps(&root, &["upgrade", "--preview"]).ok();
    assert!(preview.contains("M    /usr/lib/os-release"), "{preview}");
    assert_eq!(our_status(&root).len(), 1, "preview deployed something");
    ps(&root, &["upgrade"]).ok();
    assert_eq!(ostree_status(&root)[0].1, format!("{}.0", b.v2));
    assert_eq!(our_status(&root), ostree_status(&root));
    let r = ps(&root, &["upgrade", "--check"]);
    assert_eq!(r.code(), 77, "nothing new must exit 77: {} {}", r.stdout(), r.stderr());
}

/// The booted deployment is the one `/` is (device and inode); `ostree=`
/// on the command line is a cross-check, and a disagreement is reported.
#[test]
fn booted_deployment_and_cmdline_cross_check() {
    require_root();
    let s = Scratch::new();
    let b = build(&s);
    let root = install(&s, &b);
    ps(&root, &["--repo", b.repo.to_str().expect("utf-8"), "install", "--os", "sample", &b.v2]).ok();
    let entries = root.join("boot/loader/entries");
    let opts = |name: &str| {
        let t = fs::read_to_string(entries.join(name)).expect("entry");
        t.lines().find(|l| l.starts_with("options ")).expect("options").trim_start_matches("options ").to_owned()
    };
    let cmdline = s.join("cmdline");
    let booted = deploy_dir(&root, &b.v1, 0);
    let status = |cmd: &str| -> serde_json::Value {
        fs::write(&cmdline, cmd).expect("write");
        let out = ps(
            &root,
            &[
                "--booted-root",
                booted.to_str().expect("utf-8"),
                "--cmdline",
                cmdline.to_str().expect("utf-8"),
                "--json",
                "status",
            ],
        )
        .ok();
        serde_json::from_str(&out).expect("json")
    };
    // v1 is index 1 (entry version 1); booted from it with a matching command line.
    let doc = status(&opts("ostree-1-sample.conf"));
    assert_eq!(doc["booted"], 1, "{doc}");
    assert_eq!(doc["deployments"][1]["booted"], true);
    assert_eq!(doc["deployments"][0]["pending"], true);
    assert!(doc["bootedMismatch"].is_null(), "{doc}");
    // The command line names v2's entry while / is v1: reported.
    let doc = status(&opts("ostree-2-sample.conf"));
    assert_eq!(doc["booted"], 1);
    assert!(doc["bootedMismatch"].as_str().is_some_and(|m| m.contains("kernel command line")), "{doc}");
}

/// `upgrade --from-file`: an offline bundle, verified with the origin
/// remote's keys, deployed like a pulled update; a bundle signed by
/// another key, and one for a commit older than the booted one, are
/// refused with nothing changed.
#[test]
fn upgrade_from_offline_bundle() {
    require_root();
    let s = Scratch::new();
    let b = build(&s);
    let key = s.join("key");
    let other = s.join("other");
    pu(["repo", "keygen", "-o", key.to_str().expect("utf-8")]).ok();
    pu(["repo", "keygen", "-o", other.to_str().expect("utf-8")]).ok();
    let k = key.to_str().expect("utf-8");
    for rev in ["os/stable", "os/stable^"] {
        pur(&b.repo, ["repo", "sign", rev, "--key", k]).ok();
    }
    let bundle = s.join("update.pud");
    let bad = s.join("bad.pud");
    let old = s.join("old.pud");
    let bn = bundle.to_str().expect("utf-8");
    pur(&b.repo, ["repo", "delta", "export", "--from", "os/stable^", "--to", "os/stable", "--sign-key", k, bn]).ok();
    let o = other.to_str().expect("utf-8");
    pur(
        &b.repo,
        [
            "repo",
            "delta",
            "export",
            "--from",
            "os/stable^",
            "--to",
            "os/stable",
            "--sign-key",
            o,
            bad.to_str().expect("utf-8"),
        ],
    )
    .ok();
    let root = s.join("sysroot");
    let r = root.to_str().expect("utf-8");
    pur(&b.repo, ["--sysroot", r, "install", "--os", "sample", "--origin", "origin:os/stable", "os/stable^"]).ok();
    // The remote is never contacted: its URL points nowhere.
    let pubkey = format!("{k}.pub");
    ps(&root, &["remote", "add", "origin", "http://127.0.0.1:9/", "--trusted-key", &pubkey]).ok();
    let before = our_status(&root);

    let err = ps(&root, &["upgrade", "--from-file", bad.to_str().expect("utf-8")]).error_line();
    assert!(err.contains("trusted key"), "{err}");
    assert_eq!(our_status(&root), before);

    let r = ps(&root, &["upgrade", "--from-file", bn, "--check"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    ps(&root, &["upgrade", "--from-file", bn]).ok();
    assert_eq!(ostree_status(&root)[0].1, format!("{}.0", b.v2));
    assert_eq!(our_status(&root), ostree_status(&root));
    let rev = ps(&root, &["repo", "rev-parse", "origin:os/stable"]).ok();
    assert_eq!(rev.trim(), b.v2);
    ps(&root, &["repo", "fsck"]).ok();

    // Going back to 1.0 through a bundle is a downgrade.
    pur(&b.repo, ["repo", "delta", "export", "--to", "os/stable^", "--sign-key", k, old.to_str().expect("utf-8")]).ok();
    let err = ps(&root, &["upgrade", "--from-file", old.to_str().expect("utf-8")]).error_line();
    assert!(err.contains("downgrade"), "{err}");
}
