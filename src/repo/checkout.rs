//! `repo checkout`: materialise a tree.
//!
//! Everything is created relative to directory handles with `O_EXCL` and
//! `O_NOFOLLOW`; names come only from validated dirtrees, so a hostile tree
//! can neither escape DEST nor make us follow a symlink it planted.
//! Directories are created private (0700) and get their final mode, owner
//! and xattrs after their contents, so read-only directories can be filled.

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use anyhow::{Context, Result, anyhow, bail};
use repo_format::mode::{S_IFMT, S_IFREG, is_symlink};
use repo_format::{Checksum, DirMeta, FileHeader};

use super::tree::PathEntry;
use super::{Repo, RepoMode};
use crate::fsutil::{self, Dir};
use crate::progress::{Progress, Unit};

/// Options of a checkout.
#[derive(Debug, Clone, Default)]
pub struct CheckoutOptions {
    /// Hardlink files from the repository instead of copying.
    pub hardlink: bool,
    /// Do not set owners or xattrs; strip setuid and setgid bits.
    pub user_mode: bool,
    /// Check out only this path of the tree.
    pub subpath: Option<String>,
}

/// What a checkout did.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutStats {
    /// Files and symlinks created.
    pub files: u64,
    /// Of those, created as hardlinks.
    pub hardlinked: u64,
    /// Directories created.
    pub dirs: u64,
}

struct Ctx<'a> {
    repo: &'a Repo,
    opts: &'a CheckoutOptions,
    can_hardlink: bool,
    progress: &'a dyn Progress,
    files: AtomicU64,
    hardlinked: AtomicU64,
    dirs: AtomicU64,
}

impl Ctx<'_> {
    fn stats(&self) -> CheckoutStats {
        CheckoutStats {
            files: self.files.load(Ordering::Relaxed),
            hardlinked: self.hardlinked.load(Ordering::Relaxed),
            dirs: self.dirs.load(Ordering::Relaxed),
        }
    }
}

/// Checks out `commit` (or `opts.subpath` of it) to `dest`, which must not exist.
pub fn checkout(
    repo: &Repo,
    commit: &Checksum,
    dest: &Path,
    opts: &CheckoutOptions,
    progress: &dyn Progress,
) -> Result<CheckoutStats> {
    let can_hardlink = match repo.mode() {
        RepoMode::Bare => !opts.user_mode,
        RepoMode::BareUser | RepoMode::BareUserOnly => opts.user_mode,
        RepoMode::Archive => false,
    };
    if opts.hardlink && !can_hardlink {
        bail!(match repo.mode() {
            RepoMode::Archive =>
                "--hardlink needs a bare repository; archive objects are compressed (drop --hardlink to copy)",
            RepoMode::Bare => "--hardlink from a bare repository keeps real owners; drop --user-mode",
            _ =>
                "--hardlink from a bare-user repository needs --user-mode (object files are owned by the repository user)",
        });
    }
    let c = repo.load_commit(commit)?;
    let (parent_path, leaf) = split_dest(dest)?;
    let parent = Dir::open(parent_path).with_context(|| format!("opening {}", parent_path.display()))?;
    if parent.stat_optional(leaf)?.is_some() {
        bail!("{} already exists; check out to a new path", dest.display());
    }
    let ctx = Ctx {
        repo,
        opts,
        can_hardlink: opts.hardlink && can_hardlink,
        progress,
        files: AtomicU64::new(0),
        hardlinked: AtomicU64::new(0),
        dirs: AtomicU64::new(0),
    };

    // Find the subtree (or single file) to check out.
    let (tree, meta) = match opts.subpath.as_deref() {
        None => (c.root_tree, c.root_meta),
        Some(sub) => match repo.lookup_path(commit, sub)? {
            Some(PathEntry::Dir { tree, meta }) => (tree, meta),
            Some(PathEntry::File(f)) => {
                progress.start("checkout", Unit::Files, Some(1));
                ctx.file(&parent, leaf, &f)?;
                progress.finish();
                parent.fsync()?;
                return Ok(ctx.stats());
            }
            None => bail!("{sub}: no such path in commit {commit}"),
        },
    };
    progress.start("checkout", Unit::Files, None);
    ctx.dir(&parent, leaf, &tree, &meta).with_context(|| format!("checking out to {}", dest.display()))?;
    progress.finish();
    parent.fsync()?;
    Ok(ctx.stats())
}

fn split_dest(dest: &Path) -> Result<(&Path, &Path)> {
    let leaf = dest.file_name().ok_or_else(|| anyhow!("{}: destination needs a final name", dest.display()))?;
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((parent, Path::new(leaf)))
}

