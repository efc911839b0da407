//! Test helpers: a tmpfs scratch directory (unmounted on drop), a fake
//! sysroot with OSTree's layout, and a runner that executes the binary in
//! a private mount namespace and reports what it printed and what was
//! mounted before and after.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use photon_prepare_root::mountinfo::{self, Mount};
use rustix::mount::{MountFlags, UnmountFlags};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_photon-prepare-root");
/// The initramfs helper that puts the deployment at SYSROOT.
pub const PREPARE_SYSROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/initramfs/photon-prepare-sysroot");

/// The stateroot of the fixture.
pub const OS: &str = "photon";
/// The fixture deployment's checksum.
pub const CSUM: &str = "c7ed75e837255175cd215f2166ee652fdd4b3eb269cc13826d39a77e988530e4";
/// The boot checksum in the bootlink path.
pub const BOOTCSUM: &str = "2bd9c8d7a9f1be0bdaec6a0e4ad8dbb7aa8c4b6ba2bc9ec7d4c3d0e9a8f7e6d5";
/// The `ostree=` value of the fixture.
pub fn bootlink() -> String {
    format!("/ostree/boot.1/{OS}/{BOOTCSUM}/0")
}

/// Where scratch tmpfs mounts go.
const SCRATCH_BASE: &str = "/var/tmp/photon-prepare-root-it";

/// A tmpfs mounted on a fresh directory under /var/tmp; unmounted and
/// removed on drop, also when the test panics.
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// Mounts a small (16 MiB) tmpfs on `SCRATCH_BASE/NAME-PID`.
    pub fn new(name: &str) -> Scratch {
        Scratch::with_options(name, c"size=16m,mode=0755")
    }

    /// Mounts a tmpfs with mount options `options` on `SCRATCH_BASE/NAME-PID`.
    pub fn with_options(name: &str, options: &std::ffi::CStr) -> Scratch {
        assert!(
            rustix::process::geteuid().is_root(),
            "the photon-prepare-root tests mount filesystems: run them as root (CI does)"
        );
        let dir = Path::new(SCRATCH_BASE).join(format!("{name}-{}", std::process::id()));
        if dir.exists() {
            // Left by a killed earlier run with the same pid: clear it.
            let _ = rustix::mount::unmount(&dir, UnmountFlags::DETACH);
            fs::remove_dir_all(&dir).expect("remove a stale scratch directory");
        }
        fs::create_dir_all(&dir).expect("create the scratch directory");
        rustix::mount::mount("tmpfs", &dir, "tmpfs", MountFlags::empty(), options)
            .expect("mount a tmpfs for the scratch directory");
        Scratch { dir }
    }

    /// The tmpfs root.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = rustix::mount::unmount(&self.dir, UnmountFlags::DETACH) {
            eprintln!("cannot unmount {}: {e}", self.dir.display());
            return;
        }
        if let Err(e) = fs::remove_dir(&self.dir) {
            eprintln!("cannot remove {}: {e}", self.dir.display());
        }
    }
}

/// A sysroot as `photon-upgrade install` leaves it, on its own tmpfs:
///
/// ```text
/// sysroot/ostree/deploy/photon/deploy/CSUM.0/{usr,etc,var,sysroot,run}
/// sysroot/ostree/deploy/photon/var/
/// sysroot/ostree/boot.1 -> boot.1.1
/// sysroot/ostree/boot.1.1/photon/BOOTCSUM/0 -> ../../../deploy/photon/deploy/CSUM.0
/// run/                     (the initramfs /run)
/// cmdline                  (the kernel command line)
/// out/                     (what the namespace reports)
/// ```
pub struct Fixture {
    /// Holds the tmpfs; dropped last.
    pub scratch: Scratch,
    /// SYSROOT.
    pub sysroot: PathBuf,
    /// The deployment directory.
    pub deploy: PathBuf,
    /// The run directory.
    pub run: PathBuf,
    /// The command line file.
    pub cmdline: PathBuf,
    out: PathBuf,
}

impl Fixture {
    /// Builds the fixture on a new scratch tmpfs named `name`.
    pub fn new(name: &str) -> Fixture {
        let scratch = Scratch::new(name);
        let root = scratch.path().to_owned();
        let sysroot = root.join("sysroot");
        let deploy = sysroot.join(format!("ostree/deploy/{OS}/deploy/{CSUM}.0"));
        for sub in ["usr/bin", "etc", "var", "sysroot", "run"] {
            mkdir(&deploy.join(sub));
        }
        write(&deploy.join("usr/bin/init"), "#!/bin/sh\n");
        write(&deploy.join("etc/os-release"), "ID=photon\n");
        mkdir(&sysroot.join(format!("ostree/deploy/{OS}/var/lib")));
        mkdir(&sysroot.join(format!("ostree/boot.1.1/{OS}/{BOOTCSUM}")));
        ln("boot.1.1", &sysroot.join("ostree/boot.1"));
        let fixture = Fixture {
            cmdline: root.join("cmdline"),
            run: root.join("run"),
            out: root.join("out"),
            scratch,
            sysroot,
            deploy,
        };
        fixture.set_bootlink(&format!("../../../deploy/{OS}/deploy/{CSUM}.0"));
        mkdir(&fixture.run);
        mkdir(&fixture.out);
        fixture.set_cmdline(&format!("BOOT_IMAGE=/vmlinuz root=LABEL=root rw ostree={} quiet\n", bootlink()));
        fixture
    }

    /// Points the fixture's bootlink `boot.1.1/OS/BOOTCSUM/0` at `dest`.
    pub fn set_bootlink(&self, dest: &str) {
        let link = self.sysroot.join(format!("ostree/boot.1.1/{OS}/{BOOTCSUM}/0"));
        let _ = fs::remove_file(&link);
        ln(dest, &link);
    }

