//! `photon-prepare-root`: the initramfs half of booting a deployment.
//!
//! The initramfs mounts the physical root filesystem at SYSROOT (usually
//! `/sysroot`); this program finds the deployment that `ostree=` on the
//! kernel command line names, mounts it as a root (`/var` from the
//! stateroot, `/usr` read-only, the physical root at `/sysroot`), writes
//! `/run/ostree-booted` and prints the deployment's path, so that the
//! initramfs can
//!
//! ```sh
//! exec switch_root "$(photon-prepare-root /sysroot)" /sbin/init
//! ```
//!
//! It mirrors `ostree-prepare-root` (without composefs, with a writable
//! sysroot): modules are [`cmdline`] (the kernel command line),
//! [`deployment`] (resolving the bootlink beneath SYSROOT), [`mountinfo`]
//! and [`setup`] (the checks and the mounts).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod args;
pub mod cmdline;
pub mod deployment;
pub mod error;
pub mod mountinfo;
pub mod setup;

use std::io::Write;
use std::os::unix::ffi::OsStrExt;

pub use error::Error;

/// Prepares the deployment and prints its path, one line, on `out`.
pub fn run(args: &args::Args, out: &mut impl Write) -> Result<(), Error> {
    let text =
        std::fs::read(&args.cmdline).map_err(|source| Error::ReadCmdline { path: args.cmdline.clone(), source })?;
    let target = cmdline::ostree_target(&text)?;
    let dep = deployment::resolve(&args.sysroot, target)?;
    setup::preflight(&dep, &args.run)?;
    let prepared = setup::mount_all(&dep, &args.run)?;

    let mut line = dep.path.as_os_str().as_bytes().to_vec();
    line.push(b'\n');
    match out.write_all(&line).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        // Without the path the caller cannot switch: leave nothing behind.
        Err(e) => Err(prepared.undo(Error::Stdout(e))),
    }
}
