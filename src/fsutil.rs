//! Syscall-level helpers: directory handles, no-follow opens, fsync
//! discipline, atomic renames, xattrs.
//!
//! Everything else in the crate works through [`Dir`], never through paths
//! below a directory it opened: names are resolved one handle at a time with
//! `O_NOFOLLOW`, or with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` for
//! multi-component paths, so a symlink that came from a tree is never
//! followed and nothing is written outside the directory handed in.
//!
//! We use `rustix` rather than `nix` (which the brief names): it has safe
//! wrappers for every call we need, including the xattr family and
//! `openat2`, which `nix` lacks; with it this module needs no `unsafe`.
//! `tempfile` already depends on it.
//!
//! Fsync policy (the one place it is decided): single files that carry state
//! (refs, config, boot entries) are written by [`Dir::write_atomic`]: temp
//! file, `fsync`, `rename`, `fsync` of the directory. Bulk object writes
//! are staged and made durable with one `syncfs` before they are renamed
//! into place (see `repo::write`), as OSTree's staging directories do:
//! an `fsync` per object costs a journal commit each and would dominate
//! commit and pull time.

use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, ResolveFlags, Timespec, Timestamps};

pub use rustix::fs::{FileType, Stat};

/// Read and write permissions for temp files before their final mode is set.
const TEMP_MODE: u32 = 0o600;
/// Prefix of every temp file name we create; cleanup may remove them.
pub const TEMP_PREFIX: &str = ".tmp-";

/// An open directory, plus the path it was opened as (for messages only).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

fn cvt<T>(r: rustix::io::Result<T>) -> io::Result<T> {
    r.map_err(io::Error::from)
}

/// Mode bits from a raw value.
fn mode(bits: u32) -> Mode {
    Mode::from_raw_mode(bits & 0o7777)
}

/// True for `ENOENT`.
pub fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// True for `EEXIST`.
pub fn is_exists(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AlreadyExists
}

