//! Size indexes (SPEC.md §10): how big each object of a commit is, so a
//! client knows the bytes of a pull before it downloads content (progress
//! total, space check). Our own format; OSTree ignores it.
//!
//! ```text
//! magic    "PUSIZES1"                       8 bytes
//! count    LEB128                           number of entries
//! entries  sorted by key, each:
//!          key       8 bytes                first 8 bytes of the object id
//!          kind      1 byte                 ObjectType number
//!          archived  LEB128                 bytes on the wire (.filez or metadata)
//!          unpacked  LEB128                 bytes once stored uncompressed
//! ```
//!
//! An index is named by its SHA-256 and listed in the signed summary, so
//! it is trusted like everything else the summary names. Keys are id
//! prefixes: a collision (about one in 10^11 for a large OS) would only
//! misstate one object's size, never let a wrong object in.

use crate::{Checksum, ObjectType};

/// File magic.
pub const MAGIC: &[u8; 8] = b"PUSIZES1";
/// Largest index accepted (about four million objects).
pub const MAX_INDEX_SIZE: usize = 64 << 20;

/// Why an index could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizesError {
    /// Wrong magic.
    #[error("not a size index (bad magic)")]
    Magic,
    /// Ends early.
    #[error("size index is truncated at byte {0}")]
    Truncated(usize),
    /// Bytes after the last entry.
    #[error("size index has {0} trailing bytes")]
    Trailing(usize),
    /// Keys out of order or repeated.
    #[error("size index entries are not sorted at entry {0}")]
    Unsorted(usize),
    /// Unknown object kind.
    #[error("size index entry {0} has an unknown object kind")]
    Kind(usize),
    /// A number does not fit 64 bits.
    #[error("size index has an oversized number at byte {0}")]
    Overflow(usize),
    /// Too large.
    #[error("size index is larger than {MAX_INDEX_SIZE} bytes")]
    TooLarge,
    /// An `ostree.sizes` entry of the wrong shape.
    #[error("ostree.sizes entry {0} is malformed")]
    OstreeEntry(usize),
    /// A number written with redundant bytes: only one encoding is valid,
    /// so an index's SHA-256 names exactly one content.
    #[error("size index is not in canonical form")]
    NotCanonical,
}

/// One object's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectSize {
    /// Kind.
    pub kind: ObjectType,
    /// Bytes a client downloads.
    pub archived: u64,
    /// Bytes once stored uncompressed.
    pub unpacked: u64,
}

/// A size index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SizeIndex {
    entries: Vec<([u8; 8], ObjectSize)>,
}

fn key(c: &Checksum) -> [u8; 8] {
    let mut k = [0u8; 8];
    k.copy_from_slice(&c.as_bytes()[..8]);
    k
}

fn put_leb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn get_leb(data: &[u8], pos: &mut usize) -> Result<u64, SizesError> {
    let start = *pos;
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *data.get(*pos).ok_or(SizesError::Truncated(*pos))?;
        *pos += 1;
        let bits = u64::from(b & 0x7f);
        if shift == 63 && bits > 1 {
            return Err(SizesError::Overflow(start));
        }
        v |= bits << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(SizesError::Overflow(start))
}

impl SizeIndex {
    /// Builds an index from (id, sizes) pairs; later duplicates win.
    pub fn new(items: impl IntoIterator<Item = (Checksum, ObjectSize)>) -> SizeIndex {
        let mut entries: Vec<([u8; 8], ObjectSize)> = items.into_iter().map(|(c, s)| (key(&c), s)).collect();
        entries.sort_by_key(|(k, _)| *k);
        entries.dedup_by(|a, b| a.0 == b.0);
        SizeIndex { entries }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The sizes of an object.
    pub fn get(&self, c: &Checksum) -> Option<ObjectSize> {
        let k = key(c);
        self.entries.binary_search_by(|(e, _)| e.cmp(&k)).ok().map(|i| self.entries[i].1)
    }

    /// Serializes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.entries.len() * 14);
        out.extend_from_slice(MAGIC);
        put_leb(&mut out, self.entries.len() as u64);
        for (k, s) in &self.entries {
            out.extend_from_slice(k);
            out.push(s.kind as u8);
            put_leb(&mut out, s.archived);
            put_leb(&mut out, s.unpacked);
        }
        out
    }

