//! Reachability: which objects a commit (and its history) needs.

use std::collections::HashSet;

use anyhow::Result;
use repo_format::{Checksum, ObjectType};

use super::{ObjectMissing, Repo};

/// An object id with its kind.
pub type ObjectName = (Checksum, ObjectType);

/// Collects what `commit` needs into `out`: the commit, its detached
/// metadata if present, and its whole tree. Dirtrees already in `out` are
/// not walked again, so walking many similar commits costs little.
/// Unreadable objects are errors unless `walk` says to skip them.
pub fn commit_objects(repo: &Repo, commit: &Checksum, out: &mut HashSet<ObjectName>, walk: Walk) -> Result<()> {
    let c = match repo.load_commit(commit) {
        Ok(c) => c,
        Err(e) if walk.skips(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    out.insert((*commit, ObjectType::Commit));
    if repo.has_object(commit, ObjectType::CommitMeta)? {
        out.insert((*commit, ObjectType::CommitMeta));
    }
    out.insert((c.root_meta, ObjectType::DirMeta));
    tree_objects(repo, &c.root_tree, out, walk)
}

/// What a walk does with an object it cannot read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// Every object must be present and valid.
    Strict,
    /// Missing objects are skipped (partial commits); corrupt ones are errors.
    SkipMissing,
    /// Missing and corrupt objects are skipped (fsck reports them itself).
    SkipUnreadable,
}

impl Walk {
    fn skips(self, e: &anyhow::Error) -> bool {
        match self {
            Walk::Strict => false,
            Walk::SkipMissing => is_missing(e),
            Walk::SkipUnreadable => true,
        }
    }
}

/// True if `e` is (caused by) a missing object.
pub fn is_missing(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<ObjectMissing>())
}

/// Collects a dirtree and everything below it.
pub fn tree_objects(repo: &Repo, tree: &Checksum, out: &mut HashSet<ObjectName>, walk: Walk) -> Result<()> {
    let mut stack = vec![*tree];
    while let Some(t) = stack.pop() {
        if !out.insert((t, ObjectType::DirTree)) {
            continue;
        }
        let dt = match repo.load_dirtree(&t) {
            Ok(dt) => dt,
            Err(e) if walk.skips(&e) => continue,
            Err(e) => return Err(e),
        };
        for f in dt.files() {
            out.insert((f.checksum, ObjectType::File));
        }
        for d in dt.dirs() {
            out.insert((d.meta, ObjectType::DirMeta));
            if !out.contains(&(d.tree, ObjectType::DirTree)) {
                stack.push(d.tree);
            }
        }
    }
    Ok(())
}

/// The commits from `commit` back through its parents: `depth` parents at
/// most (`None` for all). History stops quietly where a parent commit is
/// not present locally (pulls fetch only part of a history).
pub fn history(repo: &Repo, commit: &Checksum, depth: Option<usize>) -> Result<Vec<Checksum>> {
    let mut out = vec![*commit];
    let mut cur = *commit;
    while depth.is_none_or(|d| out.len() <= d) {
        let c = repo.load_commit(&cur)?;
        match c.parent {
            Some(p) if repo.has_commit(&p)? && !out.contains(&p) => {
                out.push(p);
                cur = p;
            }
            _ => break,
        }
    }
    Ok(out)
}
