//! `repo commit`: turn a directory or a tar archive into objects and a
//! commit, then move the branch.
//!
//! Files are hashed first and written only when their object is new, so
//! committing v2 over v1 compresses only what changed; hashing and
//! compression run on all cores (rayon). Device nodes, FIFOs and sockets
//! are refused, as `ostree commit` refuses them.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek};
use std::path::{Component, Path, PathBuf};
use std::sync::{Condvar, Mutex};

use anyhow::{Context, Result, anyhow, bail};
use rayon::prelude::*;
use repo_format::commit::keys;
use repo_format::mode::{S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};
use repo_format::{
    Checksum, Commit, ContentHasher, DirMeta, DirTree, FileHeader, Metadata, ObjectType, TreeDir, TreeFile, ValidName,
    Value, Xattrs,
};

use super::objects::{OSTREEMETA_XATTR, canonical_xattrs};
use super::refs::RefSpec;
use super::write::{Transaction, TxnStats};
use super::{Repo, RepoMode};
use crate::fsutil::{self, Dir, FileType};
use crate::progress::{Progress, Unit};

/// Bytes of tar content held in memory at once while workers hash and
/// compress (a single larger file is still accepted on its own).
const TAR_INFLIGHT_BYTES: u64 = 256 * 1024 * 1024;
/// Hash read buffer.
const HASH_BUF: usize = 128 * 1024;

/// Where the tree comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A directory.
    Dir(PathBuf),
    /// A tar archive (plain, gzip or zstd, detected from its first bytes);
    /// `None` reads standard input.
    Tar(Option<PathBuf>),
}

impl Source {
    /// Interprets a command-line SOURCE: `-` is a tar on stdin; a path ending
    /// in `.tar`, `.tar.gz`, `.tgz`, `.tar.zst` or `.tzst` is a tar; a
    /// directory is a directory.
    pub fn from_arg(arg: &str) -> Source {
        if arg == "-" {
            return Source::Tar(None);
        }
        let p = PathBuf::from(arg);
        let tarry = [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst"].iter().any(|s| arg.ends_with(s));
        if tarry && !p.is_dir() { Source::Tar(Some(p)) } else { Source::Dir(p) }
    }
}

/// Which parent the new commit gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parent {
    /// The branch's current commit, if the branch exists (as `ostree commit`).
    Branch,
    /// No parent.
    None,
    /// This commit.
    Commit(Checksum),
}

/// Options of a commit.
#[derive(Debug, Clone)]
pub struct CommitOptions {
    /// Branch to move to the new commit.
    pub branch: RefSpec,
    /// Subject line.
    pub subject: String,
    /// Body.
    pub body: String,
    /// `version` metadata.
    pub version: Option<String>,
    /// Extra string metadata.
    pub metadata: Vec<(String, String)>,
    /// Seconds since the epoch.
    pub timestamp: u64,
    /// Parent choice.
    pub parent: Parent,
    /// Force every file and directory to this owner.
    pub owner: Option<(u32, u32)>,
}

/// What a commit produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CommitOutcome {
    /// The new commit.
    pub commit: Checksum,
    /// Its parent.
    pub parent: Option<Checksum>,
    /// Files and symlinks in the tree.
    pub files: u64,
    /// Directories in the tree.
    pub dirs: u64,
    /// What was newly written.
    pub written: TxnStats,
}

/// A directory being built.
#[derive(Default)]
struct BuildDir {
    meta: Option<DirMeta>,
    files: BTreeMap<String, FileRef>,
    dirs: BTreeMap<String, BuildDir>,
}

/// A file entry: its object id once known, or the job that will compute it.
#[derive(Clone, Copy)]
enum FileRef {
    Done(Checksum),
    Job(usize),
}

/// How metadata is adjusted before hashing (owner override, bare-user-only
/// canonical form).
#[derive(Clone, Copy)]
struct Canon {
    owner: Option<(u32, u32)>,
    user_only: bool,
}

