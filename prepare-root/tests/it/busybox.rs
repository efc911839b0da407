//! `initramfs/busybox/init`, booted for real but without a VM: a busybox
//! initramfs on a tmpfs runs as pid 1 of a new pid and mount namespace
//! (chrooted), with `root=` a loop device holding an ext4 OSTree sysroot
//! and the kernel command line bind-mounted over `/proc/cmdline`. It must
//! `switch_root` into the deployment, whose `/sbin/init` reports what it
//! sees; or print the failure marker and power off, which in a pid
//! namespace ends only that namespace (reboot(2)).
//!
//! Needs a static busybox (Debian's busybox-static), losetup, mkfs.ext4
//! and script (util-linux); without busybox the tests say so and pass.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::{BIN, BOOTCSUM, CSUM, OS, Scratch, bootlink, ln, mkdir, write};

const BUSYBOX_INIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/initramfs/busybox/init");

/// The deployment's `/sbin/init`: prints what a booted system sees.
const DEPLOYMENT_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /tmp/bin
/bin/busybox --install -s /tmp/bin
export PATH=/tmp/bin
echo "DEPLOYMENT-BOOTED pid=$$"
cat /proc/self/mountinfo
test -e /run/ostree-booted && echo MARKER-OK
touch /usr/probe 2>/dev/null || echo USR-RO
echo probe >/var/probe && echo VAR-OK
test -d /sysroot/ostree/deploy && echo SYSROOT-OK
cat /etc/os-release
"#;

/// The namespace: pid 1 mounts /proc with the fake command line, a /dev
/// with the loop device, null and this pty as the console (the kernel's
/// console is not ours to read), then becomes the initramfs's /init.
const NAMESPACE: &str = r#"
set -e
[ "$$" = 1 ] || { echo "not pid 1 of a new pid namespace" >&2; exit 99; }
mount -t proc proc "$I/proc"
mount --bind "$CMDLINE" "$I/proc/cmdline"
if [ -e "$I/proc/sysrq-trigger" ]; then mount --bind /dev/null "$I/proc/sysrq-trigger"; fi
mount -t tmpfs tmpfs "$I/dev"
touch "$I/dev/console" "$I/dev/null"
mount --bind "$(tty)" "$I/dev/console"
mount --bind /dev/null "$I/dev/null"
cp -a "$LOOP" "$I/dev/"
exec chroot "$I" /init
"#;

/// A loop device, detached on drop.
struct Loop(String);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// The static busybox to build both trees from, if there is one.
fn static_busybox() -> Option<PathBuf> {
    let path = ["/usr/bin/busybox", "/bin/busybox"].into_iter().map(PathBuf::from).find(|p| p.exists())?;
    // ldd fails on a static executable.
    let dynamic = Command::new("ldd").arg(&path).stdout(Stdio::null()).stderr(Stdio::null()).status().ok()?.success();
    (!dynamic).then_some(path)
}