    /// Replaces the kernel command line.
    pub fn set_cmdline(&self, text: &str) {
        write(&self.cmdline, text);
    }

    /// `path` as the scratch tmpfs sees it: the `root` field of a bind
    /// mount of it in mountinfo.
    pub fn in_tmpfs(&self, path: &Path) -> PathBuf {
        Path::new("/").join(path.strip_prefix(self.scratch.path()).expect("a path in the scratch tmpfs"))
    }

    /// The stateroot's `/var`.
    pub fn stateroot_var(&self) -> PathBuf {
        self.sysroot.join(format!("ostree/deploy/{OS}/var"))
    }

    /// Runs, in a new private mount namespace, the shell snippet `pre`,
    /// then the binary `runs` times (with `--cmdline`, `--run` and
    /// SYSROOT), then `post`. The snippets see `$BIN $SYSROOT $DEPLOY $RUN
    /// $CMDLINE $OUT`; what `post` prints is returned. The namespace, and
    /// every mount in it, is gone when this returns.
    pub fn run_in_namespace(&self, pre: &str, runs: usize, post: &str) -> NsOutcome {
        self.run_command_in_namespace(&[BIN], pre, runs, post)
    }

    /// As [`Fixture::run_in_namespace`], with `command` (program and first
    /// arguments) in place of the binary.
    pub fn run_command_in_namespace(&self, command: &[&str], pre: &str, runs: usize, post: &str) -> NsOutcome {
        let script = format!(
            r#"set -u
{pre}
i=0
while [ "$i" -lt {runs} ]; do
  i=$((i + 1))
  cat /proc/self/mountinfo >"$OUT/before.$i"
  "$@" --cmdline "$CMDLINE" --run "$RUN" "$SYSROOT" >"$OUT/stdout.$i" 2>"$OUT/stderr.$i"
  echo $? >"$OUT/rc.$i"
  cat /proc/self/mountinfo >"$OUT/after.$i"
done
{post}
"#
        );
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script, "sh"])
            .args(command)
            .env("BIN", BIN)
            .env("PHOTON_PREPARE_ROOT", BIN)
            .env("SYSROOT", &self.sysroot)
            .env("DEPLOY", &self.deploy)
            .env("RUN", &self.run)
            .env("CMDLINE", &self.cmdline)
            .env("OUT", &self.out)
            .stdin(Stdio::null())
            .output()
            .expect("run unshare (util-linux)");
        assert!(
            out.status.success(),
            "the namespace script failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let runs = (1..=runs)
            .map(|i| {
                let read = |what: &str| {
                    fs::read_to_string(self.out.join(format!("{what}.{i}")))
                        .unwrap_or_else(|e| panic!("read {what}.{i}: {e}"))
                };
                RunResult {
                    code: read("rc").trim().parse().expect("the exit code is a number"),
                    stdout: read("stdout"),
                    stderr: read("stderr"),
                    before: self.own_mounts(&read("before")),
                    after: self.own_mounts(&read("after")),
                }
            })
            .collect();
        NsOutcome { runs, post: String::from_utf8_lossy(&out.stdout).into_owned() }
    }

    /// Parses a mountinfo snapshot, leaving out the scratch mounts of
    /// tests running in parallel: the namespace got copies of them, and
    /// they vanish from it when those tests remove their directories.
    fn own_mounts(&self, text: &str) -> Vec<Mount> {
        let mounts = mountinfo::parse(text.as_bytes()).expect("the kernel's mountinfo parses");
        mounts
            .into_iter()
            .filter(|m| !m.mount_point.starts_with(SCRATCH_BASE) || m.mount_point.starts_with(self.scratch.path()))
            .collect()
    }
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct RunResult {
    /// Its exit code.
    pub code: i32,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
    /// The namespace's mounts just before it ran (without other tests'
    /// scratch directories).
    pub before: Vec<Mount>,
    /// And just after.
    pub after: Vec<Mount>,
}

impl RunResult {
    /// The mounts that the run added.
    pub fn new_mounts(&self) -> Vec<&Mount> {
        self.after.iter().filter(|m| !self.before.iter().any(|b| b.id == m.id)).collect()
    }

    /// Asserts a failure with exit 1, one `photon-prepare-root:` line on
    /// stderr containing `want`, nothing on stdout, and the mount table
    /// exactly as before; returns the line.
    #[track_caller]
    pub fn assert_clean_failure(&self, want: &str) -> String {
        assert_eq!(self.code, 1, "expected exit 1; stderr: {}", self.stderr);
        assert_eq!(self.stdout, "", "nothing on stdout on failure");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr, got {:?}", self.stderr);
        assert!(lines[0].starts_with("photon-prepare-root: "), "{:?}", lines[0]);
        assert!(lines[0].contains(want), "expected {want:?} in {:?}", lines[0]);
        assert_eq!(self.before, self.after, "a failed run must leave the mounts as they were");
        lines[0].to_owned()
    }
}

/// Everything a namespace run produced.
#[derive(Debug)]
pub struct NsOutcome {
    /// One entry per run of the binary.
    pub runs: Vec<RunResult>,
    /// What the `post` snippet printed.
    pub post: String,
}

/// `mkdir -p`, panicking with the path.
pub fn mkdir(path: &Path) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
}

/// Writes a file, panicking with the path.
pub fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// `ln -s dest link`, panicking with the path.
pub fn ln(dest: &str, link: &Path) {
    symlink(dest, link).unwrap_or_else(|e| panic!("symlink {} -> {dest}: {e}", link.display()));
}