impl Canon {
    fn apply(&self, uid: u32, gid: u32, mode: u32, xattrs: Xattrs) -> (u32, u32, u32, Xattrs) {
        if self.user_only {
            // bare-user-only keeps no owner or xattrs and only 0755 bits
            // (OSTree's "canonical permissions").
            let perm = if mode & S_IFMT == S_IFLNK { 0o777 } else { mode & 0o755 };
            return (0, 0, (mode & S_IFMT) | perm, Xattrs::new());
        }
        let (uid, gid) = self.owner.unwrap_or((uid, gid));
        (uid, gid, mode, xattrs)
    }

    fn dirmeta(&self, uid: u32, gid: u32, mode: u32, xattrs: Xattrs) -> DirMeta {
        let (uid, gid, mode, xattrs) = self.apply(uid, gid, S_IFDIR | (mode & 0o7777), xattrs);
        DirMeta { uid, gid, mode, xattrs }
    }
}

fn default_root_meta(canon: &Canon) -> DirMeta {
    canon.dirmeta(0, 0, 0o755, Xattrs::new())
}

/// Commits `source` to `opts.branch` and returns the new commit.
/// `before_ref` runs once the commit is stored and before the branch moves
/// (signing goes there, so the branch never points at an unsigned commit).
pub fn commit(
    repo: &Repo,
    source: &Source,
    opts: &CommitOptions,
    progress: &dyn Progress,
    before_ref: impl FnOnce(&Checksum) -> Result<()>,
) -> Result<CommitOutcome> {
    if opts.branch.remote.is_some() {
        bail!("commit to a local branch, not a remote ref ({})", opts.branch);
    }
    let parent = match opts.parent {
        Parent::None => None,
        Parent::Commit(c) => Some(c),
        Parent::Branch => repo.resolve_ref(&opts.branch)?,
    };
    if let Some(p) = &parent
        && !repo.has_commit(p)?
    {
        bail!("parent commit {p} is not in the repository");
    }
    let canon = Canon { owner: opts.owner, user_only: repo.mode() == RepoMode::BareUserOnly };
    let txn = repo.begin()?;
    let (root, files, dirs) = match source {
        Source::Dir(path) => tree_from_dir(&txn, path, canon, progress)?,
        Source::Tar(path) => tree_from_tar(&txn, path.as_deref(), canon, progress)?,
    };
    let (root_tree, root_meta) = write_tree(&txn, root, &default_root_meta(&canon))?;

    let mut metadata = Metadata::new();
    if let Some(v) = &opts.version {
        metadata.insert(keys::VERSION, Value::new_str(v));
    }
    for (k, v) in &opts.metadata {
        metadata.insert(k.clone(), Value::new_str(v));
    }
    metadata.insert(keys::REF_BINDING, Value::new_strs(&[opts.branch.name.as_str()]));
    let commit = Commit {
        metadata,
        parent,
        related: Vec::new(),
        subject: opts.subject.clone(),
        body: opts.body.clone(),
        timestamp: opts.timestamp,
        root_tree,
        root_meta,
    };
    let checksum = txn.write_metadata(ObjectType::Commit, &commit.to_bytes())?;
    let written = txn.commit()?;
    before_ref(&checksum)?;
    repo.set_ref(&opts.branch, Some(&checksum))?;
    Ok(CommitOutcome { commit: checksum, parent, files, dirs, written })
}

/// Writes dirmeta and dirtree objects bottom-up; returns (tree, meta) ids.
fn write_tree(txn: &Transaction<'_>, dir: BuildDir, default_meta: &DirMeta) -> Result<(Checksum, Checksum)> {
    let meta = dir.meta.unwrap_or_else(|| default_meta.clone());
    let meta_id = txn.write_metadata(ObjectType::DirMeta, &meta.to_bytes())?;
    let mut files = Vec::with_capacity(dir.files.len());
    for (name, f) in dir.files {
        let FileRef::Done(checksum) = f else { return Err(anyhow!("internal: unresolved file {name}")) };
        files.push(TreeFile { name: ValidName::new(name)?, checksum });
    }
    let mut dirs = Vec::with_capacity(dir.dirs.len());
    for (name, sub) in dir.dirs {
        let (tree, meta) = write_tree(txn, sub, default_meta)?;
        dirs.push(TreeDir { name: ValidName::new(name)?, tree, meta });
    }
    let tree = DirTree::new(files, dirs)?;
    let tree_id = txn.write_metadata(ObjectType::DirTree, &tree.to_bytes())?;
    Ok((tree_id, meta_id))
}

