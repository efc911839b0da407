//! The `/etc` 3-way merge a new deployment gets, and its preview (`etc-diff`).
//!
//! Three trees go in: the running deployment's pristine `usr/etc` (the *old
//! default*), its `etc` as the admin left it (the *old local*), and the new
//! deployment's `usr/etc` (the *new default*). The new `/etc` starts as a copy
//! of the new default; then the local changes, the differences between the
//! old default and the old local tree, are replayed on top. This is OSTree's
//! merge (`merge_configuration_from` in `ostree-sysroot-deploy.c`, see
//! `research/ostree-formats.md` §6), made explicit and reported:
//!
//! - **Local wins, whole entries.** A path added or modified locally is copied
//!   from the old local tree, replacing whatever the new default has there;
//!   there is no line merge. A path deleted locally is removed from the new
//!   `/etc`.
//! - **What "modified" means.** Type, content (bytes, or a symlink's
//!   target), permission bits and owner. Xattrs are not compared, as OSTree
//!   does not compare them (`security.selinux` labels differ between trees);
//!   an entry that is copied brings its xattrs along.
//! - **Directories present locally and in the new default are merged entry by
//!   entry**; their own mode and owner follow the same rule as files
//!   ([`Action::KeepMetadata`]). A directory in any other situation (removed
//!   or turned into a file or symlink on one side) is one entry: if anything
//!   below it changed locally, the whole local directory is kept, otherwise
//!   the new default is taken. Every other entry is one entry, too.
//! - **Conflicts are reported, never fatal**: a path changed locally whose
//!   new default differs from its old one (unless both sides made the same
//!   change), and any local change of type (file, directory, symlink).
//! - The top directory of `/etc` gets the new default's mode, owner and
//!   xattrs; local changes to `/etc` itself are not carried over (OSTree does
//!   not carry them either).
//!
//! [`plan`] computes what [`merge`] does; `merge` computes the same plan,
//! applies exactly it and returns it, so `etc-diff` can show the plan before
//! a deployment is staged and the deployment can report it afterwards.
//! Neither follows a symlink from any tree: names come from `readdir`, are
//! checked with [`repo_format::name::validate_filename`], and are resolved
//! one directory handle at a time with `O_NOFOLLOW` or `RESOLVE_NO_SYMLINKS`
//! ([`crate::fsutil`]), so nothing is written outside the new `/etc`.
//! Device nodes, FIFOs and sockets are refused, as OSTree refuses them.
//! The merge does not sync: the deployment code syncs the filesystem once.
//!
//! # Wire format
//!
//! [`EtcPlan`] is the body of `etc-diff --json` (inside the usual
//! `apiVersion`/`kind` envelope):
//!
//! ```json
//! {"changes": [
//!   {"path": "motd", "action": "take-modified", "conflict": null},
//!   {"path": "ssh/sshd_config", "action": "keep-modified",
//!    "conflict": "changed locally and upstream; the local file is kept"}
//! ]}
//! ```
//!
//! `path` is relative to `/etc`; `action` is one of the [`Action`] names;
//! `conflict` is `null` or one line for the admin. Entries come in path
//! order, compared component by component, so a directory comes right
//! before its contents. Paths left unchanged on both sides are not listed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use repo_format::{Checksum, Hasher};

use crate::fsutil::{self, Dir, FileType, Stat};

/// What the merge will do (or did) to the new `/etc`: the body of
/// `etc-diff --json` and of the merge report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcPlan {
    /// Every path that differs from both untouched trees, in path order.
    pub changes: Vec<EtcChange>,
}

impl EtcPlan {
    /// The changes that need the admin's attention.
    pub fn conflicts(&self) -> impl Iterator<Item = &EtcChange> {
        self.changes.iter().filter(|c| c.conflict.is_some())
    }
}

/// One path the merge acts on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcChange {
    /// Relative to `/etc`, e.g. `ssh/sshd_config`.
    pub path: String,
    /// What happens to it.
    pub action: Action,
    /// Why the admin should look at it, if they should: the path changed
    /// locally and upstream, or changed type locally. The local side wins.
    pub conflict: Option<String>,
}

/// What happens to one path of the new `/etc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Changed locally (content, symlink target, type, mode or owner, or,
    /// for a directory, anything below it): the local version, with
    /// everything below it, replaces the new default.
    KeepModified,
    /// Added locally: copied into the new `/etc`, replacing a new default of
    /// the same name if there is one.
    KeepAdded,
    /// Deleted locally: removed from the new `/etc`.
    KeepDeleted,
    /// A directory whose own mode or owner changed locally (or that was
    /// added on both sides): it gets the local mode and owner, and its
    /// entries are merged one by one (they are listed separately).
    KeepMetadata,
    /// Changed upstream only: the new default is taken.
    TakeModified,
    /// Added upstream: the new default appears.
    TakeAdded,
    /// Removed upstream and untouched locally: it disappears.
    TakeRemoved,
}

impl Action {
    /// Every action, for documentation and tests.
    pub const ALL: [Action; 7] = [
        Action::KeepModified,
        Action::KeepAdded,
        Action::KeepDeleted,
        Action::KeepMetadata,
        Action::TakeModified,
        Action::TakeAdded,
        Action::TakeRemoved,
    ];

    /// The wire name (as in the JSON), for human output.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::KeepModified => "keep-modified",
            Action::KeepAdded => "keep-added",
            Action::KeepDeleted => "keep-deleted",
            Action::KeepMetadata => "keep-metadata",
            Action::TakeModified => "take-modified",
            Action::TakeAdded => "take-added",
            Action::TakeRemoved => "take-removed",
        }
    }

    /// True if the action replays a local change (the others only say what
    /// the new default brings, which the initial copy already did).
    pub fn is_local(self) -> bool {
        matches!(self, Action::KeepModified | Action::KeepAdded | Action::KeepDeleted | Action::KeepMetadata)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Computes what [`merge`] would do with these trees, without writing
/// anything. The handles are the old deployment's `usr/etc` and `etc` and
/// the new deployment's `usr/etc`.
pub fn plan(old_default: &Dir, old_local: &Dir, new_default: &Dir) -> Result<EtcPlan> {
    let scan = |d: &Dir| scan_dir(d).with_context(|| format!("reading {}", d.path().display()));
    let (a, l, n) = (scan(old_default)?, scan(old_local)?, scan(new_default)?);
    let mut planner = Planner { dirs: [old_default, old_local, new_default], digests: HashMap::new(), changes: vec![] };
    planner.merge_dir("", &a, &l, &n)?;
    Ok(EtcPlan { changes: planner.changes })
}

/// Fills `new_etc`, which must be empty, with the merged `/etc`: a copy of
/// `new_default` (modes, owners, xattrs, symlinks and file times kept) with
/// the local changes replayed on top. Returns the plan it applied, which is
/// what [`plan`] returns for the same trees.
pub fn merge(old_default: &Dir, old_local: &Dir, new_default: &Dir, new_etc: &Dir) -> Result<EtcPlan> {
    let existing = new_etc.entries().with_context(|| format!("reading {}", new_etc.path().display()))?;
    if !existing.is_empty() {
        bail!("{}: the new /etc must start empty", new_etc.path().display());
    }
    let plan = plan(old_default, old_local, new_default)?;
    let mut copier = Copier { pending: BTreeMap::new() };

    // New defaults first: the whole new usr/etc.
    let root_st = new_default.stat_self().with_context(|| format!("stat {}", new_default.path().display()))?;
    let root_xattrs = fsutil::fd_xattrs(new_default)
        .with_context(|| format!("reading xattrs of {}", new_default.path().display()))?;
    copier.pending.insert(String::new(), PendingDir { meta: Meta::of(&root_st), xattrs: root_xattrs });
    copier
        .copy_children(new_default, new_etc, "")
        .with_context(|| format!("copying {} to {}", new_default.path().display(), new_etc.path().display()))?;

    // Then the local changes.
    for change in &plan.changes {
        copier
            .apply(old_local, new_etc, change)
            .with_context(|| format!("{}: applying {}", new_etc.display(&change.path).display(), change.action))?;
    }

    // Directory metadata last, deepest first (a path sorts after its
    // parent): a directory is filled while it is private and writable, its
    // xattrs (a default ACL, say) cannot leak onto entries created in it,
    // and its final mode cannot lock us out of it.
    for (path, dir) in copier.pending.iter().rev() {
        let d = open_relative(new_etc, path).with_context(|| format!("opening {}", new_etc.display(path).display()))?;
        set_metadata(&d, &dir.meta, &dir.xattrs)
            .with_context(|| format!("setting mode, owner and xattrs of {}", d.path().display()))?;
    }
    Ok(plan)
}

// ------------------------------------------------------------------ snapshot

/// Permission bits: what we compare and copy of `st_mode`.
const PERM_BITS: u32 = 0o7777;
/// Mode of a file while it is being written; its final mode is set after
/// its owner and xattrs (chown clears setuid bits, and a read-only mode
/// would refuse `user.*` xattrs to anyone but root).
const FILLING_FILE_MODE: u32 = 0o600;
/// Mode of a directory while it is being filled; see [`merge`].
const FILLING_DIR_MODE: u32 = 0o700;

/// Mode and owner of an entry, the metadata the merge compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
}

