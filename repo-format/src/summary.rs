//! The repository summary `(a(s(taya{sv}))a{sv})` (SPEC.md §9).
//!
//! It lists every published ref with its commit id, the size of the commit
//! object (little-endian, unlike every other number here) and per-ref
//! metadata, plus repository-wide metadata. A client trusts the ref → commit
//! map only after checking `summary.sig`.

use gvariant::aligned_bytes::AsAligned;
use gvariant::{Marker, Structure, gv};

use crate::gv::{aligned, c_str, check_normal_form};
use crate::metadata::{Metadata, Value};
use crate::name::validate_ref;
use crate::{Checksum, Error};

const OBJECT: &str = "summary";

/// Well-known summary metadata keys (OSTree's `ostree-repo-private.h`).
pub mod keys {
    /// Seconds since the epoch the summary was written, `t` big-endian.
    pub const LAST_MODIFIED: &str = "ostree.summary.last-modified";
    /// Seconds since the epoch after which the summary must not be trusted, `t` big-endian.
    pub const EXPIRES: &str = "ostree.summary.expires";
    /// Repository mode, `s`.
    pub const MODE: &str = "ostree.summary.mode";
    /// Whether tombstone commits are written, `b`.
    pub const TOMBSTONE_COMMITS: &str = "ostree.summary.tombstone-commits";
    /// Delta indexes exist, `b`.
    pub const INDEXED_DELTAS: &str = "ostree.summary.indexed-deltas";
    /// Static deltas: name → superblock checksum, `a{sv}`.
    pub const STATIC_DELTAS: &str = "ostree.static-deltas";
    /// Per ref: commit timestamp, `t` big-endian.
    pub const COMMIT_TIMESTAMP: &str = "ostree.commit.timestamp";
    /// Per ref: commit version, `s`.
    pub const COMMIT_VERSION: &str = "ostree.commit.version";
}

/// One ref of a summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRef {
    /// The ref name.
    pub name: String,
    /// Size in bytes of the commit object.
    pub commit_size: u64,
    /// The commit id.
    pub checksum: Checksum,
    /// Per-ref metadata (`ostree.commit.timestamp`, ...).
    pub metadata: Metadata,
}

impl SummaryRef {
    /// The commit timestamp recorded for this ref, if any.
    pub fn timestamp(&self) -> Option<u64> {
        self.metadata.get_u64_be(keys::COMMIT_TIMESTAMP).ok().flatten()
    }
    /// The commit version recorded for this ref, if any.
    pub fn version(&self) -> Option<String> {
        self.metadata.get_str(keys::COMMIT_VERSION).ok().flatten()
    }
}

/// A ref's `(taya{sv})` as the serializer takes it.
type WireRef<'a> = (u64, &'a [u8], &'a Vec<(&'a str, &'a Value)>);

/// A summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    refs: Vec<SummaryRef>,
    /// Repository-wide metadata.
    pub metadata: Metadata,
}

impl Summary {
    /// Builds a summary, sorting refs by name; fails on a repeated or invalid name.
    pub fn new(mut refs: Vec<SummaryRef>, metadata: Metadata) -> Result<Summary, Error> {
        refs.sort_by(|a, b| a.name.cmp(&b.name));
        let s = Summary { refs, metadata };
        s.check()?;
        Ok(s)
    }

    fn check(&self) -> Result<(), Error> {
        for r in &self.refs {
            validate_ref(&r.name).map_err(|source| Error::Name { object: OBJECT, name: r.name.clone(), source })?;
        }
        if let Some(w) = self.refs.windows(2).find(|w| w[0].name >= w[1].name) {
            return Err(Error::Unsorted { object: OBJECT, name: w[1].name.clone() });
        }
        Ok(())
    }

    /// The refs, sorted by name.
    pub fn refs(&self) -> &[SummaryRef] {
        &self.refs
    }

    /// The entry for `name`.
    pub fn get(&self, name: &str) -> Option<&SummaryRef> {
        self.refs.binary_search_by(|r| r.name.as_str().cmp(name)).ok().map(|i| &self.refs[i])
    }

    /// When the summary was written, if recorded.
    pub fn last_modified(&self) -> Option<u64> {
        self.metadata.get_u64_be(keys::LAST_MODIFIED).ok().flatten()
    }

    /// When the summary stops being valid, if it says.
    pub fn expires(&self) -> Option<u64> {
        self.metadata.get_u64_be(keys::EXPIRES).ok().flatten()
    }

    /// Serializes to normal form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let ref_meta: Vec<Vec<(&str, &Value)>> = self.refs.iter().map(|r| r.metadata.iter().collect()).collect();
        let inner: Vec<WireRef<'_>> = self
            .refs
            .iter()
            .zip(&ref_meta)
            .map(|(r, m)| (r.commit_size, r.checksum.as_bytes().as_slice(), m))
            .collect();
        let refs: Vec<(&str, &WireRef<'_>)> = self.refs.iter().zip(&inner).map(|(r, i)| (c_str(&r.name), i)).collect();
        let meta: Vec<(&str, &Value)> = self.metadata.iter().collect();
        gv!("(a(s(taya{sv}))a{sv})").serialize_to_vec(&(&refs, &meta))
    }

    /// Parses and validates a summary: normal form, valid sorted unique ref
    /// names, 32-byte checksums, well-formed metadata values.
    pub fn from_bytes(data: &[u8]) -> Result<Summary, Error> {
        let buf = aligned(OBJECT, data)?;
        let (refs, meta) = gv!("(a(s(taya{sv}))a{sv})").cast(buf.as_aligned()).to_tuple();
        let refs = refs
            .iter()
            .map(|e| {
                let (name, inner) = e.to_tuple();
                let (size, csum, m) = inner.to_tuple();
                let name = name.to_str().to_owned();
                Ok(SummaryRef {
                    checksum: Checksum::from_bytes(csum).map_err(|source| Error::Checksum {
                        object: OBJECT,
                        field: "ref checksum",
                        source,
                    })?,
                    commit_size: *size,
                    metadata: Metadata::from_entries(m.iter().map(|x| x.to_tuple()))?,
                    name,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let metadata = Metadata::from_entries(meta.iter().map(|x| x.to_tuple()))?;
        let s = Summary { refs, metadata };
        check_normal_form(OBJECT, data, &s.to_bytes())?;
        s.check()?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_lookup() {
        let mut m = Metadata::new();
        m.insert(keys::COMMIT_TIMESTAMP, Value::new_u64(1234u64.to_be()));
        let r = |n: &str| SummaryRef {
            name: n.into(),
            commit_size: 300,
            checksum: Checksum::of(n.as_bytes()),
            metadata: m.clone(),
        };
        let mut meta = Metadata::new();
        meta.insert(keys::LAST_MODIFIED, Value::new_u64(99u64.to_be()));
        let s = Summary::new(vec![r("os/b"), r("os/a")], meta).expect("valid");
        assert_eq!(s.refs()[0].name, "os/a");
        let back = Summary::from_bytes(&s.to_bytes()).expect("round trip");
        assert_eq!(back, s);
        assert_eq!(back.get("os/b").map(SummaryRef::timestamp), Some(Some(1234)));
        assert_eq!(back.last_modified(), Some(99));
        assert!(Summary::new(vec![r("a"), r("a")], Metadata::new()).is_err());
        assert!(Summary::new(vec![r("../x")], Metadata::new()).is_err());
    }
}