fn resolve_jobs(dir: &mut BuildDir, results: &[Checksum]) -> (u64, u64) {
    let mut counts = (0, 1);
    for f in dir.files.values_mut() {
        if let FileRef::Job(i) = *f {
            *f = FileRef::Done(results[i]);
        }
        counts.0 += 1;
    }
    for sub in dir.dirs.values_mut() {
        let (f, d) = resolve_jobs(sub, results);
        counts.0 += f;
        counts.1 += d;
    }
    counts
}

fn name_str(name: &Path, at: &Path) -> Result<String> {
    let s = name
        .to_str()
        .ok_or_else(|| anyhow!("{}: file name is not valid UTF-8; OSTree trees need UTF-8 names", at.display()))?;
    repo_format::name::validate_filename(s.as_bytes()).map_err(|e| anyhow!("{}: {e}", at.display()))?;
    Ok(s.to_owned())
}

fn special_file_error(path: &Path) -> anyhow::Error {
    anyhow!(
        "{}: device nodes, FIFOs and sockets cannot be committed (OSTree trees hold only regular files, symlinks and directories); remove it from the source",
        path.display()
    )
}

/// Xattrs of a source entry as OSTree commits them: without our own
/// `user.ostreemeta`, and without empty values, which libglnx's
/// `read_xattr_name_array` skips (so the ids would differ otherwise).
fn disk_xattrs(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Xattrs> {
    canonical_xattrs(pairs.into_iter().filter(|(k, v)| k != OSTREEMETA_XATTR.as_bytes() && !v.is_empty()).collect())
}

// ---------------------------------------------------------------- directories

/// A file found while walking a directory, processed in parallel later.
struct DirJob {
    rel: PathBuf,
    symlink: bool,
}

fn tree_from_dir(
    txn: &Transaction<'_>,
    path: &Path,
    canon: Canon,
    progress: &dyn Progress,
) -> Result<(BuildDir, u64, u64)> {
    let root = Dir::open(path).with_context(|| format!("opening {}", path.display()))?;
    progress.start("scanning", Unit::Files, None);
    let mut jobs = Vec::new();
    let mut tree = walk_dir(&root, &root, Path::new(""), canon, &mut jobs, progress)?;
    progress.finish();

    progress.start("committing", Unit::Files, Some(jobs.len() as u64));
    // Hardlinked files share one inode: hash each inode once.
    let inode_cache: Mutex<HashMap<(u64, u64), Checksum>> = Mutex::new(HashMap::new());
    let results: Vec<Checksum> = jobs
        .par_iter()
        .map(|job| {
            let r = commit_dir_file(txn, &root, job, canon, &inode_cache)
                .with_context(|| format!("committing {}", root.display(&job.rel).display()));
            progress.inc(1);
            r
        })
        .collect::<Result<_>>()?;
    progress.finish();
    let (files, dirs) = resolve_jobs(&mut tree, &results);
    Ok((tree, files, dirs))
}

fn walk_dir(
    root: &Dir,
    dir: &Dir,
    rel: &Path,
    canon: Canon,
    jobs: &mut Vec<DirJob>,
    progress: &dyn Progress,
) -> Result<BuildDir> {
    let st = dir.stat_self()?;
    let xattrs =
        disk_xattrs(fsutil::fd_xattrs(dir).with_context(|| format!("reading xattrs of {}", dir.path().display()))?)?;
    let mut out =
        BuildDir { meta: Some(canon.dirmeta(st.st_uid, st.st_gid, st.st_mode, xattrs)), ..BuildDir::default() };
    for e in dir.sorted_entries().with_context(|| format!("listing {}", dir.path().display()))? {
        let child_rel = rel.join(&e.name);
        let name = name_str(&e.name, &root.display(&child_rel))?;
        let ft = match e.file_type {
            FileType::Unknown => FileType::from_raw_mode(dir.stat(&e.name)?.st_mode),
            t => t,
        };
        match ft {
            FileType::Directory => {
                let sub =
                    dir.open_dir(&e.name).with_context(|| format!("opening {}", dir.display(&e.name).display()))?;
                out.dirs.insert(name, walk_dir(root, &sub, &child_rel, canon, jobs, progress)?);
            }
            FileType::RegularFile | FileType::Symlink => {
                out.files.insert(name, FileRef::Job(jobs.len()));
                jobs.push(DirJob { rel: child_rel, symlink: ft == FileType::Symlink });
                progress.inc(1);
            }
            _ => return Err(special_file_error(&root.display(&child_rel))),
        }
    }
    Ok(out)
}

fn commit_dir_file(
    txn: &Transaction<'_>,
    root: &Dir,
    job: &DirJob,
    canon: Canon,
    cache: &Mutex<HashMap<(u64, u64), Checksum>>,
) -> Result<Checksum> {
    if job.symlink {
        let target = root.read_link(&job.rel)?;
        let target = String::from_utf8(target).map_err(|_| anyhow!("symlink target is not valid UTF-8"))?;
        let st = root.stat(&job.rel)?;
        let xattrs = disk_xattrs(root.xattrs_nofollow(&job.rel)?)?;
        let (uid, gid, mode, xattrs) = canon.apply(st.st_uid, st.st_gid, S_IFLNK | 0o777, xattrs);
        let header = FileHeader { uid, gid, mode, symlink_target: target, xattrs };
        return txn.write_content(&header, &mut io::empty(), 0, None);
    }
    let mut f = root.open_file(&job.rel)?;
    let st = fsutil::fd_stat(&f)?;
    if st.st_mode & S_IFMT != S_IFREG {
        bail!("changed type while being committed");
    }
    let key = (st.st_dev, st.st_ino);
    if st.st_nlink > 1
        && let Some(c) = cache.lock().map_err(|_| anyhow!("inode cache poisoned"))?.get(&key)
    {
        return Ok(*c);
    }
    let xattrs = disk_xattrs(fsutil::fd_xattrs(&f)?)?;
    let (uid, gid, mode, xattrs) = canon.apply(st.st_uid, st.st_gid, S_IFREG | (st.st_mode & 0o7777), xattrs);
    let header = FileHeader { uid, gid, mode, symlink_target: String::new(), xattrs };
    let size = st.st_size as u64;
    let checksum = hash_reader(&header, &mut f)?;
    if !txn.has(&checksum, ObjectType::File)? {
        f.rewind()?;
        txn.write_content(&header, &mut f, size, Some(&checksum))?;
    }
    if st.st_nlink > 1 {
        cache.lock().map_err(|_| anyhow!("inode cache poisoned"))?.insert(key, checksum);
    }
    Ok(checksum)
}

/// The object id of `header` plus everything `r` yields.
pub fn hash_reader(header: &FileHeader, r: &mut dyn Read) -> Result<Checksum> {
    let mut h = ContentHasher::new(header);
    let mut buf = vec![0u8; HASH_BUF];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

// ---------------------------------------------------------------- tar

/// Opens a tar source, undoing gzip or zstd compression by magic number.
fn open_tar(path: Option<&Path>) -> Result<Box<dyn Read + Send>> {
    let raw: Box<dyn Read + Send> = match path {
        Some(p) => Box::new(File::open(p).with_context(|| format!("opening {}", p.display()))?),
        None => Box::new(io::stdin()),
    };
    let mut r = BufReader::with_capacity(256 * 1024, raw);
    let head = r.fill_buf().context("reading tar archive")?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(r).context("starting zstd decoder")?)
    } else {
        Box::new(r)
    })
}