impl Meta {
    fn of(st: &Stat) -> Meta {
        Meta { mode: st.st_mode & PERM_BITS, uid: st.st_uid, gid: st.st_gid }
    }
}

impl fmt::Display for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mode {:04o}, owner {}:{}", self.mode, self.uid, self.gid)
    }
}

/// One entry of a tree as the merge sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    meta: Meta,
    kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum NodeKind {
    /// A regular file; its content is hashed only when a comparison needs it.
    File {
        size: u64,
        id: FileId,
    },
    Symlink(Vec<u8>),
    Dir(BTreeMap<String, Node>),
}

/// `(st_dev, st_ino)`: equal ids mean equal content (hardlinked checkouts
/// share inodes, so most default files are never read).
type FileId = (u64, u64);

fn file_id(st: &Stat) -> FileId {
    (st.st_dev, st.st_ino)
}

/// The type of an entry, or its absence, as conflicts name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Absent,
    File,
    Symlink,
    Dir,
}

impl Kind {
    fn of(node: Option<&Node>) -> Kind {
        match node.map(|n| &n.kind) {
            None => Kind::Absent,
            Some(NodeKind::File { .. }) => Kind::File,
            Some(NodeKind::Symlink(_)) => Kind::Symlink,
            Some(NodeKind::Dir(_)) => Kind::Dir,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Absent => "nothing",
            Kind::File => "file",
            Kind::Symlink => "symlink",
            Kind::Dir => "directory",
        })
    }
}

/// Checks a name read from a directory; OSTree trees hold only such names.
fn valid_name<'a>(dir: &Dir, name: &'a Path) -> Result<&'a str> {
    repo_format::name::validate_filename(fsutil::name_bytes(name))
        .map_err(|e| anyhow!("{}: invalid file name: {e}; rename or remove it", dir.display(name).display()))
}

fn special_file(dir: &Dir, name: &Path) -> anyhow::Error {
    anyhow!(
        "{}: device nodes, FIFOs and sockets cannot be carried into a new /etc (OSTree refuses them too); remove it",
        dir.display(name).display()
    )
}

/// Reads the metadata of a whole tree (no file contents).
fn scan_dir(dir: &Dir) -> Result<BTreeMap<String, Node>> {
    let mut out = BTreeMap::new();
    for e in dir.sorted_entries().with_context(|| format!("reading directory {}", dir.path().display()))? {
        let name = valid_name(dir, &e.name)?;
        let at = || dir.display(&e.name).display().to_string();
        let st = dir.stat(&e.name).with_context(|| format!("stat {}", at()))?;
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => NodeKind::File { size: file_size(&st), id: file_id(&st) },
            FileType::Symlink => {
                NodeKind::Symlink(dir.read_link(&e.name).with_context(|| format!("reading symlink {}", at()))?)
            }
            FileType::Directory => {
                NodeKind::Dir(scan_dir(&dir.open_dir(&e.name).with_context(|| format!("opening {}", at()))?)?)
            }
            _ => return Err(special_file(dir, &e.name)),
        };
        out.insert(name.to_owned(), Node { meta: Meta::of(&st), kind });
    }
    Ok(out)
}

fn file_size(st: &Stat) -> u64 {
    // A regular file's size is never negative.
    u64::try_from(st.st_size).unwrap_or(0)
}

// ------------------------------------------------------------------ planning

/// Which input tree a path is read from (index into [`Planner::dirs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tree {
    OldDefault = 0,
    OldLocal = 1,
    NewDefault = 2,
}

struct Planner<'a> {
    dirs: [&'a Dir; 3],
    /// Content hashes by inode, computed on first need.
    digests: HashMap<FileId, Checksum>,
    changes: Vec<EtcChange>,
}

static NO_ENTRIES: BTreeMap<String, Node> = BTreeMap::new();

