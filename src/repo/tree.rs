//! Walking paths inside a commit's tree without checking it out.

use anyhow::Result;
use repo_format::Checksum;
use repo_format::dirtree::Entry;

use super::Repo;

/// What a path names in a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathEntry {
    /// A file or symlink: its content object.
    File(Checksum),
    /// A directory: its dirtree and dirmeta.
    Dir {
        /// The `.dirtree`.
        tree: Checksum,
        /// The `.dirmeta`.
        meta: Checksum,
    },
}

impl Repo {
    /// Resolves `path` (`/`-separated, leading `/` optional) in `commit`'s
    /// tree; `None` if it does not exist.
    pub fn lookup_path(&self, commit: &Checksum, path: &str) -> Result<Option<PathEntry>> {
        let c = self.load_commit(commit)?;
        let (mut tree, mut meta) = (c.root_tree, c.root_meta);
        let comps: Vec<&str> = path.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
        for (i, comp) in comps.iter().enumerate() {
            match self.load_dirtree(&tree)?.lookup(comp) {
                Some(Entry::Dir(d)) => (tree, meta) = (d.tree, d.meta),
                Some(Entry::File(f)) if i + 1 == comps.len() => return Ok(Some(PathEntry::File(f.checksum))),
                _ => return Ok(None),
            }
        }
        Ok(Some(PathEntry::Dir { tree, meta }))
    }

    /// The bytes of a regular file in `commit`, if it exists and is at most `limit` bytes.
    pub fn read_tree_file(&self, commit: &Checksum, path: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some(PathEntry::File(c)) = self.lookup_path(commit, path)? else { return Ok(None) };
        let mut content = self.open_content(&c)?;
        if content.header.is_symlink() || content.size > limit {
            return Ok(None);
        }
        let mut data = Vec::with_capacity(content.size as usize);
        std::io::Read::read_to_end(content.reader(), &mut data)?;
        Ok(Some(data))
    }
}
