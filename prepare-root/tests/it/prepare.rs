//! The happy path: what a prepared deployment looks like.

use std::fs;

use crate::util::{BIN, Fixture, PREPARE_SYSROOT};

/// Prepares the fixture and probes the result from inside the namespace:
/// writes through /var, /usr and /etc, and compares /sysroot with SYSROOT.
#[test]
fn prepares_the_deployment() {
    let fx = Fixture::new("prepare");
    let post = r#"
echo through-var >"$DEPLOY/var/probe"; echo "var=$?"
touch "$DEPLOY/usr/probe" 2>"$OUT/usr.err"; echo "usr=$?"
echo through-etc >"$DEPLOY/etc/probe"; echo "etc=$?"
echo "sysroot=$(stat -c %d:%i "$DEPLOY/sysroot")"
echo "physical=$(stat -c %d:%i "$SYSROOT")"
"#;
    let outcome = fx.run_in_namespace("", 1, post);
    let run = &outcome.runs[0];
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.stderr, "");
    assert_eq!(run.stdout, format!("{}\n", fx.deploy.display()), "stdout is the deployment path, one line");

    // Exactly four new mounts, in this order, each of the right directory.
    let got: Vec<_> =
        run.new_mounts().iter().map(|m| (m.mount_point.clone(), m.root.clone(), m.is_read_only())).collect();
    let want = vec![
        (fx.deploy.clone(), fx.in_tmpfs(&fx.deploy), false),
        (fx.deploy.join("var"), fx.in_tmpfs(&fx.stateroot_var()), false),
        (fx.deploy.join("usr"), fx.in_tmpfs(&fx.deploy.join("usr")), true),
        (fx.deploy.join("sysroot"), fx.in_tmpfs(&fx.sysroot), false),
    ];
    assert_eq!(got, want);

    let probes: Vec<&str> = outcome.post.lines().collect();
    assert_eq!(probes[0], "var=0");
    assert_ne!(probes[1], "usr=0", "/usr must not be writable");
    let usr_err = fs::read_to_string(fx.scratch.path().join("out/usr.err")).expect("read usr.err");
    assert!(usr_err.contains("Read-only file system"), "EROFS expected, got {usr_err:?}");
    assert_eq!(probes[2], "etc=0", "/etc stays writable");
    assert_eq!(probes[3].trim_start_matches("sysroot="), probes[4].trim_start_matches("physical="));

    // The namespace is gone; the writes landed where they belong.
    assert_eq!(
        fs::read_to_string(fx.stateroot_var().join("probe")).expect("probe in the stateroot var"),
        "through-var\n"
    );
    assert!(!fx.deploy.join("var/probe").exists(), "/var is the stateroot's, not the deployment's own");
    assert!(!fx.deploy.join("usr/probe").exists());
    assert_eq!(fs::read_to_string(fx.deploy.join("etc/probe")).expect("probe in etc"), "through-etc\n");
    let marker = fs::symlink_metadata(fx.run.join("ostree-booted")).expect("run/ostree-booted exists");
    assert!(marker.is_file() && marker.len() == 0, "an empty regular file");
}

/// A second run in the same boot refuses and mounts nothing more.
#[test]
fn refuses_a_second_run() {
    let fx = Fixture::new("twice");
    let outcome = fx.run_in_namespace("", 2, "");
    assert_eq!(outcome.runs[0].code, 0, "first run: {}", outcome.runs[0].stderr);
    let line = outcome.runs[1].assert_clean_failure("is already a mount point");
    assert_eq!(
        line,
        format!(
            "photon-prepare-root: {} is already a mount point (the deployment is already prepared; refusing to stack mounts)",
            fx.deploy.display()
        )
    );
}