/// Normalizes a tar member path into validated components; `[]` is the root.
fn tar_components(p: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(name_str(Path::new(n), p)?),
            Component::ParentDir | Component::Prefix(_) => {
                bail!("{}: tar member path leaves the archive root", p.display())
            }
        }
    }
    Ok(out)
}

fn tar_dir<'a>(root: &'a mut BuildDir, comps: &[String], canon: &Canon, at: &Path) -> Result<&'a mut BuildDir> {
    let mut cur = root;
    for c in comps {
        if cur.files.contains_key(c) {
            bail!("{}: a parent directory is also a file in the archive", at.display());
        }
        cur = cur
            .dirs
            .entry(c.clone())
            .or_insert_with(|| BuildDir { meta: Some(default_root_meta(canon)), ..BuildDir::default() });
    }
    Ok(cur)
}

/// Limits how many bytes of file content wait in memory for workers.
struct Budget {
    used: Mutex<u64>,
    freed: Condvar,
}

impl Budget {
    fn take(&self, n: u64) -> Result<()> {
        let mut used = self.used.lock().map_err(|_| anyhow!("budget poisoned"))?;
        while *used > 0 && *used + n > TAR_INFLIGHT_BYTES {
            used = self.freed.wait(used).map_err(|_| anyhow!("budget poisoned"))?;
        }
        *used += n;
        Ok(())
    }
    fn give(&self, n: u64) {
        if let Ok(mut used) = self.used.lock() {
            *used -= n;
        }
        self.freed.notify_all();
    }
}

