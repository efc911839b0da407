//! The mounts that turn a deployment directory into a root for
//! `switch_root`, and the checks made before the first of them.
//!
//! Sequence (as `ostree-prepare-root` does it for a writable sysroot
//! without composefs):
//!
//! 1. `DEPLOY` bound onto itself, so it is a mount point;
//! 2. `SYSROOT/ostree/deploy/OS/var` bound onto `DEPLOY/var`;
//! 3. `DEPLOY/usr` bound onto itself and remounted read-only;
//! 4. SYSROOT bound onto `DEPLOY/sysroot` (not recursively: the physical
//!    root only, so the deployment's own mounts do not appear in it);
//! 5. `RUN/ostree-booted` created, empty.
//!
//! `/etc` is the deployment's own directory and stays writable. If a step
//! fails, the mounts already made are undone, newest first, and the marker
//! removed: the caller sees either a prepared deployment or the sysroot as
//! it was.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, StatVfsMountFlags};
use rustix::io::Errno;
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

use crate::deployment::Deployment;
use crate::error::{Error, io};
use crate::mountinfo;

/// The marker OSTree tools test to know they run on a booted deployment
/// (`ostree admin status`, `rpm-ostree`, and us).
pub const OSTREE_BOOTED: &str = "ostree-booted";

/// Refuses, before anything is mounted, what would make the sequence fail
/// halfway, stack mounts or boot a broken system: a deployment already
/// mounted (a second run), a boot already prepared, a missing directory, a
/// read-only physical root.
pub fn preflight(dep: &Deployment, run: &Path) -> Result<(), Error> {
    let mounts = mountinfo::read()?;
    if let Some(m) = mountinfo::first_at_or_below(&mounts, &dep.path) {
        return Err(Error::AlreadyMounted { mount_point: m.mount_point.clone() });
    }
    let sysroot_flags = rustix::fs::statvfs(&dep.sysroot)
        .map_err(|e| Error::StatSysroot { path: dep.sysroot.clone(), source: io(e) })?
        .f_flag;
    if sysroot_flags.contains(StatVfsMountFlags::RDONLY) {
        return Err(Error::ReadOnlySysroot { path: dep.sysroot.clone() });
    }
    require_dir("run directory", run)?;
    let marker = run.join(OSTREE_BOOTED);
    match rustix::fs::statat(CWD, &marker, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => return Err(Error::AlreadyBooted { path: marker }),
        Err(Errno::NOENT) => {}
        Err(e) => return Err(Error::WriteMarker { path: marker, source: io(e) }),
    }
    require_dir("stateroot /var", &dep.stateroot_var())?;
    for (what, sub) in [("deployment /var", "var"), ("deployment /usr", "usr"), ("deployment /sysroot", "sysroot")] {
        require_dir(what, &dep.path.join(sub))?;
    }
    Ok(())
}

/// `path` must be a directory itself, not a symlink to one.
fn require_dir(what: &'static str, path: &Path) -> Result<(), Error> {
    let stat = rustix::fs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| Error::MissingDirectory {
        what,
        path: path.to_owned(),
        source: io(e),
    })?;
    let found = match FileType::from_raw_mode(stat.st_mode) {
        FileType::Directory => return Ok(()),
        FileType::Symlink => "a symlink",
        FileType::RegularFile => "a file",
        _ => "a special file",
    };
    Err(Error::NotADirectoryEntry { what, path: path.to_owned(), found })
}

/// Runs the mount sequence and writes the marker. On failure everything
/// done so far is undone.
pub fn mount_all(dep: &Deployment, run: &Path) -> Result<Prepared, Error> {
    // As ostree-prepare-root does: with shared propagation (systemd makes
    // `/` shared) our binds would propagate to peers, back into the
    // sysroot mount, and `mount --move` of the result would fail.
    rustix::mount::mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        .map_err(|e| Error::MakePrivate { path: "/".into(), source: io(e) })?;

    let mut prepared = Prepared { mounts: Vec::new(), marker: None };
    match prepared.run(dep, run) {
        Ok(()) => Ok(prepared),
        Err(e) => Err(prepared.undo(e)),
    }
}

/// What [`mount_all`] made, so that it can be undone if a later step
/// (printing the path) fails.
#[derive(Debug)]
#[must_use = "undo() it if a later step fails"]
pub struct Prepared {
    /// Mount points, oldest first.
    mounts: Vec<PathBuf>,
    /// The marker, once created.
    marker: Option<PathBuf>,
}

impl Prepared {
    fn run(&mut self, dep: &Deployment, run: &Path) -> Result<(), Error> {
        let deploy = &dep.path;
        self.bind(deploy, deploy)?;
        self.bind(&dep.stateroot_var(), &deploy.join("var"))?;
        let usr = deploy.join("usr");
        self.bind(&usr, &usr)?;
        remount_read_only(&usr)?;
        self.bind(&dep.sysroot, &deploy.join("sysroot"))?;

        let marker = run.join(OSTREE_BOOTED);
        // create_new: O_EXCL, which also refuses to follow a symlink.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&marker)
            .map_err(|source| Error::WriteMarker { path: marker.clone(), source })?;
        self.marker = Some(marker);
        Ok(())
    }

    fn bind(&mut self, source: &Path, target: &Path) -> Result<(), Error> {
        rustix::mount::mount_bind(source, target).map_err(|e| Error::Mount {
            step: "bind-mount",
            source_path: source.to_owned(),
            target: target.to_owned(),
            source: io(e),
        })?;
        self.mounts.push(target.to_owned());
        Ok(())
    }

    /// Removes the marker and unmounts everything, newest first; returns
    /// `error` (wrapped if undoing failed too).
    pub fn undo(self, error: Error) -> Error {
        if let Some(marker) = &self.marker {
            // A marker we could not remove is harmless next to the error we
            // report: the initramfs drops to a shell and /run dies with it.
            let _ = std::fs::remove_file(marker);
        }
        for mount_point in self.mounts.iter().rev() {
            if let Err(e) = rustix::mount::unmount(mount_point, UnmountFlags::DETACH) {
                return Error::Undo { error: Box::new(error), mount_point: mount_point.clone(), undo: io(e) };
            }
        }
        error
    }
}

/// `mount -o remount,bind,ro PATH`, keeping the mount's other per-mount
/// flags (a bind remount sets them all; dropping `nosuid` would loosen
/// the mount, and is refused in a user namespace).
fn remount_read_only(path: &Path) -> Result<(), Error> {
    let fail = |e: io::Error| Error::Mount {
        step: "remount read-only",
        source_path: path.to_owned(),
        target: path.to_owned(),
        source: e,
    };
    let current = rustix::fs::statvfs(path).map_err(|e| fail(io(e)))?.f_flag;
    let mut flags = MountFlags::BIND | MountFlags::RDONLY;
    for (have, keep) in [
        (StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
        (StatVfsMountFlags::NODEV, MountFlags::NODEV),
        (StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
        (StatVfsMountFlags::NOATIME, MountFlags::NOATIME),
        (StatVfsMountFlags::NODIRATIME, MountFlags::NODIRATIME),
        (StatVfsMountFlags::RELATIME, MountFlags::RELATIME),
    ] {
        if current.contains(have) {
            flags |= keep;
        }
    }
    rustix::mount::mount_remount(path, flags, "").map_err(|e| fail(io(e)))
}
