//! Test helpers: scratch directories, running our binary and the real
//! `ostree`, and a fixture tree that exercises every kind of entry.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_photon-upgrade")
}

/// A finished command, with helpers that print everything on failure.
pub struct Run {
    pub out: Output,
    pub what: String,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    pub fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }
    /// Asserts success and returns trimmed stdout.
    #[track_caller]
    pub fn ok(&self) -> String {
        assert!(
            self.out.status.success(),
            "{} failed ({}):\nstdout: {}\nstderr: {}",
            self.what,
            self.code(),
            self.stdout(),
            self.stderr()
        );
        self.stdout().trim_end().to_owned()
    }
    /// Asserts failure with `code` and a one-line `error:` message; returns it.
    #[track_caller]
    pub fn fails(&self, code: i32) -> String {
        assert_eq!(
            self.code(),
            code,
            "{}: expected exit {code}\nstdout: {}\nstderr: {}",
            self.what,
            self.stdout(),
            self.stderr()
        );
        self.stderr()
    }
    /// As [`Run::fails`] with 1, and checks the single `error:` line.
    #[track_caller]
    pub fn error_line(&self) -> String {
        let err = self.fails(1);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(lines.len(), 1, "{}: expected exactly one error line, got:\n{err}", self.what);
        lines[0].to_owned()
    }
}

fn run_cmd(mut c: Command, what: String) -> Run {
    c.stdin(Stdio::null());
    let out = c.output().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    Run { out, what }
}