/// Shared state of one tar import, borrowed by the worker tasks.
struct TarShared<'a> {
    txn: &'a Transaction<'a>,
    progress: &'a dyn Progress,
    results: Mutex<Vec<Option<Checksum>>>,
    first_error: Mutex<Option<anyhow::Error>>,
    budget: Budget,
}

/// A hardlink member: (link path, target path, member name for messages).
type TarLink = (Vec<String>, Vec<String>, PathBuf);

fn tree_from_tar(
    txn: &Transaction<'_>,
    path: Option<&Path>,
    canon: Canon,
    progress: &dyn Progress,
) -> Result<(BuildDir, u64, u64)> {
    let shown = path.map_or_else(|| "standard input".to_owned(), |p| p.display().to_string());
    let mut archive = tar::Archive::new(open_tar(path)?);
    let shared = TarShared {
        txn,
        progress,
        results: Mutex::new(Vec::new()),
        first_error: Mutex::new(None),
        budget: Budget { used: Mutex::new(0), freed: Condvar::new() },
    };
    let mut root = BuildDir::default();
    let mut links: Vec<TarLink> = Vec::new();
    progress.start("committing", Unit::Files, None);
    let mut walk_result = Ok(());
    rayon::scope(|scope| {
        walk_result = tar_walk(&shared, &mut archive, &shown, canon, &mut root, &mut links, scope);
    });
    walk_result?;
    if let Some(e) = shared.first_error.into_inner().map_err(|_| anyhow!("poisoned"))? {
        return Err(e);
    }
    let results: Vec<Checksum> = shared
        .results
        .into_inner()
        .map_err(|_| anyhow!("poisoned"))?
        .into_iter()
        .map(|c| c.ok_or_else(|| anyhow!("internal: a tar member was not committed")))
        .collect::<Result<_>>()?;
    let (mut files, dirs) = resolve_jobs(&mut root, &results);
    for (link, target, member) in links {
        let (tleaf, tparents) =
            target.split_last().ok_or_else(|| anyhow!("{}: hardlink to the root", member.display()))?;
        let tdir = tar_dir(&mut root, tparents, &canon, &member)?;
        let Some(FileRef::Done(c)) = tdir.files.get(tleaf).copied() else {
            bail!("{}: hardlink target {} is not a file earlier in the archive", member.display(), target.join("/"));
        };
        let (leaf, parents) = link.split_last().ok_or_else(|| anyhow!("{}: hardlink at the root", member.display()))?;
        let parent = tar_dir(&mut root, parents, &canon, &member)?;
        parent.dirs.remove(leaf);
        if parent.files.insert(leaf.clone(), FileRef::Done(c)).is_none() {
            files += 1;
        }
    }
    progress.finish();
    Ok((root, files, dirs))
}

