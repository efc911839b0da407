//! Finding the deployment: the `ostree=` bootlink resolved beneath
//! SYSROOT, checked to be `ostree/deploy/OS/deploy/CHECKSUM.SERIAL`.
//!
//! The bootlinks (`ostree/boot.1 -> boot.1.1`,
//! `ostree/boot.1.1/OS/BOOTCSUM/0 -> ../../../deploy/OS/deploy/CSUM.0`) are
//! symlinks on the root filesystem, which is data, not code we trust to
//! stay inside it. They are followed with `openat2(RESOLVE_IN_ROOT)`: an
//! absolute link or a `..` chain is resolved as if SYSROOT were `/`, so it
//! can name nothing outside SYSROOT, and the layout check then refuses
//! whatever is not a deployment directory.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{Error, io};

/// Bounded retries of `openat2` when the kernel reports that a rename or
/// mount raced with the lookup (`EAGAIN`, documented for RESOLVE_IN_ROOT).
const OPENAT2_EAGAIN_RETRIES: usize = 8;

/// Length of a deployment checksum in hex (SHA-256).
const CHECKSUM_HEX_LEN: usize = 64;

/// A deployment directory found beneath a sysroot. Paths are canonical
/// (no symlinks, no `..`), as the kernel reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// The physical root filesystem (SYSROOT, canonical).
    pub sysroot: PathBuf,
    /// `SYSROOT/ostree/deploy/OS/deploy/CHECKSUM.SERIAL`.
    pub path: PathBuf,
    /// OS, the stateroot: deployments of one OS share its `/var`.
    pub stateroot: OsString,
}

impl Deployment {
    /// `SYSROOT/ostree/deploy/OS/var`, the stateroot's shared `/var`.
    pub fn stateroot_var(&self) -> PathBuf {
        self.sysroot.join("ostree/deploy").join(&self.stateroot).join("var")
    }
}

/// Opens SYSROOT and resolves the `ostree=` value `target` beneath it.
pub fn resolve(sysroot: &Path, target: &[u8]) -> Result<Deployment, Error> {
    let sysroot_fd = rustix::fs::open(sysroot, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::OpenSysroot { path: sysroot.to_owned(), source: io(e) })?;
    let sysroot_path = fd_path(&sysroot_fd, "the sysroot")?;
    let target_text = String::from_utf8_lossy(target).into_owned();

    let fd = open_in_root(&sysroot_fd, target).map_err(|e| Error::Resolve {
        target: target_text.clone(),
        sysroot: sysroot_path.clone(),
        hint: resolve_hint(e),
        source: io(e),
    })?;
    let resolved = fd_path(&fd, "the deployment")?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| Error::Resolve {
        target: target_text.clone(),
        sysroot: sysroot_path.clone(),
        hint: "",
        source: io(e),
    })?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
        return Err(Error::NotADirectory { target: target_text, resolved });
    }
    let not_a_deployment =
        |reason| Error::NotADeployment { target: target_text.clone(), resolved: resolved.clone(), reason };
    let stateroot = deployment_layout(&sysroot_path, &resolved).map_err(not_a_deployment)?;

    // The path came from /proc and is used for the mounts: make sure it
    // still names the directory we resolved (not a "(deleted)" name, not
    // something renamed in between).
    let by_path = rustix::fs::statat(CWD, &resolved, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|_| not_a_deployment("which cannot be found again by that path"))?;
    if (by_path.st_dev, by_path.st_ino) != (stat.st_dev, stat.st_ino) {
        return Err(not_a_deployment("which is not the directory the bootlink leads to"));
    }
    Ok(Deployment { sysroot: sysroot_path, path: resolved, stateroot })
}

/// `openat2(dirfd, target, O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`.
fn open_in_root(root: &OwnedFd, target: &[u8]) -> Result<OwnedFd, Errno> {
    // Relative to the root; "" would be ENOENT, "." is SYSROOT itself.
    let rel = match target.iter().position(|&b| b != b'/') {
        Some(start) => OsStr::from_bytes(&target[start..]),
        None => OsStr::new("."),
    };
    let flags = OFlags::PATH | OFlags::CLOEXEC;
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(root.as_fd(), rel, flags, Mode::empty(), resolve) {
            Err(Errno::AGAIN) if tries < OPENAT2_EAGAIN_RETRIES => tries += 1,
            other => return other,
        }
    }
}