/// Boots the busybox initramfs with kernel command line `cmdline`
/// (`LOOPDEV` in it becomes the loop device) and returns what the console
/// showed, without the pty's carriage returns.
fn boot(name: &str, cmdline: &str) -> String {
    // tests/run.sh installs it: a missing one is a broken setup, not a skip.
    let Some(busybox) = static_busybox() else {
        panic!("no static busybox: apt-get install busybox-static");
    };
    let disk = Scratch::with_options(&format!("bb-disk-{name}"), c"size=48m,mode=0755");
    let initramfs = Scratch::with_options(&format!("bb-initramfs-{name}"), c"size=32m,mode=0755");

    // The root filesystem: an OSTree sysroot with one deployment.
    let tree = disk.path().join("tree");
    let deploy = tree.join(format!("ostree/deploy/{OS}/deploy/{CSUM}.0"));
    for sub in ["bin", "sbin", "usr", "etc", "var", "sysroot", "run", "proc", "sys", "dev", "tmp"] {
        mkdir(&deploy.join(sub));
    }
    fs::copy(&busybox, deploy.join("bin/busybox")).expect("copy busybox into the deployment");
    write(&deploy.join("sbin/init"), DEPLOYMENT_INIT);
    chmod_x(&deploy.join("sbin/init"));
    write(&deploy.join("etc/os-release"), "ID=photon\n");
    mkdir(&tree.join(format!("ostree/deploy/{OS}/var")));
    mkdir(&tree.join(format!("ostree/boot.1.1/{OS}/{BOOTCSUM}")));
    ln("boot.1.1", &tree.join("ostree/boot.1"));
    ln(&format!("../../../deploy/{OS}/deploy/{CSUM}.0"), &tree.join(format!("ostree/boot.1.1/{OS}/{BOOTCSUM}/0")));
    let image = disk.path().join("root.img");
    run(Command::new("mkfs.ext4").args(["-q", "-L", "photon-root", "-d"]).arg(&tree).arg(&image).arg("24M"));
    let out = Command::new("losetup").args(["-f", "--show"]).arg(&image).output().expect("run losetup");
    assert!(out.status.success(), "losetup: {}", String::from_utf8_lossy(&out.stderr));
    let lo = Loop(String::from_utf8_lossy(&out.stdout).trim().to_owned());

    // The initramfs: busybox, /init, photon-prepare-root and its libraries.
    let i = initramfs.path();
    for sub in ["bin", "proc", "dev", "etc", "usr/lib/photon-upgrade"] {
        mkdir(&i.join(sub));
    }
    fs::copy(&busybox, i.join("bin/busybox")).expect("copy busybox");
    let applets = Command::new(&busybox).arg("--list").output().expect("busybox --list");
    for applet in String::from_utf8_lossy(&applets.stdout).lines().filter(|a| *a != "busybox") {
        ln("busybox", &i.join("bin").join(applet));
    }
    fs::copy(BUSYBOX_INIT, i.join("init")).expect("copy init");
    fs::copy(BIN, i.join("usr/lib/photon-upgrade/photon-prepare-root")).expect("copy the binary");
    copy_libraries(Path::new(BIN), i);
    let cmdline_file = disk.path().join("cmdline");
    write(&cmdline_file, &cmdline.replace("LOOPDEV", &lo.0));

    let log = disk.path().join("console.log");
    let status = Command::new("script")
        .args(["-q", "-e", "-c"])
        .arg(format!("unshare --pid --fork --mount --propagation private sh -c '{NAMESPACE}'"))
        .arg(&log)
        .env("I", i)
        .env("CMDLINE", &cmdline_file)
        .env("LOOP", &lo.0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("run script (util-linux)");
    let console = fs::read_to_string(&log).expect("read the console log").replace('\r', "");
    // 130: pid 1 killed by SIGINT, how reboot(2) ends a pid namespace.
    assert!(matches!(status.code(), Some(0 | 130)), "the namespace ended with {status}:\n{console}");
    drop(lo);
    console
}

/// The kernel command line for the fixture with `root`.
fn cmdline_with_root(root: &str) -> String {
    format!("{root} ostree={} quiet", bootlink())
}

fn chmod_x(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod +x");
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Copies the shared libraries `ldd` lists for `exe` into `root`, at the
/// same paths.
fn copy_libraries(exe: &Path, root: &Path) {
    let out = Command::new("ldd").arg(exe).output().expect("run ldd");
    for word in String::from_utf8_lossy(&out.stdout).split_whitespace().filter(|w| w.starts_with('/')) {
        let dest = root.join(word.trim_start_matches('/'));
        mkdir(dest.parent().expect("a library has a directory"));
        fs::copy(word, &dest).unwrap_or_else(|e| panic!("copy {word}: {e}"));
    }
}

#[test]
fn boots_the_deployment() {
    for (name, root) in [("label", "root=LABEL=photon-root"), ("path", "root=LOOPDEV")] {
        let cmdline = cmdline_with_root(root);
        let console = boot(name, &cmdline);
        assert!(!console.contains("PHOTON-PREPARE-ROOT-FAILED"), "{name}:\n{console}");
        for want in ["DEPLOYMENT-BOOTED pid=1", "MARKER-OK", "USR-RO", "VAR-OK", "SYSROOT-OK", "ID=photon"] {
            assert!(console.lines().any(|l| l == want), "{name}: no {want:?} in:\n{console}");
        }
        let deploy_root = format!("/ostree/deploy/{OS}/deploy/{CSUM}.0 / rw");
        let var = format!("/ostree/deploy/{OS}/var /var rw");
        let usr = format!("/ostree/deploy/{OS}/deploy/{CSUM}.0/usr /usr ro");
        for want in [deploy_root.as_str(), var.as_str(), usr.as_str(), " / /sysroot rw", " /run rw"] {
            assert!(console.contains(want), "{name}: no mount {want:?} in:\n{console}");
        }
    }
}

#[test]
fn reports_a_failure_and_powers_off() {
    let console = boot("fail", "root=LABEL=photon-root quiet");
    let marker: Vec<&str> = console.lines().filter(|l| l.starts_with("PHOTON-PREPARE-ROOT-FAILED: ")).collect();
    assert_eq!(
        marker,
        ["PHOTON-PREPARE-ROOT-FAILED: photon-prepare-root: no ostree= argument on the kernel command line"],
        "{console}"
    );
    assert!(!console.contains("DEPLOYMENT-BOOTED"), "{console}");
}