/// Runs our binary with `args`.
pub fn pu<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let mut c = Command::new(bin());
    c.args(&args).env_remove("SOURCE_DATE_EPOCH").env_remove("PHOTON_UPGRADE_REPO");
    run_cmd(c, format!("photon-upgrade {}", args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")))
}

/// Runs our binary against a repository.
pub fn pur<I, S>(repo: &Path, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut all: Vec<std::ffi::OsString> = vec!["--repo".into(), repo.as_os_str().to_owned()];
    all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
    pu(all)
}

/// Runs the real `ostree` (the oracle). CI installs it; a missing binary
/// fails the test rather than skipping it.
pub fn ostree<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let mut c = Command::new("ostree");
    c.args(&args);
    run_cmd(c, format!("ostree {}", args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")))
}

/// Runs any program.
pub fn sh(prog: &str, args: &[&str]) -> Run {
    let mut c = Command::new(prog);
    c.args(args);
    run_cmd(c, format!("{prog} {}", args.join(" ")))
}

/// Deterministic incompressible bytes (xorshift64 from `seed`).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A tmpfs of a given size mounted at a directory, unmounted at drop: a
/// small filesystem for out-of-space cases.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Creates `dir` if needed and mounts a tmpfs of `size` (`4m`, `512k`) on it.
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).expect("mkdir for a tmpfs");
        sh("mount", &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", dir.to_str().expect("utf-8")]).ok();
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A bind mount of a directory, unmounted at drop.
pub struct Bind(PathBuf);

impl Bind {
    /// Binds `src` onto `dst` (an existing directory), not recursively.
    pub fn mount(src: &Path, dst: &Path) -> Bind {
        let (s, d) = (src.to_str().expect("utf-8"), dst.to_str().expect("utf-8"));
        sh("mount", &["--bind", s, d]).ok();
        Bind(dst.to_owned())
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A scratch directory removed at drop (immutable bits cleared first).
pub struct Scratch(pub tempfile::TempDir);

impl Drop for Scratch {
    fn drop(&mut self) {
        // Deployment roots are chattr +i (as OSTree's are): TempDir's own
        // removal fails below them and would leave the tree behind.
        let _ = Command::new("chattr").args(["-R", "-f", "-i"]).arg(self.0.path()).stderr(Stdio::null()).status();
    }
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch(tempfile::Builder::new().prefix("pu-test-").tempdir_in(scratch_base()).expect("creating a scratch dir"))
    }
    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.0.path().join(p)
    }
    pub fn path_buf(&self) -> &Path {
        self.0.path()
    }
}

/// Where scratch directories go: `/var/tmp` (a real disk with xattrs; /tmp may be tmpfs).
fn scratch_base() -> PathBuf {
    std::env::var_os("PU_TEST_TMPDIR").map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from)
}

/// True when running as root (bare repositories and ownership need it).
pub fn is_root() -> bool {
    // Read from /proc: tests need no libc binding for this.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// Fails the test with a clear message unless root: CI runs as root, and a
/// skipped test would prove nothing.
#[track_caller]
pub fn require_root() {
    assert!(is_root(), "this test needs root (bare repositories, file owners); run the suite as root as CI does");
}

fn write(p: &Path, data: &[u8], mode: u32) {
    fs::write(p, data).expect("writing fixture file");
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).expect("chmod fixture file");
}

fn setxattr(p: &Path, k: &str, v: &str) {
    sh("setfattr", &["-h", "-n", k, "-v", v, p.to_str().expect("utf-8 path")]).ok();
}

/// Builds a tree with every kind of entry a commit must handle. With
/// `owners`, some entries get non-root owners (needs root).
pub fn fixture_tree(root: &Path, owners: bool) {
    fs::create_dir_all(root.join("usr/bin")).expect("mkdir");
    fs::create_dir_all(root.join("usr/lib/modules/6.1.0-test")).expect("mkdir");
    fs::create_dir_all(root.join("etc/ssh")).expect("mkdir");
    fs::create_dir_all(root.join("var/empty")).expect("mkdir");
    fs::create_dir_all(root.join("usr/share/d\u{e9}j\u{e0} vu")).expect("mkdir");
    write(&root.join("usr/bin/tool"), b"#!/bin/sh\necho tool\n", 0o755);
    write(&root.join("usr/bin/su"), b"setuid binary", 0o4755);
    write(&root.join("usr/bin/sgid"), b"setgid binary", 0o2711);
    write(&root.join("etc/os-release"), b"NAME=Sample\nID=sample\nPRETTY_NAME=\"Sample OS\"\n", 0o644);
    write(&root.join("etc/ssh/key"), b"secret", 0o600);
    write(&root.join("etc/empty-file"), b"", 0o644);
    write(&root.join("usr/lib/modules/6.1.0-test/vmlinuz"), &vec![0x5au8; 200_000], 0o644);
    write(&root.join("usr/share/d\u{e9}j\u{e0} vu/caf\u{e9}.txt"), "\u{e9}t\u{e9}\n".as_bytes(), 0o644);
    fs::set_permissions(root.join("var/empty"), fs::Permissions::from_mode(0o1777)).expect("chmod");
    fs::set_permissions(root.join("etc/ssh"), fs::Permissions::from_mode(0o700)).expect("chmod");
    symlink("tool", root.join("usr/bin/relative-link")).expect("symlink");
    symlink("/etc/os-release", root.join("usr/bin/absolute-link")).expect("symlink");
    symlink("does/not/exist", root.join("usr/bin/dangling")).expect("symlink");
    fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool-hardlink")).expect("hardlink");
    setxattr(&root.join("usr/bin/tool"), "user.checksum", "abc");
    setxattr(&root.join("etc"), "user.dir-attr", "on a directory");
    // An empty value: OSTree leaves it out of the object.
    sh("setfattr", &["-n", "user.empty", root.join("etc/os-release").to_str().expect("utf-8")]).ok();
    if owners {
        sh("chown", &["-h", "1234:5678", root.join("etc/ssh/key").to_str().expect("utf-8")]).ok();
        sh("chown", &["-h", "42:43", root.join("usr/bin/relative-link").to_str().expect("utf-8")]).ok();
        sh("chown", &["-h", "1000:1000", root.join("var/empty").to_str().expect("utf-8")]).ok();
    }
}

/// A recursive description of a tree (type, mode, owner, xattrs, content
/// hash or link target) for comparing checkouts; `user_mode` leaves owners out.
pub fn describe_tree(root: &Path, with_owner: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let p = root.join(&rel);
        let listing = sh("stat", &["-c", "%F|%a|%u|%g", p.to_str().expect("utf-8")]).ok();
        let mut parts: Vec<&str> = listing.split('|').collect();
        if !with_owner {
            parts.truncate(2);
        }
        let xattrs = sh("getfattr", &["-h", "-d", "-m", "-", "--absolute-names", p.to_str().expect("utf-8")]).ok();
        // Empty values are not stored by OSTree (or us): leave them out.
        let xattrs: Vec<&str> =
            xattrs.lines().filter(|l| !l.starts_with('#') && !l.is_empty() && !l.ends_with("=\"\"")).collect();
        let meta = fs::symlink_metadata(&p).expect("lstat");
        let detail = if meta.file_type().is_symlink() {
            fs::read_link(&p).expect("readlink").display().to_string()
        } else if meta.is_file() {
            let data = fs::read(&p).expect("read");
            format!("{} bytes {:016x}", data.len(), fnv(&data))
        } else {
            let mut names: Vec<_> = fs::read_dir(&p).expect("readdir").map(|e| e.expect("entry").file_name()).collect();
            names.sort();
            for n in names {
                stack.push(rel.join(n));
            }
            String::new()
        };
        out.push(format!("/{} {} [{}] {}", rel.display(), parts.join(" "), xattrs.join(","), detail));
    }
    out.sort();
    out
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
}