/// A few words on what an errno from the lookup means.
fn resolve_hint(e: Errno) -> &'static str {
    match e {
        Errno::NOENT => " (a bootlink or the deployment is missing)",
        Errno::NOTDIR => " (a path component is not a directory)",
        Errno::NOSYS => " (openat2 needs Linux 5.6 or later)",
        Errno::XDEV => " (the path leaves the sysroot)",
        _ => "",
    }
}

/// The path of an open file descriptor, from `/proc/self/fd`.
fn fd_path(fd: &OwnedFd, what: &'static str) -> Result<PathBuf, Error> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(|source| Error::FdPath { what, source })
}

/// Checks that `resolved` is `sysroot/ostree/deploy/OS/deploy/CHECKSUM.SERIAL`
/// and returns OS.
fn deployment_layout(sysroot: &Path, resolved: &Path) -> Result<OsString, &'static str> {
    let rel = resolved.strip_prefix(sysroot).map_err(|_| "which is outside the sysroot")?;
    let parts: Vec<&OsStr> = rel
        .components()
        .map(|c| match c {
            Component::Normal(name) => Ok(name),
            _ => Err("which is not a plain path"),
        })
        .collect::<Result<_, _>>()?;
    match parts.as_slice() {
        [ostree, deploy, os, deploy2, name] if *ostree == "ostree" && *deploy == "deploy" && *deploy2 == "deploy" => {
            if !is_deployment_name(name.as_bytes()) {
                return Err("whose name is not CHECKSUM.SERIAL");
            }
            Ok(os.to_os_string())
        }
        _ => Err("which is not a deployment directory"),
    }
}

/// `CHECKSUM.SERIAL`: 64 lowercase hex digits, a dot, a decimal serial.
fn is_deployment_name(name: &[u8]) -> bool {
    let Some((csum, serial)) = name.split_at_checked(CHECKSUM_HEX_LEN) else {
        return false;
    };
    let Some(serial) = serial.strip_prefix(b".") else {
        return false;
    };
    csum.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && !serial.is_empty()
        && serial.len() <= 10
        && serial.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSUM: &str = "c7ed75e837255175cd215f2166ee652fdd4b3eb269cc13826d39a77e988530e4";

    #[test]
    fn layout() {
        let ok = format!("/sysroot/ostree/deploy/photon/deploy/{CSUM}.0");
        assert_eq!(deployment_layout(Path::new("/sysroot"), Path::new(&ok)), Ok(OsString::from("photon")));
        let at_root = format!("/ostree/deploy/os/deploy/{CSUM}.12");
        assert_eq!(deployment_layout(Path::new("/"), Path::new(&at_root)), Ok(OsString::from("os")));

        let cases: &[(&str, &str)] = &[
            ("/sysroot", "which is not a deployment directory"),
            ("/sysroot/etc", "which is not a deployment directory"),
            ("/sysroot/ostree/deploy/photon/deploy", "which is not a deployment directory"),
            ("/sysroot/ostree/deploy/photon/var", "which is not a deployment directory"),
            ("/other/ostree/deploy/photon/deploy/x", "which is outside the sysroot"),
            ("/sysroot/ostree/deploy/photon/deploy/abc.0", "whose name is not CHECKSUM.SERIAL"),
        ];
        for (resolved, want) in cases {
            assert_eq!(deployment_layout(Path::new("/sysroot"), Path::new(resolved)), Err(*want), "{resolved}");
        }
        let deeper = format!("/sysroot/ostree/deploy/photon/deploy/{CSUM}.0/usr");
        assert_eq!(
            deployment_layout(Path::new("/sysroot"), Path::new(&deeper)),
            Err("which is not a deployment directory")
        );
        let wrong = format!("/sysroot/ostree/repo/photon/deploy/{CSUM}.0");
        assert_eq!(
            deployment_layout(Path::new("/sysroot"), Path::new(&wrong)),
            Err("which is not a deployment directory")
        );
    }

    #[test]
    fn names() {
        let cases: &[(String, bool)] = &[
            (format!("{CSUM}.0"), true),
            (format!("{CSUM}.4294967295"), true),
            (CSUM.to_owned(), false),
            (format!("{CSUM}."), false),
            (format!("{CSUM}.x"), false),
            (format!("{CSUM}.-1"), false),
            (format!("{CSUM}.12345678901"), false),
            (format!("{}.0", CSUM.to_uppercase()), false),
            (format!("{}.0", &CSUM[1..]), false),
            (format!("{CSUM}0.0"), false),
            ("".to_owned(), false),
        ];
        for (name, want) in cases {
            assert_eq!(is_deployment_name(name.as_bytes()), *want, "{name}");
        }
    }
}
