//! The one error type of a run. Each variant names the path it is about;
//! the cause (an errno, a parse error) is kept as the source, and `main`
//! prints the chain on one line.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::cmdline::CmdlineError;
use crate::mountinfo;

/// Why the root could not be prepared.
#[derive(Debug, Error)]
pub enum Error {
    /// The kernel command line file could not be read.
    #[error("cannot read the kernel command line {}", path.display())]
    ReadCmdline {
        /// The file (`/proc/cmdline` or `--cmdline`).
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The command line names no single deployment.
    #[error(transparent)]
    Cmdline(#[from] CmdlineError),
    /// SYSROOT is not an accessible directory.
    #[error("cannot open the sysroot {}", path.display())]
    OpenSysroot {
        /// SYSROOT as given.
        path: PathBuf,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// `/proc/self/fd` did not give the path of an open directory.
    #[error("cannot find the path of {what} (is /proc mounted?)")]
    FdPath {
        /// What the descriptor is.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The `ostree=` bootlink does not resolve beneath SYSROOT.
    #[error("ostree={target}: cannot resolve it beneath {}{hint}", sysroot.display())]
    Resolve {
        /// The `ostree=` value.
        target: String,
        /// SYSROOT (canonical).
        sysroot: PathBuf,
        /// What the errno most likely means here.
        hint: &'static str,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// The bootlink resolves to something that is not a directory.
    #[error("ostree={target}: resolves to {}, which is not a directory", resolved.display())]
    NotADirectory {
        /// The `ostree=` value.
        target: String,
        /// Where it led.
        resolved: PathBuf,
    },
    /// The bootlink resolves to a directory that is not a deployment.
    #[error(
        "ostree={target}: resolves to {}, {reason} (a deployment is SYSROOT/ostree/deploy/OS/deploy/CHECKSUM.SERIAL)",
        resolved.display()
    )]
    NotADeployment {
        /// The `ostree=` value.
        target: String,
        /// Where it led.
        resolved: PathBuf,
        /// Why that is not a deployment.
        reason: &'static str,
    },
    /// `/proc/self/mountinfo` could not be read.
    #[error(transparent)]
    Mountinfo(#[from] mountinfo::ReadError),
    /// Something is already mounted on or below the deployment: a second
    /// run, or a half-finished earlier one.
    #[error(
        "{} is already a mount point (the deployment is already prepared; refusing to stack mounts)",
        mount_point.display()
    )]
    AlreadyMounted {
        /// The mount point found on or below the deployment.
        mount_point: PathBuf,
    },
    /// The ostree-booted marker exists: this boot was already prepared.
    #[error("{} exists: this system is already booted into a deployment", path.display())]
    AlreadyBooted {
        /// The marker.
        path: PathBuf,
    },
    /// The physical root is mounted read-only: `/etc` and `/var` live on
    /// it and would be read-only too.
    #[error(
        "the sysroot {} is mounted read-only, so /etc and /var would be too (add rw to the kernel command line, or remount it read-write first)",
        path.display()
    )]
    ReadOnlySysroot {
        /// SYSROOT (canonical).
        path: PathBuf,
    },
    /// SYSROOT's mount flags could not be read.
    #[error("cannot statvfs the sysroot {}", path.display())]
    StatSysroot {
        /// SYSROOT (canonical).
        path: PathBuf,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// A directory the mounts need cannot be found.
    #[error("cannot find {what} {}", path.display())]
    MissingDirectory {
        /// Which directory (`stateroot /var`, `deployment /usr`, ...).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// A directory the mounts need is something else (a symlink could
    /// point anywhere, so it is refused too).
    #[error("{what} {} is {found}, not a directory", path.display())]
    NotADirectoryEntry {
        /// Which directory (`stateroot /var`, `deployment /usr`, ...).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What it is instead (`a symlink`, `a file`).
        found: &'static str,
    },
    /// Changing mount propagation failed.
    #[error("cannot make the mounts under {} private", path.display())]
    MakePrivate {
        /// The mount point.
        path: PathBuf,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// A mount step failed; the mounts made before it were undone.
    #[error("cannot {step} {} onto {}", source_path.display(), target.display())]
    Mount {
        /// The step (`bind-mount`, `remount read-only`).
        step: &'static str,
        /// What was to be mounted.
        source_path: PathBuf,
        /// Where.
        target: PathBuf,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// The ostree-booted marker could not be written.
    #[error("cannot write {}", path.display())]
    WriteMarker {
        /// The marker.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The deployment path could not be printed.
    #[error("cannot write the deployment path to stdout")]
    Stdout(#[source] io::Error),
    /// A step failed, and undoing the mounts made before it failed too;
    /// the step's error is the source.
    #[error("cannot unmount {} ({undo}) after a failed step", mount_point.display())]
    Undo {
        /// The step that failed.
        #[source]
        error: Box<Error>,
        /// The mount that could not be undone.
        mount_point: PathBuf,
        /// Why.
        undo: io::Error,
    },
}

/// Turns a rustix errno into an `io::Error` (whose message is strerror's).
pub(crate) fn io(errno: rustix::io::Errno) -> io::Error {
    io::Error::from(errno)
}
