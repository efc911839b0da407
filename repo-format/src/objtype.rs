//! Object kinds and their file extensions (SPEC.md §2).

use std::fmt;

/// The kinds of object a repository holds, numbered as in OSTree's
/// `OstreeObjectType` (the numbers appear in static-delta and pull formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectType {
    /// File content plus its metadata header: a regular file or a symlink.
    File = 1,
    /// A directory listing: `(a(say)a(sayay))`.
    DirTree = 2,
    /// A directory's owner, mode and xattrs: `(uuua(ayay))`.
    DirMeta = 3,
    /// A commit: `(a{sv}aya(say)sstayay)`.
    Commit = 4,
    /// Marks a deleted commit: `a{sv}`.
    TombstoneCommit = 5,
    /// Detached commit metadata (signatures): `a{sv}`.
    CommitMeta = 6,
}

impl ObjectType {
    /// Every kind, in numeric order.
    pub const ALL: [ObjectType; 6] = [
        ObjectType::File,
        ObjectType::DirTree,
        ObjectType::DirMeta,
        ObjectType::Commit,
        ObjectType::TombstoneCommit,
        ObjectType::CommitMeta,
    ];

    /// The loose-object file extension; `archive` is true for archive-mode
    /// repositories, where content objects are compressed (`.filez`).
    pub fn extension(self, archive: bool) -> &'static str {
        match self {
            ObjectType::File if archive => "filez",
            ObjectType::File => "file",
            ObjectType::DirTree => "dirtree",
            ObjectType::DirMeta => "dirmeta",
            ObjectType::Commit => "commit",
            ObjectType::TombstoneCommit => "commit-tombstone",
            ObjectType::CommitMeta => "commitmeta",
        }
    }

    /// The kind for a loose-object extension.
    pub fn from_extension(ext: &str) -> Option<Self> {
        Some(match ext {
            "file" | "filez" => ObjectType::File,
            "dirtree" => ObjectType::DirTree,
            "dirmeta" => ObjectType::DirMeta,
            "commit" => ObjectType::Commit,
            "commit-tombstone" => ObjectType::TombstoneCommit,
            "commitmeta" => ObjectType::CommitMeta,
            _ => return None,
        })
    }

    /// The kind for OSTree's numeric value.
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|t| *t as u8 == v)
    }

    /// Metadata objects are stored uncompressed and named by the SHA-256 of
    /// their bytes.
    pub fn is_meta(self) -> bool {
        self != ObjectType::File
    }

    /// What to call the object in a sentence: "content" for files (as in
    /// "content object"), the name otherwise.
    pub fn noun(self) -> &'static str {
        match self {
            ObjectType::File => "content",
            t => t.name(),
        }
    }

    /// A short lowercase name for messages and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ObjectType::File => "file",
            ObjectType::DirTree => "dirtree",
            ObjectType::DirMeta => "dirmeta",
            ObjectType::Commit => "commit",
            ObjectType::TombstoneCommit => "commit-tombstone",
            ObjectType::CommitMeta => "commitmeta",
        }
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_round_trip() {
        for t in ObjectType::ALL {
            for archive in [false, true] {
                assert_eq!(ObjectType::from_extension(t.extension(archive)), Some(t));
            }
            assert_eq!(ObjectType::from_u8(t as u8), Some(t));
        }
        assert_eq!(ObjectType::from_extension("txt"), None);
        assert_eq!(ObjectType::from_u8(0), None);
    }
}