/// A mount left on a directory of the deployment (a half-finished earlier
/// attempt, or someone else's) is refused too.
#[test]
fn refuses_a_mount_below_the_deployment() {
    let fx = Fixture::new("below");
    let outcome = fx.run_in_namespace(r#"mount --bind "$DEPLOY/usr" "$DEPLOY/usr""#, 1, "");
    let line = outcome.runs[0].assert_clean_failure("is already a mount point");
    assert!(line.contains(&format!("{}/usr is already", fx.deploy.display())), "{line}");
}

/// When the last step fails (here the marker, on a read-only /run), every
/// mount made before it is undone.
#[test]
fn undoes_the_mounts_when_a_later_step_fails() {
    let fx = Fixture::new("undo");
    let pre = r#"mount --bind "$RUN" "$RUN" && mount -o remount,bind,ro "$RUN""#;
    let outcome = fx.run_in_namespace(pre, 1, "");
    let line = outcome.runs[0].assert_clean_failure("Read-only file system");
    assert!(line.contains(&format!("cannot write {}/ostree-booted", fx.run.display())), "{line}");
    assert!(!fx.run.join("ostree-booted").exists());
}

/// A physical root mounted read-only would give a read-only /etc and
/// /var: refused before any mount.
#[test]
fn refuses_a_read_only_sysroot() {
    let fx = Fixture::new("ro-sysroot");
    let pre = r#"mount --bind "$SYSROOT" "$SYSROOT" && mount -o remount,bind,ro "$SYSROOT""#;
    let outcome = fx.run_in_namespace(pre, 1, "");
    let line = outcome.runs[0].assert_clean_failure("is mounted read-only");
    assert!(line.contains(&format!("the sysroot {} is mounted read-only", fx.sysroot.display())), "{line}");
}

/// The helper the dracut and initramfs-tools integrations run: starting
/// from the physical root mounted read-only at SYSROOT (as both leave
/// it), it ends with the deployment at SYSROOT and the physical root's
/// own mount gone.
#[test]
fn prepare_sysroot_puts_the_deployment_at_sysroot() {
    let fx = Fixture::new("prepare-sysroot");
    let pre = r#"mount --bind "$SYSROOT" "$SYSROOT" && mount -o remount,bind,ro "$SYSROOT""#;
    let post = r#"
cat "$SYSROOT/etc/os-release"
test -d "$SYSROOT/sysroot/ostree/deploy"; echo "physical=$?"
echo via-helper >"$SYSROOT/var/probe"; echo "var=$?"
touch "$SYSROOT/usr/probe" 2>/dev/null; echo "usr=$?"
test -e "$SYSROOT.tmp"; echo "tmp=$?"
"#;
    let outcome = fx.run_command_in_namespace(&["sh", PREPARE_SYSROOT], pre, 1, post);
    let run = &outcome.runs[0];
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.stderr, "");
    assert_eq!(
        run.stdout,
        format!("photon-prepare-sysroot: {} is now {}\n", fx.deploy.display(), fx.sysroot.display())
    );
    let got: Vec<_> = run
        .after
        .iter()
        .filter(|m| m.mount_point.starts_with(&fx.sysroot))
        .map(|m| (m.mount_point.clone(), m.root.clone(), m.is_read_only()))
        .collect();
    let want = vec![
        (fx.sysroot.clone(), fx.in_tmpfs(&fx.deploy), false),
        (fx.sysroot.join("var"), fx.in_tmpfs(&fx.stateroot_var()), false),
        (fx.sysroot.join("usr"), fx.in_tmpfs(&fx.deploy.join("usr")), true),
        (fx.sysroot.join("sysroot"), fx.in_tmpfs(&fx.sysroot), false),
    ];
    assert_eq!(got, want);
    assert_eq!(outcome.post, "ID=photon\nphysical=0\nvar=0\nusr=1\ntmp=1\n");
    assert_eq!(
        fs::read_to_string(fx.stateroot_var().join("probe")).expect("probe in the stateroot var"),
        "via-helper\n"
    );
    assert!(fx.run.join("ostree-booted").exists());
}

/// The helper stops at the binary's error, with its message.
#[test]
fn prepare_sysroot_passes_errors_on() {
    let fx = Fixture::new("prepare-sysroot-error");
    fx.set_cmdline("quiet\n");
    let pre = r#"mount --bind "$SYSROOT" "$SYSROOT""#;
    let outcome = fx.run_command_in_namespace(&["sh", PREPARE_SYSROOT], pre, 1, "");
    outcome.runs[0].assert_clean_failure("no ostree= argument");
}

/// `--help` prints the usage on stdout; a bad command line exits 2.
#[test]
fn usage() {
    let help = std::process::Command::new(BIN).arg("--help").output().expect("run --help");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).starts_with("usage: photon-prepare-root"));

    let bad = std::process::Command::new(BIN).args(["/sysroot", "--bogus"]).output().expect("run");
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&bad.stderr), "photon-prepare-root: unknown option \"--bogus\" (see --help)\n");
}
