//! Extended attributes as OSTree stores them: `a(ayay)` (SPEC.md §2.3).

use crate::Error;

/// Largest xattr value Linux accepts (`XATTR_SIZE_MAX`).
pub const MAX_XATTR_VALUE: usize = 65536;
/// Longest xattr name Linux accepts (`XATTR_NAME_MAX`).
pub const MAX_XATTR_NAME: usize = 255;

/// Extended attributes sorted by name. In memory names carry no trailing NUL;
/// on the wire each name is a bytestring *with* its NUL, which the checksum
/// covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Xattrs(Vec<(Vec<u8>, Vec<u8>)>);

impl Xattrs {
    /// No attributes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the canonical (byte-sorted) list. Returns `None` on a repeated,
    /// empty or NUL-containing name.
    pub fn from_pairs(mut pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Option<Self> {
        pairs.sort();
        let bad_name = |n: &Vec<u8>| n.is_empty() || n.contains(&0) || n.len() > MAX_XATTR_NAME;
        if pairs.iter().any(|(n, v)| bad_name(n) || v.len() > MAX_XATTR_VALUE)
            || pairs.windows(2).any(|w| w[0].0 == w[1].0)
        {
            return None;
        }
        Some(Self(pairs))
    }

    /// The (name, value) pairs, names without NUL.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.0.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of attributes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The value of `name`.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    /// Pairs ready for the `a(ayay)` serializer: names with their NUL.
    pub(crate) fn wire(&self) -> Vec<(Vec<u8>, &[u8])> {
        self.0
            .iter()
            .map(|(n, v)| {
                let mut name = n.clone();
                name.push(0);
                (name, v.as_slice())
            })
            .collect()
    }

    /// Reads a decoded `a(ayay)`. The order is kept as found (the checksum
    /// covers it); names must be unique, non-empty and NUL-terminated.
    pub(crate) fn from_wire<'a>(
        object: &'static str,
        items: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<Self, Error> {
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for (name, value) in items {
            let lossy = || String::from_utf8_lossy(name).into_owned();
            let err = |reason| Error::Xattr { object, name: lossy(), reason };
            let Some((&0, bare)) = name.split_last() else {
                return Err(err("name is not NUL-terminated"));
            };
            if bare.is_empty() || bare.contains(&0) {
                return Err(err("name is empty or contains NUL"));
            }
            if bare.len() > MAX_XATTR_NAME || value.len() > MAX_XATTR_VALUE {
                return Err(err("name or value exceeds the Linux limit"));
            }
            if out.iter().any(|(n, _)| n == bare) {
                return Err(err("name repeats"));
            }
            out.push((bare.to_vec(), value.to_vec()));
        }
        Ok(Self(out))
    }
}