/// Every loose object file below `repo/objects`, relative names.
pub fn object_files(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in fs::read_dir(repo.join("objects")).expect("objects dir") {
        let d = d.expect("entry").path();
        if d.is_dir() {
            for f in fs::read_dir(&d).expect("object subdir") {
                out.push(f.expect("entry").path());
            }
        }
    }
    out.sort();
    out
}

/// Runs our binary under strace with `pre` then `args`, killed (SIGKILL)
/// at the `n`-th call of `syscall`. True if the kill happened (false: the
/// command finished first).
pub fn run_killed(pre: &[&str], syscall: &str, n: usize, args: &[&str]) -> bool {
    use std::os::unix::process::ExitStatusExt;
    let status = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", &format!("inject={syscall}:signal=KILL:when={n}")])
        .arg(bin())
        .args(pre)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("strace runs (CI installs it)");
    if status.success() {
        return false;
    }
    assert_eq!(
        status.signal().or(status.code().map(|c| c - 128)),
        Some(9),
        "{syscall}#{n}: failed without being killed: {status:?}"
    );
    true
}

/// `cp -a FROM TO`, replacing TO (clearing immutable flags first).
pub fn copy_tree(from: &Path, to: &Path) {
    if to.exists() {
        let _ = Command::new("chattr").args(["-R", "-i"]).arg(to).stderr(Stdio::null()).status();
        let _ = fs::remove_dir_all(to);
    }
    sh("cp", &["-a", from.to_str().expect("utf-8"), to.to_str().expect("utf-8")]).ok();
}

/// A build repository (archive) with the sample OS in versions 1.0 and 2.0
/// on `os/stable` (timestamps 100 and 200).
pub struct Build {
    pub repo: PathBuf,
    pub v1: String,
    pub v2: String,
}

/// Makes a [`Build`] in `s/build`.
pub fn build(s: &Scratch) -> Build {
    let repo = s.join("build");
    pur(&repo, ["repo", "init", "--mode", "archive"]).ok();
    let mut commits = Vec::new();
    for (v, ts) in [("1.0", "100"), ("2.0", "200")] {
        let tree = s.join(format!("tree-{v}"));
        sh(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sample-os.sh"), &[tree.to_str().expect("utf-8"), v]).ok();
        let t = tree.to_str().expect("utf-8");
        commits.push(pur(&repo, ["repo", "commit", "-b", "os/stable", "--version", v, "--timestamp", ts, t]).ok());
    }
    Build { repo, v2: commits.pop().expect("v2"), v1: commits.pop().expect("v1") }
}
