//! `repo diff`: which paths differ between two commits.

use anyhow::Result;
use repo_format::Checksum;
use repo_format::dirtree::Entry;

use super::Repo;

/// How a path changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in the new tree.
    Added,
    /// Only in the old tree.
    Removed,
    /// In both, with different content or metadata.
    Modified,
}

impl Change {
    /// The one-letter code `ostree diff` prints.
    pub fn letter(self) -> char {
        match self {
            Change::Added => 'A',
            Change::Removed => 'D',
            Change::Modified => 'M',
        }
    }
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DiffEntry {
    /// What happened.
    pub change: Change,
    /// Absolute path in the tree.
    pub path: String,
}

/// Lists the paths that differ between two commits' trees, in path order.
/// Subtrees with the same dirtree id are skipped without being read.
pub fn diff(repo: &Repo, from: &Checksum, to: &Checksum) -> Result<Vec<DiffEntry>> {
    let a = repo.load_commit(from)?;
    let b = repo.load_commit(to)?;
    let mut out = Vec::new();
    if a.root_meta != b.root_meta {
        out.push(DiffEntry { change: Change::Modified, path: "/".into() });
    }
    diff_trees(repo, Some(&a.root_tree), Some(&b.root_tree), "", &mut out)?;
    Ok(out)
}

fn diff_trees(
    repo: &Repo,
    a: Option<&Checksum>,
    b: Option<&Checksum>,
    prefix: &str,
    out: &mut Vec<DiffEntry>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let ta = a.map(|c| repo.load_dirtree(c)).transpose()?.unwrap_or_default();
    let tb = b.map(|c| repo.load_dirtree(c)).transpose()?.unwrap_or_default();
    let mut names: Vec<&str> =
        ta.files().iter().map(|f| f.name.as_str()).chain(ta.dirs().iter().map(|d| d.name.as_str())).collect();
    names.extend(tb.files().iter().map(|f| f.name.as_str()).chain(tb.dirs().iter().map(|d| d.name.as_str())));
    names.sort_unstable();
    names.dedup();
    for name in names {
        let path = format!("{prefix}/{name}");
        match (ta.lookup(name), tb.lookup(name)) {
            (Some(Entry::File(x)), Some(Entry::File(y))) => {
                if x.checksum != y.checksum {
                    out.push(DiffEntry { change: Change::Modified, path });
                }
            }
            (Some(Entry::Dir(x)), Some(Entry::Dir(y))) => {
                if x.meta != y.meta {
                    out.push(DiffEntry { change: Change::Modified, path: path.clone() });
                }
                diff_trees(repo, Some(&x.tree), Some(&y.tree), &path, out)?;
            }
            (old, new) => {
                if let Some(old) = old {
                    out.push(DiffEntry { change: Change::Removed, path: path.clone() });
                    if let Entry::Dir(d) = old {
                        diff_trees(repo, Some(&d.tree), None, &path, out)?;
                    }
                }
                if let Some(new) = new {
                    out.push(DiffEntry { change: Change::Added, path: path.clone() });
                    if let Entry::Dir(d) = new {
                        diff_trees(repo, None, Some(&d.tree), &path, out)?;
                    }
                }
            }
        }
    }
    Ok(())
}