/// A random temp name with our prefix.
fn temp_name(tag: &str) -> io::Result<String> {
    let mut buf = [0u8; 8];
    let mut filled = 0;
    while filled < buf.len() {
        filled += cvt(rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()))?;
    }
    Ok(format!("{TEMP_PREFIX}{tag}-{}", hex::encode(buf)))
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Dir {
    /// Opens a directory named by the user (follows symlinks in `path`, as
    /// any command-line tool would).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = cvt(rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()))?;
        Ok(Dir { fd, path: path.to_owned() })
    }

    /// The path this handle was opened as.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path()/name`, for messages.
    pub fn display(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    /// Opens a subdirectory without following symlinks at any component.
    pub fn open_dir(&self, name: impl AsRef<Path>) -> io::Result<Dir> {
        let name = name.as_ref();
        let fd = cvt(rustix::fs::openat2(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        ))?;
        Ok(Dir { fd, path: self.path.join(name) })
    }

    /// As [`Dir::open_dir`], `None` if it does not exist.
    pub fn open_dir_optional(&self, name: impl AsRef<Path>) -> io::Result<Option<Dir>> {
        match self.open_dir(name) {
            Ok(d) => Ok(Some(d)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A second handle on the same directory.
    pub fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir { fd: self.fd.try_clone()?, path: self.path.clone() })
    }

    /// Creates a subdirectory.
    pub fn create_dir(&self, name: impl AsRef<Path>, mode_bits: u32) -> io::Result<()> {
        cvt(rustix::fs::mkdirat(&self.fd, name.as_ref(), mode(mode_bits)))
    }

    /// Creates a subdirectory unless it exists already (as a directory).
    pub fn ensure_dir(&self, name: impl AsRef<Path>, mode_bits: u32) -> io::Result<()> {
        match self.create_dir(name.as_ref(), mode_bits) {
            Err(e) if is_exists(&e) => match FileType::from_raw_mode(self.stat(name.as_ref())?.st_mode) {
                FileType::Directory => Ok(()),
                _ => Err(io::Error::new(io::ErrorKind::AlreadyExists, "exists and is not a directory")),
            },
            r => r,
        }
    }

    /// Creates every missing directory along a relative path (below this one).
    pub fn ensure_dir_all(&self, rel: impl AsRef<Path>, mode_bits: u32) -> io::Result<()> {
        let mut cur = PathBuf::new();
        for c in rel.as_ref().components() {
            cur.push(c);
            self.ensure_dir(&cur, mode_bits)?;
        }
        Ok(())
    }

    /// Opens a file for reading, refusing symlinks.
    pub fn open_file(&self, name: impl AsRef<Path>) -> io::Result<File> {
        let fd = cvt(rustix::fs::openat2(
            &self.fd,
            name.as_ref(),
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        ))?;
        Ok(File::from(fd))
    }

    /// As [`Dir::open_file`], `None` if it does not exist.
    pub fn open_file_optional(&self, name: impl AsRef<Path>) -> io::Result<Option<File>> {
        match self.open_file(name) {
            Ok(f) => Ok(Some(f)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens an existing file for reading and writing (no create, no follow).
    pub fn open_file_rw(&self, name: impl AsRef<Path>) -> io::Result<File> {
        let fd = cvt(rustix::fs::openat2(
            &self.fd,
            name.as_ref(),
            OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        ))?;
        Ok(File::from(fd))
    }

    /// Creates a new file; fails if the name exists (symlinks included).
    pub fn create_file(&self, name: impl AsRef<Path>, mode_bits: u32) -> io::Result<File> {
        let fd = cvt(rustix::fs::openat(
            &self.fd,
            name.as_ref(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY,
            mode(mode_bits),
        ))?;
        Ok(File::from(fd))
    }

    /// Creates a temp file with a fresh name; returns it and its name.
    pub fn create_temp(&self, tag: &str) -> io::Result<(File, String)> {
        loop {
            let name = temp_name(tag)?;
            match self.create_file(&name, TEMP_MODE) {
                Ok(f) => return Ok((f, name)),
                Err(e) if is_exists(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Opens `name` for reading and writing, creating it (mode 0644) if
    /// absent; never follows a symlink. For lock files.
    pub fn create_file_or_open(&self, name: impl AsRef<Path>) -> io::Result<File> {
        let fd = cvt(rustix::fs::openat(
            &self.fd,
            name.as_ref(),
            OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY,
            mode(0o644),
        ))?;
        Ok(File::from(fd))
    }

    /// A fresh temp name (nothing created), for symlinks and directories.
    pub fn temp_name(&self, tag: &str) -> io::Result<String> {
        temp_name(tag)
    }

    /// Writes a whole file atomically and durably: temp file, fsync, rename,
    /// fsync of this directory.
    pub fn write_atomic(&self, name: impl AsRef<Path>, data: &[u8], mode_bits: u32) -> io::Result<()> {
        let (mut f, tmp) = self.create_temp("w")?;
        let r = (|| {
            f.write_all(data)?;
            cvt(rustix::fs::fchmod(&f, mode(mode_bits)))?;
            f.sync_all()?;
            self.rename(&tmp, self, name.as_ref())?;
            self.fsync()
        })();
        if r.is_err() {
            let _ = self.unlink(&tmp);
        }
        r
    }

    /// Creates a symlink `name -> target`.
    pub fn symlink(&self, target: impl AsRef<Path>, name: impl AsRef<Path>) -> io::Result<()> {
        cvt(rustix::fs::symlinkat(target.as_ref(), &self.fd, name.as_ref()))
    }

    /// Reads a symlink's target.
    pub fn read_link(&self, name: impl AsRef<Path>) -> io::Result<Vec<u8>> {
        Ok(cvt(rustix::fs::readlinkat(&self.fd, name.as_ref(), Vec::new()))?.into_bytes())
    }

    /// Hardlinks `self/old` to `to/new` (never following a symlink at `old`).
    pub fn hardlink(&self, old: impl AsRef<Path>, to: &Dir, new: impl AsRef<Path>) -> io::Result<()> {
        cvt(rustix::fs::linkat(&self.fd, old.as_ref(), &to.fd, new.as_ref(), AtFlags::empty()))
    }

    /// Renames `self/old` to `to/new`, replacing `new`.
    pub fn rename(&self, old: impl AsRef<Path>, to: &Dir, new: impl AsRef<Path>) -> io::Result<()> {
        cvt(rustix::fs::renameat(&self.fd, old.as_ref(), &to.fd, new.as_ref()))
    }

    /// Renames without replacing: fails with `EEXIST` if `new` exists.
    pub fn rename_noreplace(&self, old: impl AsRef<Path>, to: &Dir, new: impl AsRef<Path>) -> io::Result<()> {
        cvt(rustix::fs::renameat_with(&self.fd, old.as_ref(), &to.fd, new.as_ref(), RenameFlags::NOREPLACE))
    }

    /// Atomically swaps two names.
    pub fn exchange(&self, a: impl AsRef<Path>, to: &Dir, b: impl AsRef<Path>) -> io::Result<()> {
        cvt(rustix::fs::renameat_with(&self.fd, a.as_ref(), &to.fd, b.as_ref(), RenameFlags::EXCHANGE))
    }

    /// Removes a non-directory.
    pub fn unlink(&self, name: impl AsRef<Path>) -> io::Result<()> {
        cvt(rustix::fs::unlinkat(&self.fd, name.as_ref(), AtFlags::empty()))
    }

    /// Removes an empty directory.
    pub fn rmdir(&self, name: impl AsRef<Path>) -> io::Result<()> {
        cvt(rustix::fs::unlinkat(&self.fd, name.as_ref(), AtFlags::REMOVEDIR))
    }

    /// Removes `name` and everything below it, never following symlinks;
    /// succeeds if it does not exist.
    pub fn remove_all(&self, name: impl AsRef<Path>) -> io::Result<()> {
        let name = name.as_ref();
        let st = match self.stat(name) {
            Ok(st) => st,
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return self.unlink(name);
        }
        let sub = self.open_dir(name)?;
        // An immutable deployment root (chattr +i, as OSTree sets) cannot be
        // emptied until the flag is cleared.
        let _ = clear_immutable(&sub);
        for entry in sub.entries()? {
            let entry = entry?;
            if entry.file_type == FileType::Directory {
                sub.remove_all(&entry.name)?;
            } else {
                match sub.unlink(&entry.name) {
                    Err(e) if is_not_found(&e) => {}
                    r => r?,
                }
            }
        }
        drop(sub);
        match self.rmdir(name) {
            Err(e) if is_not_found(&e) => Ok(()),
            r => r,
        }
    }

    /// `lstat` of an entry.
    pub fn stat(&self, name: impl AsRef<Path>) -> io::Result<Stat> {
        cvt(rustix::fs::statat(&self.fd, name.as_ref(), AtFlags::SYMLINK_NOFOLLOW))
    }

    /// As [`Dir::stat`], `None` if it does not exist.
    pub fn stat_optional(&self, name: impl AsRef<Path>) -> io::Result<Option<Stat>> {
        match self.stat(name) {
            Ok(s) => Ok(Some(s)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `fstat` of the directory itself.
    pub fn stat_self(&self) -> io::Result<Stat> {
        cvt(rustix::fs::fstat(&self.fd))
    }

    /// The entries of this directory except `.` and `..`, in readdir order.
    pub fn entries(&self) -> io::Result<Vec<io::Result<DirEntry>>> {
        let iter = cvt(rustix::fs::Dir::read_from(&self.fd))?;
        Ok(iter
            .filter_map(|e| match e {
                Ok(e) => {
                    let name = e.file_name().to_bytes();
                    if name == b"." || name == b".." {
                        None
                    } else {
                        Some(Ok(DirEntry {
                            name: PathBuf::from(OsStr::from_bytes(name)),
                            file_type: e.file_type(),
                            ino: e.ino(),
                        }))
                    }
                }
                Err(err) => Some(Err(io::Error::from(err))),
            })
            .collect())
    }

    /// Sorted entry names (byte order), for deterministic walks.
    pub fn sorted_entries(&self) -> io::Result<Vec<DirEntry>> {
        let mut v = self.entries()?.into_iter().collect::<io::Result<Vec<_>>>()?;
        v.sort_by(|a, b| a.name.as_os_str().as_bytes().cmp(b.name.as_os_str().as_bytes()));
        Ok(v)
    }

    /// `fsync` of the directory (makes renames and creations in it durable).
    pub fn fsync(&self) -> io::Result<()> {
        cvt(rustix::fs::fsync(&self.fd))
    }

    /// `syncfs` of the filesystem holding this directory.
    pub fn syncfs(&self) -> io::Result<()> {
        cvt(rustix::fs::syncfs(&self.fd))
    }

    /// Free and total bytes on the filesystem holding this directory, as an
    /// unprivileged writer sees them.
    pub fn space(&self) -> io::Result<Space> {
        let s = cvt(rustix::fs::fstatvfs(&self.fd))?;
        Ok(Space {
            available: s.f_bavail.saturating_mul(s.f_frsize),
            total: s.f_blocks.saturating_mul(s.f_frsize),
            inodes_available: s.f_favail,
        })
    }

    /// Sets owner and group of an entry without following a symlink.
    pub fn chown_nofollow(&self, name: impl AsRef<Path>, uid: u32, gid: u32) -> io::Result<()> {
        cvt(rustix::fs::chownat(
            &self.fd,
            name.as_ref(),
            Some(rustix::process::Uid::from_raw(uid)),
            Some(rustix::process::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        ))
    }

    /// Sets an entry's mtime and atime to `secs` without following a symlink.
    pub fn set_times_nofollow(&self, name: impl AsRef<Path>, secs: i64) -> io::Result<()> {
        let t = Timespec { tv_sec: secs, tv_nsec: 0 };
        cvt(rustix::fs::utimensat(
            &self.fd,
            name.as_ref(),
            &Timestamps { last_access: t, last_modification: t },
            AtFlags::SYMLINK_NOFOLLOW,
        ))
    }

    /// Extended attributes of an entry, without following a symlink. Uses
    /// the `/proc/self/fd` path of this handle, as libostree does, because
    /// a symlink cannot be opened to get an fd for `flistxattr`.
    pub fn xattrs_nofollow(&self, name: impl AsRef<Path>) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let p = self.proc_path(name.as_ref());
        read_xattrs(|buf| cvt(rustix::fs::llistxattr(&p, buf)), |n, buf| cvt(rustix::fs::lgetxattr(&p, n, buf)))
    }

    /// Sets one xattr on an entry without following a symlink.
    pub fn set_xattr_nofollow(&self, name: impl AsRef<Path>, key: &[u8], value: &[u8]) -> io::Result<()> {
        let p = self.proc_path(name.as_ref());
        cvt(rustix::fs::lsetxattr(&p, OsStr::from_bytes(key), value, rustix::fs::XattrFlags::empty()))
    }

    /// Takes an exclusive `flock` on this directory without waiting; false if
    /// another process holds it. The lock lives as long as this handle.
    pub fn try_lock_exclusive(&self) -> io::Result<bool> {
        match rustix::fs::flock(&self.fd, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Takes an exclusive `flock`, waiting for other holders.
    pub fn lock_exclusive(&self) -> io::Result<()> {
        cvt(rustix::fs::flock(&self.fd, rustix::fs::FlockOperation::LockExclusive))
    }

    fn proc_path(&self, name: &Path) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd())).join(name)
    }
}

/// One directory entry.
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// Entry name (one component).
    pub name: PathBuf,
    /// Type as reported by readdir (may be `Unknown` on some filesystems).
    pub file_type: FileType,
    /// Inode number.
    pub ino: u64,
}

/// Space on a filesystem.
#[derive(Debug, Clone, Copy)]
pub struct Space {
    /// Bytes an unprivileged writer may still use.
    pub available: u64,
    /// Size of the filesystem.
    pub total: u64,
    /// Inodes an unprivileged writer may still create.
    pub inodes_available: u64,
}

fn read_xattrs(
    list: impl Fn(&mut [u8]) -> io::Result<usize>,
    get: impl Fn(&OsStr, &mut [u8]) -> io::Result<usize>,
) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let unsupported = |e: &io::Error| e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error());
    let names = match grow(|buf| list(buf)) {
        Ok(n) => n,
        Err(e) if unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        match grow(|buf| get(OsStr::from_bytes(name), buf)) {
            Ok(v) => out.push((name.to_vec(), v)),
            // Removed between list and get.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NODATA.raw_os_error()) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Calls `f` with a growing buffer until the result fits (`ERANGE` retry).
fn grow(f: impl Fn(&mut [u8]) -> io::Result<usize>) -> io::Result<Vec<u8>> {
    let mut size = 256;
    loop {
        let mut buf = vec![0u8; size];
        match f(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::RANGE.raw_os_error()) && size < (1 << 22) => {
                size *= 4
            }
            Err(e) => return Err(e),
        }
    }
}

/// Extended attributes of an open file or directory.
pub fn fd_xattrs(fd: impl AsFd) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let fd = fd.as_fd();
    read_xattrs(|buf| cvt(rustix::fs::flistxattr(fd, buf)), |n, buf| cvt(rustix::fs::fgetxattr(fd, n, buf)))
}

/// One xattr of an open file, `None` if absent.
pub fn fd_get_xattr(fd: impl AsFd, key: &str) -> io::Result<Option<Vec<u8>>> {
    let fd = fd.as_fd();
    match grow(|buf| cvt(rustix::fs::fgetxattr(fd, key, buf))) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NODATA.raw_os_error()) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sets one xattr on an open file.
pub fn fd_set_xattr(fd: impl AsFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    cvt(rustix::fs::fsetxattr(fd.as_fd(), OsStr::from_bytes(key), value, rustix::fs::XattrFlags::empty()))
}

/// Takes an exclusive `flock` on an open file, waiting for other holders;
/// released when the file is closed.
pub fn lock_file_exclusive(f: &File) -> io::Result<()> {
    cvt(rustix::fs::flock(f, rustix::fs::FlockOperation::LockExclusive))
}

/// Sets the permission bits of an open file.
pub fn fd_chmod(fd: impl AsFd, mode_bits: u32) -> io::Result<()> {
    cvt(rustix::fs::fchmod(fd.as_fd(), mode(mode_bits)))
}

/// Sets owner and group of an open file.
pub fn fd_chown(fd: impl AsFd, uid: u32, gid: u32) -> io::Result<()> {
    cvt(rustix::fs::fchown(
        fd.as_fd(),
        Some(rustix::process::Uid::from_raw(uid)),
        Some(rustix::process::Gid::from_raw(gid)),
    ))
}

/// Sets mtime and atime of an open file.
pub fn fd_set_times(fd: impl AsFd, secs: i64) -> io::Result<()> {
    let t = Timespec { tv_sec: secs, tv_nsec: 0 };
    cvt(rustix::fs::futimens(fd.as_fd(), &Timestamps { last_access: t, last_modification: t }))
}

/// `fstat` of an open file.
pub fn fd_stat(fd: impl AsFd) -> io::Result<Stat> {
    cvt(rustix::fs::fstat(fd.as_fd()))
}

/// Sets or clears the immutable flag (`chattr +i`) on an open directory or
/// file, as OSTree does on deployment roots.
pub fn set_immutable(fd: impl AsFd, on: bool) -> io::Result<()> {
    let fd = fd.as_fd();
    let flags = cvt(rustix::fs::ioctl_getflags(fd))?;
    let want = if on { flags | rustix::fs::IFlags::IMMUTABLE } else { flags - rustix::fs::IFlags::IMMUTABLE };
    if want == flags {
        return Ok(());
    }
    cvt(rustix::fs::ioctl_setflags(fd, want))
}

fn clear_immutable(d: &Dir) -> io::Result<()> {
    set_immutable(d, false)
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The effective gid of this process.
pub fn egid() -> u32 {
    rustix::process::getegid().as_raw()
}

/// A path component from bytes.
pub fn os_name(name: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(name))
}

/// The bytes of a path component.
pub fn name_bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

/// A C string's bytes as a path.
pub fn cstr_path(c: &CStr) -> &Path {
    os_name(c.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_dir_refuses_symlinks_and_escapes() -> io::Result<()> {
        let t = tempfile::tempdir()?;
        let d = Dir::open(t.path())?;
        d.create_dir("real", 0o755)?;
        d.symlink("real", "link")?;
        d.symlink("/", "root")?;
        assert!(d.open_dir("real").is_ok());
        assert!(d.open_dir("link").is_err());
        assert!(d.open_dir("root").is_err());
        assert!(d.open_dir("real/../..").is_err());
        let real = d.open_dir("real")?;
        real.write_atomic("f", b"x", 0o640)?;
        assert_eq!(real.stat("f")?.st_mode & 0o777, 0o640);
        assert!(d.open_file("link/f").is_err(), "opened through a symlink");
        d.remove_all("real")?;
        assert!(d.stat_optional("real")?.is_none());
        assert!(d.stat_optional("link")?.is_some(), "remove_all followed nothing");
        Ok(())
    }
}