impl Ctx<'_> {
    /// Subdirectories are checked out in parallel: creating directories is
    /// most of a hardlink checkout's time (ext4 inode allocation), and
    /// different parents do not contend.
    fn dir(&self, parent: &Dir, name: &Path, tree: &Checksum, meta: &Checksum) -> Result<()> {
        let dt = self.repo.load_dirtree(tree)?;
        let dm = self.repo.load_dirmeta(meta)?;
        parent.create_dir(name, 0o700).with_context(|| format!("creating {}", parent.display(name).display()))?;
        let d = parent.open_dir(name)?;
        self.dirs.fetch_add(1, Ordering::Relaxed);
        for f in dt.files() {
            self.file(&d, Path::new(f.name.as_str()), &f.checksum)
                .with_context(|| d.display(f.name.as_str()).display().to_string())?;
        }
        dt.dirs().par_iter().try_for_each(|sub| self.dir(&d, Path::new(sub.name.as_str()), &sub.tree, &sub.meta))?;
        self.apply_dir_meta(&d, &dm).with_context(|| format!("setting metadata of {}", d.path().display()))
    }

    fn apply_dir_meta(&self, d: &Dir, dm: &DirMeta) -> Result<()> {
        if !self.opts.user_mode {
            fsutil::fd_chown(d, dm.uid, dm.gid).map_err(needs_user_mode)?;
            for (k, v) in dm.xattrs.iter() {
                fsutil::fd_set_xattr(d, k, v)
                    .with_context(|| format!("setting xattr {}", String::from_utf8_lossy(k)))?;
            }
        }
        fsutil::fd_chmod(d, self.mode_bits(dm.mode))?;
        Ok(())
    }

    fn mode_bits(&self, mode: u32) -> u32 {
        if self.opts.user_mode { mode & 0o1777 } else { mode & 0o7777 }
    }

    fn file(&self, dir: &Dir, name: &Path, checksum: &Checksum) -> Result<()> {
        self.files.fetch_add(1, Ordering::Relaxed);
        self.progress.inc(1);
        if self.can_hardlink && self.try_hardlink(dir, name, checksum)? {
            self.hardlinked.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let mut content = self.repo.open_content(checksum)?;
        let header = content.header.clone();
        if is_symlink(header.mode) {
            dir.symlink(&header.symlink_target, name)?;
            if !self.opts.user_mode {
                dir.chown_nofollow(name, header.uid, header.gid).map_err(needs_user_mode)?;
                for (k, v) in header.xattrs.iter() {
                    dir.set_xattr_nofollow(name, k, v)?;
                }
            }
            return Ok(());
        }
        let mut f = dir.create_file(name, 0o600)?;
        let mut w = io::BufWriter::with_capacity(128 * 1024, &mut f);
        io::copy(content.reader(), &mut w).with_context(|| format!("reading object {checksum}"))?;
        w.flush()?;
        drop(w);
        self.apply_file_meta(&f, &header)
    }

    fn apply_file_meta(&self, f: &std::fs::File, header: &FileHeader) -> Result<()> {
        if !self.opts.user_mode {
            fsutil::fd_chown(f, header.uid, header.gid).map_err(needs_user_mode)?;
            for (k, v) in header.xattrs.iter() {
                fsutil::fd_set_xattr(f, k, v)
                    .with_context(|| format!("setting xattr {}", String::from_utf8_lossy(k)))?;
            }
        }
        // chmod after chown: chown clears setuid bits.
        fsutil::fd_chmod(f, self.mode_bits(header.mode))?;
        Ok(())
    }

    /// Hardlinks the object; false if it must be copied instead (a
    /// bare-user symlink, or the link count is exhausted).
    fn try_hardlink(&self, dir: &Dir, name: &Path, checksum: &Checksum) -> Result<bool> {
        let objects = self.repo.objects_dir();
        let path = self.repo.loose_path(checksum, repo_format::ObjectType::File);
        if self.repo.mode() == RepoMode::BareUser {
            // bare-user stores symlinks as regular files: those are recreated.
            let st = objects.stat(&path).with_context(|| format!("object {checksum}"))?;
            if st.st_mode & S_IFMT == S_IFREG {
                let meta = self.repo.open_content(checksum)?;
                if is_symlink(meta.header.mode) {
                    return Ok(false);
                }
            }
        }
        match objects.hardlink(&path, dir, name) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::MLINK.raw_os_error()) => Ok(false),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => {
                bail!(
                    "cannot hardlink across filesystems: the checkout must be on the repository's filesystem (drop --hardlink to copy)"
                )
            }
            Err(e) if fsutil::is_not_found(&e) => {
                Err(anyhow!(super::ObjectMissing { checksum: *checksum, objtype: repo_format::ObjectType::File }))
            }
            Err(e) => Err(e).with_context(|| format!("hardlinking object {checksum}")),
        }
    }
}

fn needs_user_mode(e: io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::PermissionDenied {
        anyhow!("cannot set file owners without root; use --user-mode")
    } else {
        anyhow::Error::from(e).context("setting owner")
    }
}