impl Planner<'_> {
    fn push(&mut self, path: &str, action: Action, conflict: Option<String>) {
        self.changes.push(EtcChange { path: path.to_owned(), action, conflict });
    }

    /// Merges the entries of a directory present locally and in the new
    /// default (`a` is empty if the old default lacks it).
    fn merge_dir(
        &mut self,
        path: &str,
        a: &BTreeMap<String, Node>,
        l: &BTreeMap<String, Node>,
        n: &BTreeMap<String, Node>,
    ) -> Result<()> {
        let names: BTreeSet<&String> = a.keys().chain(l.keys()).chain(n.keys()).collect();
        for name in names {
            self.plan_node(&join(path, name), a.get(name), l.get(name), n.get(name))?;
        }
        Ok(())
    }

    /// Decides one path, given its entry in each tree.
    fn plan_node(&mut self, path: &str, a: Option<&Node>, l: Option<&Node>, n: Option<&Node>) -> Result<()> {
        // A directory locally and in the new default, and a directory (or
        // nothing) in the old default: its own mode and owner are decided
        // here, its entries one by one. Anything else is decided whole.
        if let (Some(ln), Some(nn)) = (l, n)
            && let (NodeKind::Dir(lc), NodeKind::Dir(nc)) = (&ln.kind, &nn.kind)
            && let Some(ac) = match a.map(|a| &a.kind) {
                None => Some(&NO_ENTRIES),
                Some(NodeKind::Dir(ac)) => Some(ac),
                Some(_) => None,
            }
        {
            let am = a.map(|a| a.meta);
            if Some(ln.meta) != am {
                self.push(path, Action::KeepMetadata, metadata_conflict(am, ln.meta, nn.meta));
            } else if Some(nn.meta) != am {
                self.push(path, Action::TakeModified, None);
            }
            return self.merge_dir(path, ac, lc, nc);
        }
        if self.same(Tree::OldDefault, Tree::OldLocal, path, a, l)? {
            if !self.same(Tree::OldDefault, Tree::NewDefault, path, a, n)? {
                self.push(path, take_action(a.is_some(), n.is_some()), None);
            }
            return Ok(());
        }
        let upstream = !self.same(Tree::OldDefault, Tree::NewDefault, path, a, n)?;
        let same_as_new = upstream && self.same(Tree::OldLocal, Tree::NewDefault, path, l, n)?;
        let conflict = conflict_message(Kind::of(a), Kind::of(l), Kind::of(n), upstream, same_as_new);
        self.push(path, keep_action(a.is_some(), l.is_some()), conflict);
        Ok(())
    }

    /// Whether `path` is the same in two trees: type, mode, owner, content,
    /// and for directories everything below them. Xattrs are not compared.
    fn same(&mut self, x: Tree, y: Tree, path: &str, a: Option<&Node>, b: Option<&Node>) -> Result<bool> {
        let (a, b) = match (a, b) {
            (None, None) => return Ok(true),
            (Some(a), Some(b)) => (a, b),
            _ => return Ok(false),
        };
        if a.meta != b.meta {
            return Ok(false);
        }
        match (&a.kind, &b.kind) {
            (NodeKind::File { size: sa, id: ia }, NodeKind::File { size: sb, id: ib }) => {
                Ok(sa == sb && (ia == ib || self.digest(x, path, *ia)? == self.digest(y, path, *ib)?))
            }
            (NodeKind::Symlink(ta), NodeKind::Symlink(tb)) => Ok(ta == tb),
            (NodeKind::Dir(ca), NodeKind::Dir(cb)) => {
                if !ca.keys().eq(cb.keys()) {
                    return Ok(false);
                }
                for (name, na) in ca {
                    if !self.same(x, y, &join(path, name), Some(na), cb.get(name))? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// SHA-256 of a file's content, by inode.
    fn digest(&mut self, tree: Tree, path: &str, id: FileId) -> Result<Checksum> {
        if let Some(c) = self.digests.get(&id) {
            return Ok(*c);
        }
        let dir = self.dirs[tree as usize];
        let at = || dir.display(path).display().to_string();
        let mut f = dir.open_file(path).with_context(|| format!("opening {}", at()))?;
        let st = fsutil::fd_stat(&f).with_context(|| format!("stat {}", at()))?;
        if file_id(&st) != id {
            bail!("{}: replaced while /etc was being compared; try again", at());
        }
        let mut h = Hasher::new();
        io::copy(&mut f, &mut h).with_context(|| format!("reading {}", at()))?;
        let c = h.finish();
        self.digests.insert(id, c);
        Ok(c)
    }
}

/// `path/name`, or `name` at the top.
fn join(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_owned() } else { format!("{path}/{name}") }
}

/// The action for a path changed upstream only.
fn take_action(in_old_default: bool, in_new_default: bool) -> Action {
    match (in_old_default, in_new_default) {
        (false, _) => Action::TakeAdded,
        (_, false) => Action::TakeRemoved,
        _ => Action::TakeModified,
    }
}

/// The action for a path changed locally.
fn keep_action(in_old_default: bool, in_old_local: bool) -> Action {
    match (in_old_default, in_old_local) {
        (false, _) => Action::KeepAdded,
        (_, false) => Action::KeepDeleted,
        _ => Action::KeepModified,
    }
}

/// Why a path changed locally needs attention: `a`, `l`, `n` are its types
/// in the old default, old local and new default trees; `upstream` says
/// whether the new default differs from the old one, `same_as_new` whether
/// the local version equals the new default (both made the same change).
fn conflict_message(a: Kind, l: Kind, n: Kind, upstream: bool, same_as_new: bool) -> Option<String> {
    use Kind::Absent;
    if !upstream {
        return (a != Absent && l != Absent && a != l)
            .then(|| format!("changed locally from a {a} to a {l}; the local {l} replaces the default {a}"));
    }
    if same_as_new {
        return None;
    }
    Some(match (a, l, n) {
        (Absent, _, _) => format!("added locally and upstream, differently; the local {l} is kept"),
        (_, Absent, _) => {
            "deleted locally but changed upstream; stays deleted, the new default is not installed".into()
        }
        (_, _, Absent) => format!("removed upstream but changed locally; the local {l} is kept"),
        _ if a != n => format!("changed upstream from a {a} to a {n} and changed locally; the local {l} is kept"),
        _ if a != l => format!("changed locally from a {a} to a {l} and changed upstream; the local {l} is kept"),
        _ => format!("changed locally and upstream; the local {l} is kept"),
    })
}

/// Why a directory's local mode and owner need attention: `a` is its
/// metadata in the old default (`None` if it was added), `l` and `n` in the
/// old local tree and the new default.
fn metadata_conflict(a: Option<Meta>, l: Meta, n: Meta) -> Option<String> {
    match a {
        Some(a) if n != a && n != l => {
            Some(format!("mode or owner changed locally ({l}) and upstream ({n}); the local ones are kept"))
        }
        None if n != l => Some(format!(
            "directory added locally ({l}) and upstream ({n}) with different mode or owner; the local ones are kept"
        )),
        _ => None,
    }
}

// ------------------------------------------------------------------ applying

/// Mode, owner and xattrs a directory gets once everything in it is done.
struct PendingDir {
    meta: Meta,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

struct Copier {
    /// Every directory of the new `/etc` by path (`""` for the top).
    pending: BTreeMap<String, PendingDir>,
}

/// Opens `path` (relative, `""` for `dir` itself) without following symlinks.
fn open_relative(dir: &Dir, path: &str) -> io::Result<Dir> {
    if path.is_empty() { dir.try_clone() } else { dir.open_dir(path) }
}

/// Splits `a/b/c` into `("a/b", "c")` and `c` into `("", "c")`.
fn split_parent(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

impl Copier {
    /// Replays one local change on the new `/etc`.
    fn apply(&mut self, old_local: &Dir, new_etc: &Dir, change: &EtcChange) -> Result<()> {
        let (parent, name) = split_parent(&change.path);
        match change.action {
            Action::TakeModified | Action::TakeAdded | Action::TakeRemoved => Ok(()),
            Action::KeepDeleted => self.remove(&open_relative(new_etc, parent)?, name, &change.path),
            Action::KeepModified | Action::KeepAdded => {
                let dst = open_relative(new_etc, parent)?;
                self.remove(&dst, name, &change.path)?;
                let src = open_relative(old_local, parent)
                    .with_context(|| format!("opening {}", old_local.display(parent).display()))?;
                self.copy_entry(&src, Path::new(name), &dst, &change.path)
            }
            Action::KeepMetadata => {
                let src = old_local
                    .open_dir(&change.path)
                    .with_context(|| format!("opening {}", old_local.display(&change.path).display()))?;
                let st = src.stat_self().with_context(|| format!("stat {}", src.path().display()))?;
                let dir = self
                    .pending
                    .get_mut(&change.path)
                    .ok_or_else(|| anyhow!("not a directory in the new default, cannot set its mode and owner"))?;
                dir.meta = Meta::of(&st);
                Ok(())
            }
        }
    }

    /// Removes `path` (`dir/name`) and forgets the directories below it.
    fn remove(&mut self, dir: &Dir, name: &str, path: &str) -> Result<()> {
        dir.remove_all(name).with_context(|| format!("removing {}", dir.display(name).display()))?;
        let below = format!("{path}/");
        self.pending.retain(|p, _| p != path && !p.starts_with(&below));
        Ok(())
    }

    /// Copies the entries of `src` into `dst`, whose path in the new `/etc` is `rel`.
    fn copy_children(&mut self, src: &Dir, dst: &Dir, rel: &str) -> Result<()> {
        for e in src.sorted_entries().with_context(|| format!("reading directory {}", src.path().display()))? {
            let name = valid_name(src, &e.name)?;
            self.copy_entry(src, &e.name, dst, &join(rel, name))?;
        }
        Ok(())
    }

    /// Copies `src/name` to `dst/name` (which must not exist) with its mode,
    /// owner, xattrs and, for files, mtime; directories with everything in
    /// them (their metadata is set at the end, see [`merge`]).
    fn copy_entry(&mut self, src: &Dir, name: &Path, dst: &Dir, rel: &str) -> Result<()> {
        let from = || src.display(name).display().to_string();
        let to = || dst.display(name).display().to_string();
        let st = src.stat(name).with_context(|| format!("stat {}", from()))?;
        let meta = Meta::of(&st);
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => {
                let mut input = src.open_file(name).with_context(|| format!("opening {}", from()))?;
                if file_id(&fsutil::fd_stat(&input).with_context(|| format!("stat {}", from()))?) != file_id(&st) {
                    bail!("{}: replaced while it was being copied; try again", from());
                }
                let mut out = dst.create_file(name, FILLING_FILE_MODE).with_context(|| format!("creating {}", to()))?;
                io::copy(&mut input, &mut out).with_context(|| format!("copying {} to {}", from(), to()))?;
                let have = fsutil::fd_stat(&out).with_context(|| format!("stat {}", to()))?;
                if (have.st_uid, have.st_gid) != (meta.uid, meta.gid) {
                    fsutil::fd_chown(&out, meta.uid, meta.gid).with_context(|| format!("setting owner of {}", to()))?;
                }
                let xattrs = fsutil::fd_xattrs(&input).with_context(|| format!("reading xattrs of {}", from()))?;
                for (k, v) in &xattrs {
                    fsutil::fd_set_xattr(&out, k, v).with_context(|| xattr_context(k, &to()))?;
                }
                fsutil::fd_chmod(&out, meta.mode).with_context(|| format!("setting mode of {}", to()))?;
                fsutil::fd_set_times(&out, st.st_mtime).with_context(|| format!("setting times of {}", to()))?;
            }
            FileType::Symlink => {
                let target = src.read_link(name).with_context(|| format!("reading symlink {}", from()))?;
                dst.symlink(fsutil::os_name(&target), name).with_context(|| format!("creating symlink {}", to()))?;
                let have = dst.stat(name).with_context(|| format!("stat {}", to()))?;
                if (have.st_uid, have.st_gid) != (meta.uid, meta.gid) {
                    dst.chown_nofollow(name, meta.uid, meta.gid)
                        .with_context(|| format!("setting owner of {}", to()))?;
                }
                for (k, v) in src.xattrs_nofollow(name).with_context(|| format!("reading xattrs of {}", from()))? {
                    dst.set_xattr_nofollow(name, &k, &v).with_context(|| xattr_context(&k, &to()))?;
                }
            }
            FileType::Directory => {
                dst.create_dir(name, FILLING_DIR_MODE).with_context(|| format!("creating {}", to()))?;
                let s = src.open_dir(name).with_context(|| format!("opening {}", from()))?;
                let d = dst.open_dir(name).with_context(|| format!("opening {}", to()))?;
                let xattrs = fsutil::fd_xattrs(&s).with_context(|| format!("reading xattrs of {}", from()))?;
                self.pending.insert(rel.to_owned(), PendingDir { meta, xattrs });
                self.copy_children(&s, &d, rel)?;
            }
            _ => return Err(special_file(src, name)),
        }
        Ok(())
    }
}

fn xattr_context(key: &[u8], at: &str) -> String {
    format!("setting xattr {} on {at}", String::from_utf8_lossy(key))
}

/// Gives a finished directory its owner, xattrs and then mode (chown clears
/// setgid bits; see [`FILLING_FILE_MODE`] for the order).
fn set_metadata(d: &Dir, meta: &Meta, xattrs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
    let have = d.stat_self()?;
    if (have.st_uid, have.st_gid) != (meta.uid, meta.gid) {
        fsutil::fd_chown(d, meta.uid, meta.gid).context("setting owner")?;
    }
    for (k, v) in xattrs {
        fsutil::fd_set_xattr(d, k, v).with_context(|| format!("setting xattr {}", String::from_utf8_lossy(k)))?;
    }
    fsutil::fd_chmod(d, meta.mode).context("setting mode")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown, symlink};
    use std::path::PathBuf;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    // ------------------------------------------------------------ pure helpers

    #[test]
    fn conflict_messages() {
        use Kind::{Absent, Dir, File, Symlink};
        #[rustfmt::skip]
        let table = [
            // Local change only: quiet, unless the type changed.
            (File, File, File, false, false, None),
            (Absent, File, Absent, false, false, None),
            (File, Absent, File, false, false, None),
            (File, Dir, File, false, false, Some("changed locally from a file to a directory; the local directory replaces")),
            (Dir, Symlink, Dir, false, false, Some("changed locally from a directory to a symlink")),
            // Both sides changed.
            (File, File, File, true, false, Some("changed locally and upstream; the local file is kept")),
            (File, File, File, true, true, None),
            (File, Absent, Absent, true, true, None),
            (File, Absent, File, true, false, Some("deleted locally but changed upstream; stays deleted")),
            (Dir, Absent, Symlink, true, false, Some("deleted locally but changed upstream")),
            (File, File, Absent, true, false, Some("removed upstream but changed locally; the local file is kept")),
            (Absent, Symlink, File, true, false, Some("added locally and upstream, differently; the local symlink is kept")),
            (Dir, Dir, Symlink, true, false, Some("changed upstream from a directory to a symlink and changed locally")),
            (File, Dir, File, true, false, Some("changed locally from a file to a directory and changed upstream")),
        ];
        for (a, l, n, upstream, same, want) in table {
            let got = conflict_message(a, l, n, upstream, same);
            match want {
                None => assert_eq!(got, None, "{a} {l} {n} {upstream} {same}"),
                Some(w) => {
                    let got = got.unwrap_or_else(|| panic!("{a} {l} {n} {upstream} {same}: no conflict"));
                    assert!(got.contains(w), "{a} {l} {n} {upstream} {same}: {got:?} lacks {w:?}");
                }
            }
        }
    }

    #[test]
    fn metadata_conflicts() {
        let m = |mode, uid| Meta { mode, uid, gid: 0 };
        #[rustfmt::skip]
        let table = [
            (Some(m(0o755, 0)), m(0o700, 0), m(0o755, 0), None),                 // local only
            (Some(m(0o755, 0)), m(0o700, 0), m(0o700, 0), None),                 // same change
            (Some(m(0o755, 0)), m(0o700, 0), m(0o750, 0), Some("changed locally (mode 0700, owner 0:0) and upstream (mode 0750")),
            (Some(m(0o755, 0)), m(0o755, 5), m(0o755, 6), Some("owner 5:0")),
            (None, m(0o755, 0), m(0o755, 0), None),                              // added alike
            (None, m(0o700, 0), m(0o755, 0), Some("added locally (mode 0700, owner 0:0) and upstream (mode 0755")),
        ];
        for (a, l, n, want) in table {
            let got = metadata_conflict(a, l, n);
            match want {
                None => assert_eq!(got, None, "{a:?} {l} {n}"),
                Some(w) => assert!(got.as_deref().is_some_and(|g| g.contains(w)), "{a:?} {l} {n}: {got:?} lacks {w:?}"),
            }
        }
    }

    #[test]
    fn actions_by_presence() {
        assert_eq!(take_action(false, true), Action::TakeAdded);
        assert_eq!(take_action(true, false), Action::TakeRemoved);
        assert_eq!(take_action(true, true), Action::TakeModified);
        assert_eq!(keep_action(false, true), Action::KeepAdded);
        assert_eq!(keep_action(true, false), Action::KeepDeleted);
        assert_eq!(keep_action(true, true), Action::KeepModified);
    }

    #[test]
    fn paths_join_and_split() {
        for (parent, name, path) in
            [("", "motd", "motd"), ("ssh", "sshd_config", "ssh/sshd_config"), ("a/b", "c", "a/b/c")]
        {
            assert_eq!(join(parent, name), path);
            assert_eq!(split_parent(path), (parent, name));
        }
    }

    #[test]
    fn wire_format() {
        for a in Action::ALL {
            assert_eq!(serde_json::to_value(a).expect("serializes"), serde_json::json!(a.as_str()));
            assert_eq!(a.is_local(), a.as_str().starts_with("keep-"), "{a}");
        }
        let plan = EtcPlan {
            changes: vec![
                EtcChange { path: "motd".into(), action: Action::TakeModified, conflict: None },
                EtcChange { path: "ssh/sshd_config".into(), action: Action::KeepModified, conflict: Some("x".into()) },
            ],
        };
        assert_eq!(
            serde_json::to_value(&plan).expect("serializes"),
            serde_json::json!({"changes": [
                {"path": "motd", "action": "take-modified", "conflict": null},
                {"path": "ssh/sshd_config", "action": "keep-modified", "conflict": "x"},
            ]})
        );
        assert_eq!(plan.conflicts().map(|c| c.path.as_str()).collect::<Vec<_>>(), ["ssh/sshd_config"]);
    }

    // ------------------------------------------------------------ fixtures

    /// One step of building a tree, named after the shell command.
    #[derive(Clone, Copy)]
    enum Op<'a> {
        /// Writes a file (new files get mode 0644).
        Write(&'a str, &'a str),
        Mkdir(&'a str),
        /// Replaces whatever is at the path with a symlink.
        Ln(&'a str, &'a str),
        Rm(&'a str),
        Chmod(&'a str, u32),
        Chown(&'a str, u32, u32),
        Setfattr(&'a str, &'a str, &'a str),
        /// Sets a file's mtime (seconds).
        Touch(&'a str, u64),
        Mkfifo(&'a str),
        /// Writes a file whose name is not UTF-8 into a directory.
        WriteRawName(&'a str, &'a [u8]),
    }
    use Op::*;

    fn apply_ops(root: &Path, ops: &[Op]) {
        for op in ops {
            let p = |rel: &str| root.join(rel);
            match *op {
                Write(rel, data) => {
                    let new = fs::symlink_metadata(p(rel)).is_err();
                    fs::write(p(rel), data).expect("write");
                    if new {
                        fs::set_permissions(p(rel), fs::Permissions::from_mode(0o644)).expect("chmod");
                    }
                }
                Mkdir(rel) => {
                    fs::create_dir(p(rel)).expect("mkdir");
                    fs::set_permissions(p(rel), fs::Permissions::from_mode(0o755)).expect("chmod");
                }
                Ln(rel, target) => {
                    remove(&p(rel));
                    symlink(target, p(rel)).expect("symlink");
                }
                Rm(rel) => remove(&p(rel)),
                Chmod(rel, mode) => fs::set_permissions(p(rel), fs::Permissions::from_mode(mode)).expect("chmod"),
                Chown(rel, uid, gid) => lchown(p(rel), Some(uid), Some(gid)).expect("chown"),
                Setfattr(rel, key, value) => {
                    let (parent, name) = split_parent(rel);
                    Dir::open(&p(parent))
                        .and_then(|d| d.set_xattr_nofollow(name, key.as_bytes(), value.as_bytes()))
                        .expect("setfattr");
                }
                Touch(rel, secs) => fs::File::options()
                    .write(true)
                    .open(p(rel))
                    .and_then(|f| f.set_modified(UNIX_EPOCH + Duration::from_secs(secs)))
                    .expect("touch"),
                Mkfifo(rel) => {
                    let ok = std::process::Command::new("mkfifo").arg(p(rel)).status().expect("mkfifo").success();
                    assert!(ok, "mkfifo failed");
                }
                WriteRawName(dir, name) => {
                    fs::write(p(dir).join(std::ffi::OsStr::from_bytes(name)), "x").expect("write raw name")
                }
            }
        }
    }

    use std::os::unix::ffi::OsStrExt;

    fn remove(p: &Path) {
        match fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(p).expect("rm -r"),
            Ok(_) => fs::remove_file(p).expect("rm"),
            Err(_) => {}
        }
    }

    /// What a test sees of an entry: type and content, mode, owner, xattrs.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Desc {
        what: String,
        mode: u32,
        uid: u32,
        gid: u32,
        xattrs: Vec<(String, String)>,
    }

    /// Every entry below a root (`""` is the root), never following symlinks.
    type Listing = BTreeMap<String, Desc>;

    fn describe(root: &Path) -> Listing {
        let mut out = Listing::new();
        describe_into(root, "", &mut out);
        out
    }

    fn describe_into(root: &Path, rel: &str, out: &mut Listing) {
        let p = if rel.is_empty() { root.to_owned() } else { root.join(rel) };
        let m = fs::symlink_metadata(&p).expect("lstat");
        let (parent, name) = split_parent(rel);
        let parent_dir = Dir::open(&root.join(parent)).expect("open parent");
        let raw = if rel.is_empty() {
            fsutil::fd_xattrs(&parent_dir).expect("xattrs")
        } else {
            parent_dir.xattrs_nofollow(name).expect("xattrs")
        };
        let mut xattrs: Vec<(String, String)> = raw
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), String::from_utf8_lossy(&v).into_owned()))
            .collect();
        xattrs.sort();
        let what = if m.file_type().is_symlink() {
            format!("link:{}", fs::read_link(&p).expect("readlink").display())
        } else if m.is_dir() {
            "dir".to_owned()
        } else {
            format!("file:{}", String::from_utf8_lossy(&fs::read(&p).expect("read")))
        };
        out.insert(rel.to_owned(), Desc { what, mode: m.mode() & 0o7777, uid: m.uid(), gid: m.gid(), xattrs });
        if m.is_dir() {
            let mut names: Vec<String> = fs::read_dir(&p)
                .expect("readdir")
                .map(|e| e.expect("readdir").file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for name in names {
                describe_into(root, &join(rel, &name), out);
            }
        }
    }

    fn in_subtree(path: &str, top: &str) -> bool {
        path == top || path.strip_prefix(top).is_some_and(|rest| rest.starts_with('/'))
    }

    /// The tree a plan describes: the new default with the local changes
    /// replayed, computed from listings alone.
    fn expected_tree(local: &Listing, new_default: &Listing, plan: &EtcPlan) -> Listing {
        let mut t = new_default.clone();
        for c in &plan.changes {
            match c.action {
                Action::KeepModified | Action::KeepAdded => {
                    t.retain(|p, _| !in_subtree(p, &c.path));
                    t.extend(local.iter().filter(|(p, _)| in_subtree(p, &c.path)).map(|(p, d)| (p.clone(), d.clone())));
                }
                Action::KeepDeleted => t.retain(|p, _| !in_subtree(p, &c.path)),
                Action::KeepMetadata => {
                    let l = &local[&c.path];
                    let d = t.get_mut(&c.path).expect("keep-metadata on a directory of the new default");
                    (d.mode, d.uid, d.gid) = (l.mode, l.uid, l.gid);
                }
                Action::TakeModified | Action::TakeAdded | Action::TakeRemoved => {}
            }
        }
        t
    }

    #[track_caller]
    fn assert_same_listing(got: &Listing, want: &Listing, what: &str) {
        let keys: BTreeSet<&String> = got.keys().chain(want.keys()).collect();
        let diff: Vec<String> = keys
            .into_iter()
            .filter(|k| got.get(*k) != want.get(*k))
            .map(|k| format!("  {k:?}: got {:?}, want {:?}", got.get(k), want.get(k)))
            .collect();
        assert!(diff.is_empty(), "{what}:\n{}", diff.join("\n"));
    }

    fn path_order(a: &str, b: &str) -> Ordering {
        a.split('/').cmp(b.split('/'))
    }

    const OLD_DEFAULT: &str = "old-usr-etc";
    const OLD_LOCAL: &str = "old-etc";
    const NEW_DEFAULT: &str = "new-usr-etc";
    const NEW_ETC: &str = "new-etc";

    /// The three input trees in a scratch directory.
    struct Trees {
        tmp: tempfile::TempDir,
    }

    /// A small `/etc`: a file in a directory, plain files, a symlink, a
    /// directory of drop-ins, an xattr.
    const BASE: &[Op] = &[
        Mkdir("ssh"),
        Write("ssh/sshd_config", "Port 22\n"),
        Chmod("ssh/sshd_config", 0o600),
        Write("hostname", "photon\n"),
        Write("motd", "welcome\n"),
        Setfattr("motd", "user.origin", "base"),
        Ln("localtime", "../usr/share/zoneinfo/UTC"),
        Mkdir("conf.d"),
        Write("conf.d/a.conf", "a\n"),
        Write("conf.d/b.conf", "b\n"),
    ];

    impl Trees {
        fn new() -> Trees {
            let tmp = tempfile::tempdir().expect("tempdir");
            for t in [OLD_DEFAULT, OLD_LOCAL, NEW_DEFAULT] {
                fs::create_dir(tmp.path().join(t)).expect("mkdir");
                apply_ops(&tmp.path().join(t), BASE);
            }
            Trees { tmp }
        }

        fn path(&self, tree: &str) -> PathBuf {
            self.tmp.path().join(tree)
        }

        /// Edits the old deployment's `/etc`, as an admin would.
        fn local(self, ops: &[Op]) -> Trees {
            apply_ops(&self.path(OLD_LOCAL), ops);
            self
        }

        /// Edits the new default, as a new OS version would.
        fn upstream(self, ops: &[Op]) -> Trees {
            apply_ops(&self.path(NEW_DEFAULT), ops);
            self
        }

        fn open(&self) -> [Dir; 3] {
            [OLD_DEFAULT, OLD_LOCAL, NEW_DEFAULT].map(|t| Dir::open(&self.path(t)).expect("open tree"))
        }

        fn new_etc(&self) -> Dir {
            fs::create_dir(self.path(NEW_ETC)).expect("mkdir new etc");
            Dir::open(&self.path(NEW_ETC)).expect("open new etc")
        }

        /// Plans, merges, and checks that the merge did exactly what the
        /// plan predicted and wrote nothing into the inputs.
        fn run(&self) -> Outcome {
            let inputs = || [OLD_DEFAULT, OLD_LOCAL, NEW_DEFAULT].map(|t| describe(&self.path(t)));
            let before = inputs();
            let [a, l, n] = self.open();
            let predicted = plan(&a, &l, &n).expect("plan");
            let merged = merge(&a, &l, &n, &self.new_etc()).expect("merge");
            assert_eq!(predicted, merged, "plan() predicted something else than merge() did");
            for (b, after) in before.iter().zip(inputs()) {
                assert_same_listing(&after, b, "merge changed an input tree");
            }
            for w in merged.changes.windows(2) {
                assert_eq!(path_order(&w[0].path, &w[1].path), Ordering::Less, "plan not in path order: {merged:?}");
            }
            let tree = describe(&self.path(NEW_ETC));
            assert_same_listing(
                &tree,
                &expected_tree(&before[1], &before[2], &merged),
                "new /etc differs from the plan",
            );
            Outcome { plan: merged, tree }
        }

        /// Expects plan and merge to fail, with `what` in the message and
        /// nothing written.
        fn fails(&self, what: &str) -> String {
            let [a, l, n] = self.open();
            let e = format!("{:#}", plan(&a, &l, &n).expect_err("plan should fail"));
            assert!(e.contains(what), "{e:?} lacks {what:?}");
            let out = self.new_etc();
            let e2 = format!("{:#}", merge(&a, &l, &n, &out).expect_err("merge should fail"));
            assert_eq!(e, e2, "merge fails differently from plan");
            assert!(fs::read_dir(self.path(NEW_ETC)).expect("readdir").next().is_none(), "merge wrote before failing");
            e
        }
    }

    struct Outcome {
        plan: EtcPlan,
        tree: Listing,
    }

    impl Outcome {
        /// The plan as `(path, action, has a conflict)`.
        fn changes(&self) -> Vec<(&str, Action, bool)> {
            self.plan.changes.iter().map(|c| (c.path.as_str(), c.action, c.conflict.is_some())).collect()
        }

        #[track_caller]
        fn conflict(&self, path: &str) -> &str {
            self.plan
                .changes
                .iter()
                .find(|c| c.path == path)
                .and_then(|c| c.conflict.as_deref())
                .unwrap_or_else(|| panic!("no conflict at {path}: {:?}", self.plan))
        }

        #[track_caller]
        fn what(&self, path: &str) -> &str {
            self.tree.get(path).map_or("absent", |d| d.what.as_str())
        }

        #[track_caller]
        fn get(&self, path: &str) -> &Desc {
            self.tree.get(path).unwrap_or_else(|| panic!("{path} missing from the new /etc: {:?}", self.tree.keys()))
        }
    }

    fn is_root() -> bool {
        fsutil::euid() == 0
    }

    // ------------------------------------------------------------ cases

    #[test]
    fn untouched_on_both_sides_is_a_copy_of_the_new_default() {
        let t = Trees::new();
        let o = t.run();
        assert_eq!(o.changes(), []);
        assert_same_listing(&o.tree, &describe(&t.path(NEW_DEFAULT)), "copy of the new default");
        assert_eq!(o.get("motd").xattrs, [("user.origin".to_owned(), "base".to_owned())]);
        assert_eq!(o.what("localtime"), "link:../usr/share/zoneinfo/UTC");
        assert_eq!(o.get("ssh/sshd_config").mode, 0o600);
    }

    #[test]
    fn unmodified_file_takes_the_new_default() {
        let o = Trees::new().upstream(&[Write("motd", "welcome to 5.1\n"), Chmod("hostname", 0o640)]).run();
        assert_eq!(o.changes(), [("hostname", Action::TakeModified, false), ("motd", Action::TakeModified, false)]);
        assert_eq!(o.what("motd"), "file:welcome to 5.1\n");
        assert_eq!(o.get("hostname").mode, 0o640);
    }

    #[test]
    fn locally_modified_file_is_kept() {
        let t = Trees::new().local(&[Write("ssh/sshd_config", "Port 2222\n"), Touch("ssh/sshd_config", 1_600_000_000)]);
        let o = t.run();
        assert_eq!(o.changes(), [("ssh/sshd_config", Action::KeepModified, false)]);
        assert_eq!(o.what("ssh/sshd_config"), "file:Port 2222\n");
        assert_eq!(o.get("ssh/sshd_config").mode, 0o600);
        let mtime = fs::symlink_metadata(t.path(NEW_ETC).join("ssh/sshd_config")).expect("lstat").mtime();
        assert_eq!(mtime, 1_600_000_000, "mtime of the local file kept");
    }

    #[test]
    fn locally_added_file_is_kept() {
        let o = Trees::new().local(&[Write("resolv.conf", "nameserver 10.0.0.1\n"), Chmod("resolv.conf", 0o640)]).run();
        assert_eq!(o.changes(), [("resolv.conf", Action::KeepAdded, false)]);
        assert_eq!(o.what("resolv.conf"), "file:nameserver 10.0.0.1\n");
        assert_eq!(o.get("resolv.conf").mode, 0o640);
    }

    #[test]
    fn locally_deleted_file_stays_deleted() {
        let o = Trees::new().local(&[Rm("motd"), Rm("localtime")]).run();
        assert_eq!(o.changes(), [("localtime", Action::KeepDeleted, false), ("motd", Action::KeepDeleted, false)]);
        assert_eq!(o.what("motd"), "absent");
        assert_eq!(o.what("localtime"), "absent");
    }

    #[test]
    fn upstream_added_file_appears() {
        let o = Trees::new().upstream(&[Write("conf.d/c.conf", "c\n"), Mkdir("new.d"), Write("new.d/x", "x\n")]).run();
        assert_eq!(o.changes(), [("conf.d/c.conf", Action::TakeAdded, false), ("new.d", Action::TakeAdded, false)]);
        assert_eq!(o.what("conf.d/c.conf"), "file:c\n");
        assert_eq!(o.what("new.d/x"), "file:x\n");
    }

    #[test]
    fn upstream_removed_file_disappears() {
        let o = Trees::new().upstream(&[Rm("hostname"), Rm("conf.d")]).run();
        assert_eq!(o.changes(), [("conf.d", Action::TakeRemoved, false), ("hostname", Action::TakeRemoved, false)]);
        assert_eq!(o.what("hostname"), "absent");
        assert_eq!(o.what("conf.d/a.conf"), "absent");
    }

    #[test]
    fn changed_on_both_sides_keeps_local_and_reports() {
        let o = Trees::new()
            .local(&[Write("ssh/sshd_config", "Port 2222\n")])
            .upstream(&[Write("ssh/sshd_config", "Port 22\nUsePAM yes\n")])
            .run();
        assert_eq!(o.changes(), [("ssh/sshd_config", Action::KeepModified, true)]);
        assert!(o.conflict("ssh/sshd_config").contains("changed locally and upstream"));
        assert_eq!(o.what("ssh/sshd_config"), "file:Port 2222\n");

        // The same change on both sides is no conflict.
        let o = Trees::new()
            .local(&[Write("ssh/sshd_config", "Port 2222\n")])
            .upstream(&[Write("ssh/sshd_config", "Port 2222\n")])
            .run();
        assert_eq!(o.changes(), [("ssh/sshd_config", Action::KeepModified, false)]);

        // Removed upstream, modified locally: kept.
        let o = Trees::new().local(&[Write("hostname", "box\n")]).upstream(&[Rm("hostname")]).run();
        assert_eq!(o.changes(), [("hostname", Action::KeepModified, true)]);
        assert_eq!(o.what("hostname"), "file:box\n");
    }

    #[test]
    fn deleted_locally_and_changed_upstream_stays_deleted_and_reports() {
        let o = Trees::new().local(&[Rm("motd")]).upstream(&[Write("motd", "welcome to 5.1\n")]).run();
        assert_eq!(o.changes(), [("motd", Action::KeepDeleted, true)]);
        assert!(o.conflict("motd").contains("deleted locally but changed upstream"));
        assert_eq!(o.what("motd"), "absent");

        // Deleted on both sides: nothing to report.
        let o = Trees::new().local(&[Rm("motd")]).upstream(&[Rm("motd")]).run();
        assert_eq!(o.changes(), [("motd", Action::KeepDeleted, false)]);
    }

    #[test]
    fn file_turned_into_a_directory_locally() {
        let o = Trees::new().local(&[Rm("hostname"), Mkdir("hostname"), Write("hostname/name", "box\n")]).run();
        assert_eq!(o.changes(), [("hostname", Action::KeepModified, true)]);
        assert!(o.conflict("hostname").contains("from a file to a directory"));
        assert_eq!(o.what("hostname"), "dir");
        assert_eq!(o.what("hostname/name"), "file:box\n");

        // ... while upstream changed the file.
        let o = Trees::new()
            .local(&[Rm("hostname"), Mkdir("hostname"), Write("hostname/name", "box\n")])
            .upstream(&[Write("hostname", "photon-5\n")])
            .run();
        assert_eq!(o.changes(), [("hostname", Action::KeepModified, true)]);
        assert_eq!(o.what("hostname/name"), "file:box\n");
    }

    #[test]
    fn directory_turned_into_a_symlink_upstream() {
        let upstream = [Rm("conf.d"), Ln("conf.d", "../usr/lib/conf.d")];
        let o = Trees::new().upstream(&upstream).run();
        assert_eq!(o.changes(), [("conf.d", Action::TakeModified, false)]);
        assert_eq!(o.what("conf.d"), "link:../usr/lib/conf.d");

        // A local change inside keeps the whole local directory.
        let o = Trees::new().local(&[Write("conf.d/local.conf", "l\n")]).upstream(&upstream).run();
        assert_eq!(o.changes(), [("conf.d", Action::KeepModified, true)]);
        assert!(o.conflict("conf.d").contains("from a directory to a symlink"));
        assert_eq!(o.what("conf.d"), "dir");
        assert_eq!(o.what("conf.d/a.conf"), "file:a\n");
        assert_eq!(o.what("conf.d/local.conf"), "file:l\n");
    }

    #[test]
    fn symlink_target_changed_locally() {
        let o = Trees::new().local(&[Ln("localtime", "../usr/share/zoneinfo/Europe/Berlin")]).run();
        assert_eq!(o.changes(), [("localtime", Action::KeepModified, false)]);
        assert_eq!(o.what("localtime"), "link:../usr/share/zoneinfo/Europe/Berlin");
    }

    #[test]
    fn mode_only_changes_locally() {
        let o = Trees::new().local(&[Chmod("hostname", 0o600), Chmod("motd", 0o4755)]).run();
        assert_eq!(o.changes(), [("hostname", Action::KeepModified, false), ("motd", Action::KeepModified, false)]);
        assert_eq!(o.get("hostname").mode, 0o600);
        assert_eq!(o.get("motd").mode, 0o4755, "setuid kept");

        // A directory's own mode is kept while its entries are merged.
        let o = Trees::new()
            .local(&[Chmod("ssh", 0o700), Write("ssh/ssh_config", "Host *\n")])
            .upstream(&[Write("ssh/sshd_config", "Port 22\nUsePAM yes\n"), Chmod("conf.d", 0o555)])
            .run();
        assert_eq!(
            o.changes(),
            [
                ("conf.d", Action::TakeModified, false),
                ("ssh", Action::KeepMetadata, false),
                ("ssh/ssh_config", Action::KeepAdded, false),
                ("ssh/sshd_config", Action::TakeModified, false),
            ]
        );
        assert_eq!(o.get("ssh").mode, 0o700);
        assert_eq!(o.get("conf.d").mode, 0o555);
        assert_eq!(o.what("ssh/sshd_config"), "file:Port 22\nUsePAM yes\n");

        // Changed differently on both sides: local kept, reported.
        let o = Trees::new().local(&[Chmod("ssh", 0o700)]).upstream(&[Chmod("ssh", 0o750)]).run();
        assert_eq!(o.changes(), [("ssh", Action::KeepMetadata, true)]);
        assert_eq!(o.get("ssh").mode, 0o700);
    }

    #[test]
    fn owner_only_changes_locally() {
        if !is_root() {
            eprintln!("skipped: changing owners needs root");
            return;
        }
        let o = Trees::new()
            .local(&[Chown("motd", 1234, 4321), Chown("localtime", 1234, 1234), Chown("conf.d", 99, 98)])
            .upstream(&[Write("conf.d/a.conf", "a2\n")])
            .run();
        assert_eq!(
            o.changes(),
            [
                ("conf.d", Action::KeepMetadata, false),
                ("conf.d/a.conf", Action::TakeModified, false),
                ("localtime", Action::KeepModified, false),
                ("motd", Action::KeepModified, false),
            ]
        );
        assert_eq!((o.get("motd").uid, o.get("motd").gid), (1234, 4321));
        assert_eq!((o.get("localtime").uid, o.get("localtime").gid), (1234, 1234));
        assert_eq!((o.get("conf.d").uid, o.get("conf.d").gid), (99, 98));
        assert_eq!((o.get("conf.d/a.conf").uid, o.get("conf.d/a.conf").what.as_str()), (0, "file:a2\n"));
    }

    #[test]
    fn xattrs_come_with_copies_but_are_not_compared() {
        let mut local = vec![
            Setfattr("motd", "user.origin", "relabelled"),
            Write("hostname", "box\n"),
            Setfattr("hostname", "user.note", "mine"),
            Mkdir("local.d"),
            Setfattr("local.d", "user.dir", "d"),
            Ln("local.d/link", "/nonexistent"),
        ];
        if is_root() {
            // user.* xattrs are not allowed on symlinks; trusted.* are, for root.
            local.push(Setfattr("local.d/link", "trusted.note", "on a symlink"));
        }
        let o = Trees::new().local(&local).run();
        assert_eq!(o.changes(), [("hostname", Action::KeepModified, false), ("local.d", Action::KeepAdded, false)]);
        assert_eq!(o.get("motd").xattrs, [("user.origin".to_owned(), "base".to_owned())], "xattr-only change ignored");
        assert_eq!(o.get("hostname").xattrs, [("user.note".to_owned(), "mine".to_owned())]);
        assert_eq!(o.get("local.d").xattrs, [("user.dir".to_owned(), "d".to_owned())]);
        if is_root() {
            assert_eq!(o.get("local.d/link").xattrs, [("trusted.note".to_owned(), "on a symlink".to_owned())]);
        }
    }

    #[test]
    fn nested_directories_added_and_removed_locally() {
        let local = [
            Mkdir("a"),
            Mkdir("a/b"),
            Chmod("a/b", 0o750),
            Mkdir("a/b/c"),
            Write("a/b/c/deep.conf", "deep\n"),
            Rm("conf.d"),
        ];
        let o = Trees::new().local(&local).run();
        assert_eq!(o.changes(), [("a", Action::KeepAdded, false), ("conf.d", Action::KeepDeleted, false)]);
        assert_eq!(o.what("a/b/c/deep.conf"), "file:deep\n");
        assert_eq!(o.get("a/b").mode, 0o750);
        assert_eq!(o.what("conf.d"), "absent");

        // Upstream changed something inside the deleted directory: reported.
        let o = Trees::new().local(&local).upstream(&[Write("conf.d/c.conf", "c\n")]).run();
        assert_eq!(o.changes(), [("a", Action::KeepAdded, false), ("conf.d", Action::KeepDeleted, true)]);
        assert_eq!(o.what("conf.d"), "absent");

        // A deleted entry inside a directory that stays.
        let o = Trees::new().local(&[Rm("conf.d/a.conf")]).upstream(&[Write("conf.d/b.conf", "b2\n")]).run();
        assert_eq!(
            o.changes(),
            [("conf.d/a.conf", Action::KeepDeleted, false), ("conf.d/b.conf", Action::TakeModified, false)]
        );
    }

    #[test]
    fn directory_added_on_both_sides_is_merged() {
        let o = Trees::new()
            .local(&[Mkdir("x.d"), Write("x.d/local.conf", "l\n"), Write("x.d/both.conf", "mine\n")])
            .upstream(&[Mkdir("x.d"), Write("x.d/vendor.conf", "v\n"), Write("x.d/both.conf", "theirs\n")])
            .run();
        assert_eq!(
            o.changes(),
            [
                ("x.d", Action::KeepMetadata, false),
                ("x.d/both.conf", Action::KeepAdded, true),
                ("x.d/local.conf", Action::KeepAdded, false),
                ("x.d/vendor.conf", Action::TakeAdded, false),
            ]
        );
        assert_eq!(o.what("x.d/both.conf"), "file:mine\n");
        assert_eq!(o.what("x.d/vendor.conf"), "file:v\n");
    }

    #[test]
    fn symlinks_out_of_the_tree_are_copied_never_followed() {
        let canary = "photon-upgrade-etcmerge-canary.conf";
        let root_canary = Path::new("/").join(canary);
        assert!(!root_canary.exists(), "{} exists before the test", root_canary.display());
        let local_canary = format!("conf.d/{canary}");
        let o = Trees::new()
            // Locally: a new link to /, and ssh/ replaced by a link to /
            // while upstream changes a file below it.
            .local(&[Ln("root", "/"), Rm("ssh"), Ln("ssh", "/"), Write(&local_canary, "local\n")])
            // Upstream: conf.d/ becomes a link to / while a file is added
            // in it locally; a new link to / appears.
            .upstream(&[
                Write("ssh/sshd_config", "Port 22\nUsePAM yes\n"),
                Rm("conf.d"),
                Ln("conf.d", "/"),
                Ln("up", "/"),
            ])
            .run();
        assert_eq!(
            o.changes(),
            [
                ("conf.d", Action::KeepModified, true),
                ("root", Action::KeepAdded, false),
                ("ssh", Action::KeepModified, true),
                ("up", Action::TakeAdded, false),
            ]
        );
        assert_eq!(o.what("root"), "link:/");
        assert_eq!(o.what("ssh"), "link:/");
        assert_eq!(o.what("up"), "link:/");
        assert_eq!(o.what("conf.d"), "dir");
        assert_eq!(o.what(&local_canary), "file:local\n");
        assert!(!root_canary.exists(), "wrote through a symlink to /");
        assert!(!Path::new("/sshd_config").exists(), "wrote through a symlink to /");
    }

    #[test]
    fn invalid_names_are_refused() {
        let e = Trees::new().local(&[WriteRawName("conf.d", b"bad\xffname")]).fails("invalid file name");
        assert!(e.contains("old-etc/conf.d/bad"), "{e}");
        assert!(e.contains("not valid UTF-8"), "{e}");
    }

    #[test]
    fn special_files_are_refused() {
        let e = Trees::new().local(&[Mkfifo("initctl")]).fails("FIFOs");
        assert!(e.contains("old-etc/initctl"), "{e}");
    }

    #[test]
    fn the_new_etc_must_start_empty() {
        let t = Trees::new();
        let [a, l, n] = t.open();
        let out = t.new_etc();
        fs::write(t.path(NEW_ETC).join("stray"), "x").expect("write");
        let e = format!("{:#}", merge(&a, &l, &n, &out).expect_err("merge into a non-empty dir"));
        assert!(e.contains("must start empty"), "{e}");
    }

    #[test]
    fn defaults_sharing_inodes_compare_equal() {
        // Deployments are hardlinked checkouts: unchanged defaults are one inode.
        let t = Trees::new();
        for f in ["hostname", "motd", "conf.d/a.conf"] {
            fs::remove_file(t.path(NEW_DEFAULT).join(f)).expect("rm");
            fs::hard_link(t.path(OLD_DEFAULT).join(f), t.path(NEW_DEFAULT).join(f)).expect("ln");
        }
        let o = t.local(&[Write("motd", "local\n")]).run();
        assert_eq!(o.changes(), [("motd", Action::KeepModified, false)]);
    }
}
