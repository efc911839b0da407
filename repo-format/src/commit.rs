//! Commits `(a{sv}aya(say)sstayay)` (SPEC.md §2.5).

use gvariant::{Marker, Structure, gv};

use gvariant::aligned_bytes::AsAligned;

use crate::gv::{aligned, c_str, check_normal_form};
use crate::metadata::{Metadata, Value};
use crate::{Checksum, Error};

const OBJECT: &str = "commit";

/// Well-known commit metadata keys (OSTree's `ostree-core.h`).
pub mod keys {
    /// Human-readable version string, `s`.
    pub const VERSION: &str = "version";
    /// Refs this commit may be found under, `as` (added by `commit --branch`).
    pub const REF_BINDING: &str = "ostree.ref-binding";
    /// Collection id binding, `s`.
    pub const COLLECTION_BINDING: &str = "ostree.collection-binding";
    /// End-of-life message, `s`.
    pub const ENDOFLIFE: &str = "ostree.endoflife";
    /// Ref to rebase to at end of life, `s`.
    pub const ENDOFLIFE_REBASE: &str = "ostree.endoflife-rebase";
    /// ed25519 signatures in detached metadata, `aay`.
    pub const SIGN_ED25519: &str = "ostree.sign.ed25519";
}

/// A commit object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Free-form metadata (`version`, `ostree.ref-binding`, ...).
    pub metadata: Metadata,
    /// The previous commit on this history, if any.
    pub parent: Option<Checksum>,
    /// Related objects (name, commit id); unused by OSTree today.
    pub related: Vec<(String, Checksum)>,
    /// One-line subject.
    pub subject: String,
    /// Longer description.
    pub body: String,
    /// Seconds since the epoch, UTC (big-endian on the wire).
    pub timestamp: u64,
    /// Root `.dirtree` id.
    pub root_tree: Checksum,
    /// Root `.dirmeta` id.
    pub root_meta: Checksum,
}

impl Commit {
    /// Serializes to normal form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let meta: Vec<(&str, &Value)> = self.metadata.iter().collect();
        let parent: &[u8] = match &self.parent {
            Some(p) => p.as_bytes(),
            None => &[],
        };
        let related: Vec<(&str, &[u8])> =
            self.related.iter().map(|(n, c)| (c_str(n), c.as_bytes().as_slice())).collect();
        let value = (
            &meta,
            parent,
            &related,
            c_str(&self.subject),
            c_str(&self.body),
            self.timestamp.to_be(),
            self.root_tree.as_bytes().as_slice(),
            self.root_meta.as_bytes().as_slice(),
        );
        gv!("(a{sv}aya(say)sstayay)").serialize_to_vec(&value)
    }

    /// The object id of this commit.
    pub fn checksum(&self) -> Checksum {
        Checksum::of(&self.to_bytes())
    }

    /// Parses and validates a `.commit` object.
    pub fn from_bytes(data: &[u8]) -> Result<Self, Error> {
        let buf = aligned(OBJECT, data)?;
        let (meta, parent, related, subject, body, timestamp, root_tree, root_meta) =
            gv!("(a{sv}aya(say)sstayay)").cast(buf.as_aligned()).to_tuple();
        let csum = |field, raw: &[u8]| {
            Checksum::from_bytes(raw).map_err(|source| Error::Checksum { object: OBJECT, field, source })
        };
        let parent = if parent.is_empty() { None } else { Some(csum("parent", parent)?) };
        let related = related
            .iter()
            .map(|e| {
                let (n, c) = e.to_tuple();
                Ok((n.to_str().to_owned(), csum("related", c)?))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let metadata = Metadata::from_entries(meta.iter().map(|e| e.to_tuple()))?;
        let commit = Self {
            metadata,
            parent,
            related,
            subject: subject.to_str().to_owned(),
            body: body.to_str().to_owned(),
            timestamp: u64::from_be(*timestamp),
            root_tree: csum("root dirtree", root_tree)?,
            root_meta: csum("root dirmeta", root_meta)?,
        };
        check_normal_form(OBJECT, data, &commit.to_bytes())?;
        Ok(commit)
    }

    /// The `version` metadata string, if present and well-formed.
    pub fn version(&self) -> Option<String> {
        self.metadata.get_str(keys::VERSION).ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Commit {
        let mut metadata = Metadata::new();
        metadata.insert(keys::VERSION, Value::new_str("1.0"));
        Commit {
            metadata,
            parent: Some(Checksum::of(b"p")),
            related: vec![],
            subject: "s".into(),
            body: "b".into(),
            timestamp: 1_577_836_800,
            root_tree: Checksum::of(b"t"),
            root_meta: Checksum::of(b"m"),
        }
    }

    #[test]
    fn round_trip() {
        let c = sample();
        assert_eq!(Commit::from_bytes(&c.to_bytes()), Ok(c.clone()));
        assert_eq!(c.version().as_deref(), Some("1.0"));
        let root = Commit { parent: None, ..c };
        assert_eq!(Commit::from_bytes(&root.to_bytes()), Ok(root));
    }

    #[test]
    fn truncation_and_garbage_are_refused() {
        let bytes = sample().to_bytes();
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(Commit::from_bytes(&bytes[..cut]).is_err(), "accepted a {cut}-byte prefix");
        }
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0; 8]);
        assert!(Commit::from_bytes(&longer).is_err());
    }
}