    /// Reads OSTree's own size list, the `ostree.sizes` commit metadata
    /// (`ostree commit --generate-sizes`): each entry is the 32-byte object
    /// id, the archived and unpacked sizes as varints, then (in current
    /// OSTree) the object type; older entries have no type and are content.
    pub fn from_ostree_sizes<B: AsRef<[u8]>>(entries: &[B]) -> Result<SizeIndex, SizesError> {
        let mut items = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let e = e.as_ref();
            let id = e.get(..32).and_then(|b| Checksum::from_bytes(b).ok()).ok_or(SizesError::OstreeEntry(i))?;
            let mut pos = 32;
            let archived = get_leb(e, &mut pos).map_err(|_| SizesError::OstreeEntry(i))?;
            let unpacked = get_leb(e, &mut pos).map_err(|_| SizesError::OstreeEntry(i))?;
            let kind = match &e[pos..] {
                [] => ObjectType::File,
                [t] => ObjectType::from_u8(*t).ok_or(SizesError::OstreeEntry(i))?,
                _ => return Err(SizesError::OstreeEntry(i)),
            };
            items.push((id, ObjectSize { kind, archived, unpacked }));
        }
        Ok(SizeIndex::new(items))
    }

    /// Parses and validates an index.
    pub fn from_bytes(data: &[u8]) -> Result<SizeIndex, SizesError> {
        if data.len() > MAX_INDEX_SIZE {
            return Err(SizesError::TooLarge);
        }
        if data.get(..8) != Some(MAGIC.as_slice()) {
            return Err(SizesError::Magic);
        }
        let mut pos = 8;
        let count = get_leb(data, &mut pos)?;
        // Each entry takes at least 11 bytes: refuse absurd counts before allocating.
        if count > ((data.len() - pos) / 11) as u64 {
            return Err(SizesError::Truncated(data.len()));
        }
        let mut entries: Vec<([u8; 8], ObjectSize)> = Vec::with_capacity(count as usize);
        for i in 0..count as usize {
            let k: [u8; 8] =
                data.get(pos..pos + 8).and_then(|s| s.try_into().ok()).ok_or(SizesError::Truncated(pos))?;
            pos += 8;
            let kind =
                ObjectType::from_u8(*data.get(pos).ok_or(SizesError::Truncated(pos))?).ok_or(SizesError::Kind(i))?;
            pos += 1;
            let archived = get_leb(data, &mut pos)?;
            let unpacked = get_leb(data, &mut pos)?;
            if entries.last().is_some_and(|(prev, _)| *prev >= k) {
                return Err(SizesError::Unsorted(i));
            }
            entries.push((k, ObjectSize { kind, archived, unpacked }));
        }
        if pos != data.len() {
            return Err(SizesError::Trailing(data.len() - pos));
        }
        let idx = SizeIndex { entries };
        // Canonical form only (LEB128 without redundant bytes).
        if idx.to_bytes() != data {
            return Err(SizesError::NotCanonical);
        }
        Ok(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rules() {
        let s = |a, u| ObjectSize { kind: ObjectType::File, archived: a, unpacked: u };
        let idx = SizeIndex::new([
            (Checksum::of(b"a"), s(10, 20)),
            (Checksum::of(b"b"), s(300, u64::MAX)),
            (Checksum::of(b"c"), s(0, 0)),
        ]);
        let bytes = idx.to_bytes();
        let back = SizeIndex::from_bytes(&bytes).expect("own encoding parses");
        assert_eq!(back, idx);
        assert_eq!(back.get(&Checksum::of(b"b")), Some(s(300, u64::MAX)));
        assert_eq!(back.get(&Checksum::of(b"d")), None);
        for cut in 0..bytes.len() {
            assert!(SizeIndex::from_bytes(&bytes[..cut]).is_err(), "accepted a {cut}-byte prefix");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(SizeIndex::from_bytes(&longer), Err(SizesError::Trailing(1)));
        // A huge count is refused before allocating.
        let mut huge = MAGIC.to_vec();
        put_leb(&mut huge, u64::MAX >> 1);
        assert!(SizeIndex::from_bytes(&huge).is_err());
    }

    /// `ostree.sizes` of a one-file tree, written by `ostree commit
    /// --generate-sizes` (OSTree 2022.7): a dirmeta, two dirtrees and the
    /// file, each with its type byte; an entry without one is content.
    #[test]
    fn ostree_sizes() {
        let id = |h: &str| Checksum::from_hex(h).expect("hex");
        let hex = |h: &str| hex::decode(h).expect("hex");
        let entries = [
            hex("446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c54880c0c03"),
            hex("4d45b8f10ca8c485c985cef2053db7b22dec9c05f401a7937113237b5c924aa9252502"),
            hex("fbf7cf77a1b50d9f074cb6e9ef6ddb65b6532ea89e4f4ca1b07a05b4cd1be2592703"),
        ];
        let mut entries: Vec<Vec<u8>> = entries.into();
        entries[2].push(1);
        let idx = SizeIndex::from_ostree_sizes(&entries).expect("ostree's sizes parse");
        let get = |h| idx.get(&id(h)).expect("listed");
        let dirmeta = get("446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488");
        assert_eq!((dirmeta.kind, dirmeta.archived, dirmeta.unpacked), (ObjectType::DirMeta, 12, 12));
        let file = get("fbf7cf77a1b50d9f074cb6e9ef6ddb65b6532ea89e4f4ca1b07a05b4cd1be259");
        assert_eq!((file.kind, file.archived, file.unpacked), (ObjectType::File, 39, 3));
        // Pre-2020 entries carry no type.
        let mut old = entries[2].clone();
        old.pop();
        assert_eq!(SizeIndex::from_ostree_sizes(&[old]).expect("old entry").len(), 1);
        // Short ids, truncated varints and trailing bytes are refused.
        for bad in [entries[0][..31].to_vec(), entries[0][..33].to_vec(), [entries[0].clone(), vec![3]].concat()] {
            assert_eq!(SizeIndex::from_ostree_sizes(&[bad]), Err(SizesError::OstreeEntry(0)));
        }
    }
}
