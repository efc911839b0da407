//! Directory listings `(a(say)a(sayay))` (SPEC.md §2.4).

use gvariant::{Marker, Structure, gv};

use gvariant::aligned_bytes::AsAligned;

use crate::gv::{aligned, check_normal_form};
use crate::name::{ValidName, validate_filename};
use crate::{Checksum, Error};

const OBJECT: &str = "dirtree";

/// A file (or symlink) entry: name and content object id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TreeFile {
    /// Entry name, a single valid path component.
    pub name: ValidName,
    /// Content object id.
    pub checksum: Checksum,
}

/// A subdirectory entry: name, its dirtree id and its dirmeta id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TreeDir {
    /// Entry name, a single valid path component.
    pub name: ValidName,
    /// The subdirectory's `.dirtree` id.
    pub tree: Checksum,
    /// The subdirectory's `.dirmeta` id.
    pub meta: Checksum,
}

/// A directory listing: files and subdirectories, each sorted by name bytes
/// (OSTree sorts with `strcmp`), no name repeated, no name in both lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DirTree {
    files: Vec<TreeFile>,
    dirs: Vec<TreeDir>,
}

impl DirTree {
    /// Builds a listing, sorting both lists. Fails if a name repeats.
    pub fn new(mut files: Vec<TreeFile>, mut dirs: Vec<TreeDir>) -> Result<Self, Error> {
        files.sort_by(|a, b| a.name.cmp(&b.name));
        dirs.sort_by(|a, b| a.name.cmp(&b.name));
        let t = Self { files, dirs };
        t.check_order()?;
        Ok(t)
    }

    /// File entries in name order.
    pub fn files(&self) -> &[TreeFile] {
        &self.files
    }

    /// Directory entries in name order.
    pub fn dirs(&self) -> &[TreeDir] {
        &self.dirs
    }

    /// Looks a name up in both lists.
    pub fn lookup(&self, name: &str) -> Option<Entry<'_>> {
        if let Ok(i) = self.files.binary_search_by(|f| f.name.as_str().cmp(name)) {
            return Some(Entry::File(&self.files[i]));
        }
        self.dirs.binary_search_by(|d| d.name.as_str().cmp(name)).ok().map(|i| Entry::Dir(&self.dirs[i]))
    }

    fn check_order(&self) -> Result<(), Error> {
        let unsorted = |name: &ValidName| Error::Unsorted { object: OBJECT, name: name.to_string() };
        if let Some(w) = self.files.windows(2).find(|w| w[0].name >= w[1].name) {
            return Err(unsorted(&w[1].name));
        }
        if let Some(w) = self.dirs.windows(2).find(|w| w[0].name >= w[1].name) {
            return Err(unsorted(&w[1].name));
        }
        // Both lists are sorted: a merge walk finds a shared name.
        let (mut i, mut j) = (0, 0);
        while i < self.files.len() && j < self.dirs.len() {
            match self.files[i].name.cmp(&self.dirs[j].name) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    return Err(Error::FileAndDir { object: OBJECT, name: self.files[i].name.to_string() });
                }
            }
        }
        Ok(())
    }

    /// Serializes to normal form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let f: Vec<(&str, &[u8])> =
            self.files.iter().map(|e| (e.name.as_str(), e.checksum.as_bytes().as_slice())).collect();
        let d: Vec<(&str, &[u8], &[u8])> = self
            .dirs
            .iter()
            .map(|e| (e.name.as_str(), e.tree.as_bytes().as_slice(), e.meta.as_bytes().as_slice()))
            .collect();
        gv!("(a(say)a(sayay))").serialize_to_vec(&(&f, &d))
    }

    /// The object id of this listing.
    pub fn checksum(&self) -> Checksum {
        Checksum::of(&self.to_bytes())
    }

    /// Parses and validates a `.dirtree` object: every name a safe single
    /// component, every checksum 32 bytes, sorted, unique, normal form.
    pub fn from_bytes(data: &[u8]) -> Result<Self, Error> {
        let buf = aligned(OBJECT, data)?;
        let (files, dirs) = gv!("(a(say)a(sayay))").cast(buf.as_aligned()).to_tuple();
        let name = |raw: &gvariant::Str| -> Result<ValidName, Error> {
            let bytes = raw.as_bytes_non_conformant();
            let lossy = String::from_utf8_lossy(bytes).into_owned();
            validate_filename(bytes).map_err(|source| Error::Name { object: OBJECT, name: lossy, source }).and_then(
                |s| ValidName::new(s).map_err(|source| Error::Name { object: OBJECT, name: s.to_owned(), source }),
            )
        };
        let csum = |field, raw: &[u8]| {
            Checksum::from_bytes(raw).map_err(|source| Error::Checksum { object: OBJECT, field, source })
        };
        let files = files
            .iter()
            .map(|e| {
                let (n, c) = e.to_tuple();
                Ok(TreeFile { name: name(n)?, checksum: csum("file checksum", c)? })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let dirs = dirs
            .iter()
            .map(|e| {
                let (n, t, m) = e.to_tuple();
                Ok(TreeDir { name: name(n)?, tree: csum("dirtree checksum", t)?, meta: csum("dirmeta checksum", m)? })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let tree = Self { files, dirs };
        check_normal_form(OBJECT, data, &tree.to_bytes())?;
        tree.check_order()?;
        Ok(tree)
    }
}

/// One entry found by [`DirTree::lookup`].
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a> {
    /// A file or symlink.
    File(&'a TreeFile),
    /// A subdirectory.
    Dir(&'a TreeDir),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> ValidName {
        ValidName::new(s).expect("test names are valid")
    }

    #[test]
    fn sorted_unique_and_disjoint() {
        let c = Checksum::of(b"x");
        let t = DirTree::new(
            vec![TreeFile { name: n("b"), checksum: c }, TreeFile { name: n("a"), checksum: c }],
            vec![TreeDir { name: n("usr"), tree: c, meta: c }],
        )
        .expect("valid tree");
        assert_eq!(t.files()[0].name.as_str(), "a");
        assert_eq!(DirTree::from_bytes(&t.to_bytes()), Ok(t.clone()));
        assert!(matches!(t.lookup("usr"), Some(Entry::Dir(_))));
        assert!(t.lookup("nope").is_none());

        let dup =
            DirTree::new(vec![TreeFile { name: n("a"), checksum: c }, TreeFile { name: n("a"), checksum: c }], vec![]);
        assert!(matches!(dup, Err(Error::Unsorted { .. })));
        let both = DirTree::new(
            vec![TreeFile { name: n("a"), checksum: c }],
            vec![TreeDir { name: n("a"), tree: c, meta: c }],
        );
        assert!(matches!(both, Err(Error::FileAndDir { .. })));
    }

    #[test]
    fn hostile_names_are_refused() {
        let c = [0u8; 32];
        for bad in ["..", ".", "a/b", ""] {
            let f: Vec<(&str, &[u8])> = vec![(bad, &c)];
            let d: Vec<(&str, &[u8], &[u8])> = vec![];
            let bytes = gv!("(a(say)a(sayay))").serialize_to_vec(&(&f, &d));
            assert!(matches!(DirTree::from_bytes(&bytes), Err(Error::Name { .. })), "{bad:?}");
        }
        let f: Vec<(&str, &[u8])> = vec![("short", &c[..31])];
        let d: Vec<(&str, &[u8], &[u8])> = vec![];
        let bytes = gv!("(a(say)a(sayay))").serialize_to_vec(&(&f, &d));
        assert!(matches!(DirTree::from_bytes(&bytes), Err(Error::Checksum { .. })));
    }
}