fn tar_walk<'a, R: Read>(
    shared: &'a TarShared<'a>,
    archive: &mut tar::Archive<R>,
    shown: &str,
    canon: Canon,
    root: &mut BuildDir,
    links: &mut Vec<TarLink>,
    scope: &rayon::Scope<'a>,
) -> Result<()> {
    let txn = shared.txn;
    for entry in archive.entries().with_context(|| format!("reading tar {shown}"))? {
        if shared.first_error.lock().map_err(|_| anyhow!("poisoned"))?.is_some() {
            break;
        }
        let mut entry = entry.with_context(|| format!("reading tar {shown}"))?;
        let member: PathBuf = entry.path().with_context(|| format!("tar {shown}: bad member path"))?.into_owned();
        let comps = tar_components(&member)?;
        let hdr = entry.header();
        let etype = hdr.entry_type();
        let uid = u32::try_from(hdr.uid()?).map_err(|_| anyhow!("{}: uid out of range", member.display()))?;
        let gid = u32::try_from(hdr.gid()?).map_err(|_| anyhow!("{}: gid out of range", member.display()))?;
        let perm = hdr.mode()? & 0o7777;
        let mut xattr_pairs = Vec::new();
        if let Some(exts) = entry.pax_extensions()? {
            for ext in exts {
                let ext = ext?;
                if let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                    xattr_pairs.push((name.to_vec(), ext.value_bytes().to_vec()));
                }
            }
        }
        let xattrs = disk_xattrs(xattr_pairs).with_context(|| member.display().to_string())?;
        let Some((leaf, parents)) = comps.split_last() else {
            // The archive root itself.
            if etype.is_dir() {
                root.meta = Some(canon.dirmeta(uid, gid, perm, xattrs));
            }
            continue;
        };
        let parent = tar_dir(root, parents, &canon, &member)?;
        match etype {
            tar::EntryType::Directory => {
                if parent.files.remove(leaf).is_some() {
                    bail!("{}: directory replaces a file of the same name", member.display());
                }
                let d = parent.dirs.entry(leaf.clone()).or_default();
                d.meta = Some(canon.dirmeta(uid, gid, perm, xattrs));
            }
            tar::EntryType::Symlink => {
                let target =
                    entry.link_name()?.ok_or_else(|| anyhow!("{}: symlink without target", member.display()))?;
                let target = target
                    .to_str()
                    .ok_or_else(|| anyhow!("{}: symlink target is not UTF-8", member.display()))?
                    .to_owned();
                let (uid, gid, mode, xattrs) = canon.apply(uid, gid, S_IFLNK | 0o777, xattrs);
                let header = FileHeader { uid, gid, mode, symlink_target: target, xattrs };
                let c = txn
                    .write_content(&header, &mut io::empty(), 0, None)
                    .with_context(|| member.display().to_string())?;
                parent.dirs.remove(leaf);
                parent.files.insert(leaf.clone(), FileRef::Done(c));
                shared.progress.inc(1);
            }
            tar::EntryType::Link => {
                let target =
                    entry.link_name()?.ok_or_else(|| anyhow!("{}: hardlink without target", member.display()))?;
                links.push((comps.clone(), tar_components(&target)?, member.clone()));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.size();
                let (uid, gid, mode, xattrs) = canon.apply(uid, gid, S_IFREG | perm, xattrs);
                let header = FileHeader { uid, gid, mode, symlink_target: String::new(), xattrs };
                shared.budget.take(size)?;
                let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                let read = entry.read_to_end(&mut data);
                if let Err(e) = read {
                    shared.budget.give(size);
                    return Err(e).with_context(|| format!("reading {} from {shown}", member.display()));
                }
                if data.len() as u64 != size {
                    shared.budget.give(size);
                    bail!("{}: tar member is truncated", member.display());
                }
                let job = {
                    let mut r = shared.results.lock().map_err(|_| anyhow!("poisoned"))?;
                    r.push(None);
                    r.len() - 1
                };
                parent.dirs.remove(leaf);
                parent.files.insert(leaf.clone(), FileRef::Job(job));
                scope.spawn(move |_| {
                    let r = (|| -> Result<Checksum> {
                        let c = repo_format::file::content_checksum(&header, &data);
                        if !shared.txn.has(&c, ObjectType::File)? {
                            shared.txn.write_content(&header, &mut data.as_slice(), size, Some(&c))?;
                        }
                        Ok(c)
                    })();
                    drop(data);
                    shared.budget.give(size);
                    shared.progress.inc(1);
                    match r {
                        Ok(c) => {
                            if let Ok(mut v) = shared.results.lock() {
                                v[job] = Some(c);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut slot) = shared.first_error.lock() {
                                slot.get_or_insert(e.context(format!("committing {}", member.display())));
                            }
                        }
                    }
                });
            }
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => {}
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                return Err(special_file_error(&member));
            }
            other => bail!(
                "{}: unsupported tar entry type {other:?} (sparse files and the like are not supported)",
                member.display()
            ),
        }
    }
    Ok(())
}
