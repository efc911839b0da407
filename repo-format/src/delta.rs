//! Photon deltas: the superblock, the part entry stream, and the canonical
//! list of content objects a delta carries (SPEC.md §11).
//!
//! A delta takes a repository from commit `from` (or from nothing) to commit
//! `to`. It is a signed *superblock* plus *parts*. Part 0 holds the new
//! metadata objects (dirtrees and dirmetas), named. The other parts hold the
//! new content objects, **unnamed**: both sides compute the same ordered
//! list of the content objects `to` has and `from` lacks ([`file_list`]),
//! each files part covers a range of that list, and a reader checks every
//! object it rebuilds against the id at its position before storing it.
//! A content object is stored whole, or as a zstd frame that rebuilds it
//! with an old object as its prefix (`--patch-from`).

use std::collections::HashSet;
use std::io::Read;

use gvariant::aligned_bytes::AsAligned;
use gvariant::{Marker, Structure, gv};

use crate::file::{HEADER_PREFIX_LEN, header_len, parse_stream_header};
use crate::gv::{aligned, check_normal_form};
use crate::metadata::{Metadata, Value};
use crate::{Checksum, Commit, DirTree, Error, FileHeader, Hasher, ObjectType};

const OBJECT: &str = "delta superblock";

/// The superblock format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Largest superblock file accepted (it holds a commit, its detached
/// metadata and one line per part).
pub const MAX_SUPERBLOCK_SIZE: usize = 16 << 20;
/// Largest file header (the `(uuuusa(ayay))` variant) accepted in a part.
pub const MAX_ENTRY_HEADER: u32 = 1 << 20;
/// Largest metadata object accepted in a metadata part.
pub const MAX_ENTRY_METADATA: u32 = 64 << 20;
/// The zstd window (log2) no delta part or patch may exceed: a reader
/// refuses frames that need more, which bounds its memory.
pub const MAX_WINDOW_LOG: u32 = 25;
/// Largest file (old or new version) a patch may rebuild: a reader holds
/// both in memory while it runs the patch.
pub const MAX_PATCH_FILE: u64 = 8 << 20;
/// Directory of photon deltas in a repository, next to OSTree's `deltas/`.
pub const DELTAS_DIR: &str = "photon-deltas";
/// Name of the superblock file in a delta's directory.
pub const SUPERBLOCK_FILE: &str = "superblock";

/// Summary metadata key listing the deltas a repository offers: `a{say}`,
/// delta id → SHA-256 of its superblock body.
pub const SUMMARY_KEY: &str = "photon.deltas";
/// Superblock metadata key: the ref the generator resolved `to` from, `s`.
pub const META_REF: &str = "photon.delta.ref";

/// The id of a delta: `FROM-TO`, or `TO` for a delta from nothing.
pub fn delta_id(from: Option<&Checksum>, to: &Checksum) -> String {
    match from {
        Some(f) => format!("{f}-{to}"),
        None => to.to_hex(),
    }
}

/// Reads a delta id back; `None` if it is not one.
pub fn parse_delta_id(s: &str) -> Option<(Option<Checksum>, Checksum)> {
    match s.split_once('-') {
        Some((f, t)) => Some((Some(Checksum::from_hex(f).ok()?), Checksum::from_hex(t).ok()?)),
        None => Some((None, Checksum::from_hex(s).ok()?)),
    }
}

/// What a part holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    /// Named metadata objects.
    Metadata = 0,
    /// A range of the content list.
    Files = 1,
}

/// One part, as the superblock lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    /// What it holds.
    pub kind: PartKind,
    /// SHA-256 of the part file (the compressed bytes).
    pub checksum: Checksum,
    /// Bytes of the part file.
    pub size: u64,
    /// Bytes of the decompressed entry stream.
    pub uncompressed: u64,
    /// Files: index of its first object in the content list; metadata: 0.
    pub first: u64,
    /// Number of entries.
    pub count: u64,
}

/// A delta's superblock body (what its signatures sign).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// Extensions; [`META_REF`] names the ref `to` came from.
    pub metadata: Metadata,
    /// When the delta was made, seconds since the epoch.
    pub timestamp: u64,
    /// The commit the delta applies to; `None` for a delta from nothing.
    pub from: Option<Checksum>,
    /// The commit it yields.
    pub to: Checksum,
    /// The `to` commit object, so no other request is needed for it.
    pub commit: Vec<u8>,
    /// Its detached metadata (signatures), or empty.
    pub commitmeta: Vec<u8>,
    /// Length of the content list ([`file_list`]).
    pub file_count: u64,
    /// [`list_digest`] of the content list.
    pub file_list_digest: Checksum,
    /// The parts: metadata parts first, then files parts covering the
    /// content list in order.
    pub parts: Vec<PartInfo>,
}

type WirePart<'a> = (u8, &'a [u8], u64, u64, u64, u64);

fn field(field: &'static str, reason: &'static str) -> Error {
    Error::Field { object: OBJECT, field, reason }
}

impl Superblock {
    /// Serializes to normal form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let meta: Vec<(&str, &Value)> = self.metadata.iter().collect();
        let from: &[u8] = self.from.as_ref().map_or(&[], |c| c.as_bytes().as_slice());
        let parts: Vec<WirePart<'_>> = self
            .parts
            .iter()
            .map(|p| {
                (
                    p.kind as u8,
                    p.checksum.as_bytes().as_slice(),
                    p.size.to_le(),
                    p.uncompressed.to_le(),
                    p.first.to_le(),
                    p.count.to_le(),
                )
            })
            .collect();
        gv!("(ua{sv}tayayayaytaya(yaytttt))").serialize_to_vec(&(
            FORMAT_VERSION.to_le(),
            &meta,
            self.timestamp.to_le(),
            from,
            self.to.as_bytes().as_slice(),
            self.commit.as_slice(),
            self.commitmeta.as_slice(),
            self.file_count.to_le(),
            self.file_list_digest.as_bytes().as_slice(),
            &parts,
        ))
    }

    /// Parses and validates a body: normal form, known version, a commit
    /// that hashes to `to`, parts in order that cover the content list.
    pub fn from_bytes(data: &[u8]) -> Result<Superblock, Error> {
        if data.len() > MAX_SUPERBLOCK_SIZE {
            return Err(Error::TooLarge { object: OBJECT, len: data.len(), max: MAX_SUPERBLOCK_SIZE });
        }
        let buf = aligned(OBJECT, data)?;
        let (version, meta, timestamp, from, to, commit, commitmeta, file_count, digest, parts) =
            gv!("(ua{sv}tayayayaytaya(yaytttt))").cast(buf.as_aligned()).to_tuple();
        if u32::from_le(*version) != FORMAT_VERSION {
            return Err(field("version", "not a format version this program reads (1); update photon-upgrade"));
        }
        let csum = |name, raw: &[u8]| {
            Checksum::from_bytes(raw).map_err(|source| Error::Checksum { object: OBJECT, field: name, source })
        };
        let parts = parts
            .iter()
            .map(|p| {
                let (kind, checksum, size, uncompressed, first, count) = p.to_tuple();
                Ok(PartInfo {
                    kind: match kind {
                        0 => PartKind::Metadata,
                        1 => PartKind::Files,
                        _ => return Err(field("part kind", "unknown")),
                    },
                    checksum: csum("part checksum", checksum)?,
                    size: u64::from_le(*size),
                    uncompressed: u64::from_le(*uncompressed),
                    first: u64::from_le(*first),
                    count: u64::from_le(*count),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let sb = Superblock {
            metadata: Metadata::from_entries(meta.iter().map(|e| e.to_tuple()))?,
            timestamp: u64::from_le(*timestamp),
            from: if from.is_empty() { None } else { Some(csum("from", from)?) },
            to: csum("to", to)?,
            commit: commit.to_vec(),
            commitmeta: commitmeta.to_vec(),
            file_count: u64::from_le(*file_count),
            file_list_digest: csum("content list digest", digest)?,
            parts,
        };
        check_normal_form(OBJECT, data, &sb.to_bytes())?;
        sb.check()?;
        Ok(sb)
    }

    fn check(&self) -> Result<(), Error> {
        if Checksum::of(&self.commit) != self.to {
            return Err(field("commit", "does not hash to the delta's `to` commit"));
        }
        Commit::from_bytes(&self.commit)?;
        if !self.commitmeta.is_empty() {
            Metadata::from_bytes_as("commitmeta", &self.commitmeta)?;
        }
        if self.from == Some(self.to) {
            return Err(field("from", "equals `to`"));
        }
        let mut next = 0u64;
        let mut seen_files = false;
        for p in &self.parts {
            match p.kind {
                PartKind::Metadata => {
                    if seen_files {
                        return Err(field("parts", "a metadata part after a files part"));
                    }
                    if p.first != 0 {
                        return Err(field("parts", "a metadata part with a list offset"));
                    }
                }
                PartKind::Files => {
                    seen_files = true;
                    if p.first != next || p.count == 0 {
                        return Err(field("parts", "files parts do not cover the content list in order"));
                    }
                    next = next.checked_add(p.count).ok_or_else(|| field("parts", "entry counts overflow"))?;
                }
            }
            // Every entry takes at least its fixed-size head.
            if p.count.checked_mul(MIN_ENTRY_BYTES).is_none_or(|min| min > p.uncompressed) {
                return Err(field("parts", "more entries than the part's size can hold"));
            }
        }
        if next != self.file_count {
            return Err(field("parts", "files parts do not cover the whole content list"));
        }
        Ok(())
    }

    /// The ref the generator named, if recorded.
    pub fn ref_name(&self) -> Option<String> {
        self.metadata.get_str(META_REF).ok().flatten()
    }

    /// Total bytes of all parts.
    pub fn parts_size(&self) -> u64 {
        self.parts.iter().map(|p| p.size).fold(0u64, u64::saturating_add)
    }
}

/// A superblock file: the body and a signature dictionary
/// (`ostree.sign.ed25519` → `aay`, as in detached commit metadata), as
/// `(aya{sv})`. The signatures sign the body bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedSuperblock {
    /// The serialized [`Superblock`].
    pub body: Vec<u8>,
    /// Signatures.
    pub signatures: Metadata,
}

impl SignedSuperblock {
    /// Serializes to normal form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let meta: Vec<(&str, &Value)> = self.signatures.iter().collect();
        gv!("(aya{sv})").serialize_to_vec(&(self.body.as_slice(), &meta))
    }

    /// Parses the file (not yet the body: see [`Superblock::from_bytes`]).
    pub fn from_bytes(data: &[u8]) -> Result<SignedSuperblock, Error> {
        if data.len() > MAX_SUPERBLOCK_SIZE {
            return Err(Error::TooLarge { object: OBJECT, len: data.len(), max: MAX_SUPERBLOCK_SIZE });
        }
        let buf = aligned(OBJECT, data)?;
        let (body, meta) = gv!("(aya{sv})").cast(buf.as_aligned()).to_tuple();
        let s = SignedSuperblock {
            body: body.to_vec(),
            signatures: Metadata::from_entries(meta.iter().map(|e| e.to_tuple()))?,
        };
        check_normal_form(OBJECT, data, &s.to_bytes())?;
        Ok(s)
    }

    /// The id a summary lists for this superblock: SHA-256 of the body.
    pub fn body_checksum(&self) -> Checksum {
        Checksum::of(&self.body)
    }
}

/// Encodes the summary's delta list ([`SUMMARY_KEY`]).
pub fn summary_value(deltas: &[(String, Checksum)]) -> Value {
    let mut sorted: Vec<(&str, &[u8])> = deltas.iter().map(|(n, c)| (n.as_str(), c.as_bytes().as_slice())).collect();
    sorted.sort();
    sorted.dedup_by(|a, b| a.0 == b.0);
    let data = gv!("a{say}").serialize_to_vec(&sorted);
    Value::from_parts("a{say}", data).unwrap_or_else(|| Value::new_bool(false))
}

/// Decodes the summary's delta list; entries that are not a valid id and
/// a 32-byte checksum are dropped.
pub fn parse_summary_value(v: &Value) -> Option<Vec<(String, Checksum)>> {
    if v.type_str() != "a{say}" {
        return None;
    }
    let buf = aligned(OBJECT, v.data()).ok()?;
    let list = gv!("a{say}").cast(buf.as_aligned());
    let out: Vec<(String, Checksum)> = list
        .iter()
        .filter_map(|e| {
            let (name, csum) = e.to_tuple();
            let name = name.to_str().to_owned();
            parse_delta_id(&name)?;
            Some((name, Checksum::from_bytes(csum).ok()?))
        })
        .collect();
    Some(out)
}

/// One object of the content list, with the path it was first found at
/// (the generator matches old versions by path; readers ignore it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// Content object id.
    pub checksum: Checksum,
    /// Path in `to`, `/`-separated, starting with `/`.
    pub path: String,
}

/// The content list of a delta: the content objects of the tree rooted at
/// `root` that `have` does not contain, each once, in walk order — at each
/// directory its files in stored (byte) order, then its subdirectories in
/// stored order, depth first. Subtrees whose dirtree id is in `have_trees`
/// are skipped: every object in them is reachable from `from` already.
/// `load` returns a dirtree by id. Generator and reader both call this; its
/// result must not depend on anything else.
pub fn file_list<E>(
    root: &Checksum,
    have_trees: &HashSet<Checksum>,
    have: &HashSet<Checksum>,
    mut load: impl FnMut(&Checksum) -> Result<DirTree, E>,
) -> Result<Vec<ListedFile>, E> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    // Explicit stack: a hostile tree cannot overflow the call stack.
    let mut stack: Vec<(Checksum, String)> = vec![(*root, String::new())];
    while let Some((tree, path)) = stack.pop() {
        if have_trees.contains(&tree) {
            continue;
        }
        let t = load(&tree)?;
        for f in t.files() {
            if !have.contains(&f.checksum) && seen.insert(f.checksum) {
                out.push(ListedFile { checksum: f.checksum, path: format!("{path}/{}", f.name.as_str()) });
            }
        }
        for d in t.dirs().iter().rev() {
            stack.push((d.tree, format!("{path}/{}", d.name.as_str())));
        }
    }
    Ok(out)
}

/// Digest of a content list: SHA-256 over its ids in order.
pub fn list_digest<'a>(ids: impl IntoIterator<Item = &'a Checksum>) -> Checksum {
    let mut h = Hasher::new();
    for c in ids {
        h.update(c.as_bytes());
    }
    h.finish()
}

/// Smallest possible entry head (a metadata entry's type, id and length),
/// used to bound entry counts by part sizes.
pub const MIN_ENTRY_BYTES: u64 = 1 + 32 + 4;

/// Why an entry could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// Reading the stream failed (includes decompression errors).
    #[error("reading delta part: {0}")]
    Io(#[from] std::io::Error),
    /// The stream ended inside an entry.
    #[error("delta part is truncated inside an entry")]
    Truncated,
    /// A field is invalid.
    #[error("delta part entry: {0}")]
    Format(#[from] Error),
    /// An entry field breaks a rule.
    #[error("delta part entry: {0}")]
    Invalid(&'static str),
}

fn read_exact(r: &mut dyn Read, buf: &mut [u8]) -> Result<(), EntryError> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof { EntryError::Truncated } else { EntryError::Io(e) }
    })
}

fn read_u32(r: &mut dyn Read) -> Result<u32, EntryError> {
    let mut b = [0; 4];
    read_exact(r, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(r: &mut dyn Read) -> Result<u64, EntryError> {
    let mut b = [0; 8];
    read_exact(r, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn read_checksum(r: &mut dyn Read) -> Result<Checksum, EntryError> {
    let mut b = [0; 32];
    read_exact(r, &mut b)?;
    Ok(Checksum::from_bytes(&b).map_err(|source| Error::Checksum {
        object: "delta entry",
        field: "checksum",
        source,
    })?)
}

/// The head of a metadata-part entry; `len` bytes of the object follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaEntry {
    /// Dirtree or dirmeta.
    pub objtype: ObjectType,
    /// Its id.
    pub checksum: Checksum,
    /// Bytes that follow.
    pub len: u32,
}

impl MetaEntry {
    /// Encodes the head.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MIN_ENTRY_BYTES as usize);
        out.push(self.objtype as u8);
        out.extend_from_slice(self.checksum.as_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out
    }

    /// Reads a head; `Ok(None)` at a clean end of stream.
    pub fn read(r: &mut dyn Read) -> Result<Option<MetaEntry>, EntryError> {
        let mut t = [0u8; 1];
        if r.read(&mut t)? == 0 {
            return Ok(None);
        }
        let objtype = match t[0] {
            2 => ObjectType::DirTree,
            3 => ObjectType::DirMeta,
            _ => return Err(EntryError::Invalid("metadata entry is not a dirtree or dirmeta")),
        };
        let checksum = read_checksum(r)?;
        let len = read_u32(r)?;
        if len > MAX_ENTRY_METADATA {
            return Err(EntryError::Invalid("metadata object larger than the limit"));
        }
        Ok(Some(MetaEntry { objtype, checksum, len }))
    }
}

/// How a content object's bytes are stored in its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `size` bytes of content follow.
    Whole,
    /// A zstd frame of `len` bytes follows; decompressed with the content of
    /// object `source` as its prefix it gives exactly `size` bytes.
    Patch {
        /// The old object the patch is against.
        source: Checksum,
        /// Bytes of the frame.
        len: u64,
    },
}

/// The head of a files-part entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Owner, mode, symlink target, xattrs.
    pub header: FileHeader,
    /// Content bytes of the object (0 for a symlink).
    pub size: u64,
    /// How they are stored.
    pub body: Body,
}

const BODY_WHOLE: u8 = 0;
const BODY_PATCH: u8 = 1;

impl FileEntry {
    /// Encodes the head: body kind, header (stream form, length-prefixed),
    /// size, and for a patch the source id and frame length.
    pub fn encode(&self) -> Vec<u8> {
        let prefix = self.header.to_stream_prefix();
        let mut out = Vec::with_capacity(prefix.len() + 64);
        match self.body {
            Body::Whole => out.push(BODY_WHOLE),
            Body::Patch { .. } => out.push(BODY_PATCH),
        }
        out.extend_from_slice(&prefix);
        out.extend_from_slice(&self.size.to_le_bytes());
        if let Body::Patch { source, len } = self.body {
            out.extend_from_slice(source.as_bytes());
            out.extend_from_slice(&len.to_le_bytes());
        }
        out
    }

    /// Reads a head; `Ok(None)` at a clean end of stream.
    pub fn read(r: &mut dyn Read) -> Result<Option<FileEntry>, EntryError> {
        let mut t = [0u8; 1];
        if r.read(&mut t)? == 0 {
            return Ok(None);
        }
        let kind = t[0];
        if kind != BODY_WHOLE && kind != BODY_PATCH {
            return Err(EntryError::Invalid("unknown content body kind"));
        }
        let mut prefix = [0u8; HEADER_PREFIX_LEN];
        read_exact(r, &mut prefix)?;
        let len = header_len(&prefix).map_err(EntryError::Format)?;
        if len as u64 > u64::from(MAX_ENTRY_HEADER) {
            return Err(EntryError::Invalid("file header larger than the limit"));
        }
        let mut head = prefix.to_vec();
        head.resize(HEADER_PREFIX_LEN + len, 0);
        read_exact(r, &mut head[HEADER_PREFIX_LEN..])?;
        let (header, used) = parse_stream_header(&head)?;
        if used != head.len() {
            return Err(EntryError::Invalid("file header has trailing bytes"));
        }
        header.validate()?;
        let size = read_u64(r)?;
        if header.is_symlink() && size != 0 {
            return Err(EntryError::Invalid("symlink with content"));
        }
        let body = if kind == BODY_PATCH {
            let source = read_checksum(r)?;
            let len = read_u64(r)?;
            if header.is_symlink() {
                return Err(EntryError::Invalid("patch for a symlink"));
            }
            Body::Patch { source, len }
        } else {
            Body::Whole
        };
        Ok(Some(FileEntry { header, size, body }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dirtree::{TreeDir, TreeFile};
    use crate::{ValidName, Xattrs};
    use std::collections::HashMap;

    fn n(s: &str) -> ValidName {
        ValidName::new(s).expect("valid name")
    }

    fn commit() -> (Vec<u8>, Checksum) {
        let c = Commit {
            metadata: Metadata::new(),
            parent: None,
            related: vec![],
            subject: "s".into(),
            body: String::new(),
            timestamp: 5,
            root_tree: Checksum::of(b"t"),
            root_meta: Checksum::of(b"m"),
        };
        let b = c.to_bytes();
        let id = Checksum::of(&b);
        (b, id)
    }

    fn sample() -> Superblock {
        let (commit, to) = commit();
        let mut metadata = Metadata::new();
        metadata.insert(META_REF, Value::new_str("os/stable"));
        Superblock {
            metadata,
            timestamp: 7,
            from: Some(Checksum::of(b"from")),
            to,
            commit,
            commitmeta: Vec::new(),
            file_count: 3,
            file_list_digest: Checksum::of(b"d"),
            parts: vec![
                PartInfo {
                    kind: PartKind::Metadata,
                    checksum: Checksum::of(b"0"),
                    size: 10,
                    uncompressed: 100,
                    first: 0,
                    count: 2,
                },
                PartInfo {
                    kind: PartKind::Files,
                    checksum: Checksum::of(b"1"),
                    size: 10,
                    uncompressed: 1000,
                    first: 0,
                    count: 2,
                },
                PartInfo {
                    kind: PartKind::Files,
                    checksum: Checksum::of(b"2"),
                    size: 10,
                    uncompressed: 1000,
                    first: 2,
                    count: 1,
                },
            ],
        }
    }

    #[test]
    fn superblock_round_trip_and_rules() {
        let sb = sample();
        assert_eq!(Superblock::from_bytes(&sb.to_bytes()), Ok(sb.clone()));
        assert_eq!(sb.ref_name().as_deref(), Some("os/stable"));
        let signed = SignedSuperblock { body: sb.to_bytes(), signatures: Metadata::new() };
        assert_eq!(SignedSuperblock::from_bytes(&signed.to_bytes()), Ok(signed.clone()));

        let bad = |f: &dyn Fn(&mut Superblock)| {
            let mut s = sample();
            f(&mut s);
            Superblock::from_bytes(&s.to_bytes())
        };
        assert!(bad(&|s| s.file_count = 4).is_err(), "parts must cover the list");
        assert!(bad(&|s| s.parts[2].first = 3).is_err(), "no gap");
        assert!(bad(&|s| s.parts.swap(0, 1)).is_err(), "metadata first");
        assert!(bad(&|s| s.to = Checksum::of(b"x")).is_err(), "commit must hash to `to`");
        assert!(bad(&|s| s.parts[1].uncompressed = 3).is_err(), "count bounded by size");
        assert!(bad(&|s| s.from = Some(s.to)).is_err());
        let mut v = sample().to_bytes();
        v[0] = 2;
        assert!(Superblock::from_bytes(&v).is_err(), "unknown version");
        let mut trailing = sample().to_bytes();
        trailing.push(0);
        assert!(Superblock::from_bytes(&trailing).is_err());
    }

    #[test]
    fn ids_and_summary_value() {
        let (a, b) = (Checksum::of(b"a"), Checksum::of(b"b"));
        assert_eq!(parse_delta_id(&delta_id(Some(&a), &b)), Some((Some(a), b)));
        assert_eq!(parse_delta_id(&delta_id(None, &b)), Some((None, b)));
        assert_eq!(parse_delta_id("zz-yy"), None);
        let list = vec![(delta_id(None, &b), a), (delta_id(Some(&a), &b), b)];
        let v = summary_value(&list);
        let mut back = parse_summary_value(&v).expect("decodes");
        back.sort();
        let mut want = list.clone();
        want.sort();
        assert_eq!(back, want);
    }

    #[test]
    fn entries_round_trip() {
        let header =
            FileHeader { uid: 0, gid: 0, mode: 0o100644, symlink_target: String::new(), xattrs: Xattrs::new() };
        for body in [Body::Whole, Body::Patch { source: Checksum::of(b"s"), len: 9 }] {
            let e = FileEntry { header: header.clone(), size: 42, body };
            let enc = e.encode();
            assert_eq!(FileEntry::read(&mut enc.as_slice()).expect("reads"), Some(e));
            for cut in 1..enc.len() {
                assert!(matches!(FileEntry::read(&mut &enc[..cut]), Err(EntryError::Truncated)), "cut at {cut}");
            }
        }
        assert!(FileEntry::read(&mut &[][..]).expect("clean end").is_none());
        let link = FileHeader { mode: 0o120777, symlink_target: "x".into(), ..header.clone() };
        let bad = FileEntry { header: link, size: 3, body: Body::Whole }.encode();
        assert!(matches!(FileEntry::read(&mut bad.as_slice()), Err(EntryError::Invalid(_))));
        let m = MetaEntry { objtype: ObjectType::DirTree, checksum: Checksum::of(b"t"), len: 5 };
        assert_eq!(MetaEntry::read(&mut m.encode().as_slice()).expect("reads"), Some(m));
        let mut wrong = MetaEntry { objtype: ObjectType::DirTree, checksum: Checksum::of(b"t"), len: 5 }.encode();
        wrong[0] = 1;
        assert!(MetaEntry::read(&mut wrong.as_slice()).is_err());
    }

    #[test]
    fn file_list_order_skips_and_dedup() {
        let f = |s: &[u8]| Checksum::of(s);
        let sub = DirTree::new(
            vec![TreeFile { name: n("z"), checksum: f(b"1") }, TreeFile { name: n("y"), checksum: f(b"4") }],
            vec![],
        )
        .expect("tree");
        let old = DirTree::new(vec![TreeFile { name: n("o"), checksum: f(b"9") }], vec![]).expect("tree");
        let root = DirTree::new(
            vec![TreeFile { name: n("b"), checksum: f(b"2") }, TreeFile { name: n("a"), checksum: f(b"1") }],
            vec![
                TreeDir { name: n("s"), tree: sub.checksum(), meta: f(b"m") },
                TreeDir { name: n("old"), tree: old.checksum(), meta: f(b"m") },
            ],
        )
        .expect("tree");
        let trees: HashMap<Checksum, DirTree> =
            [&sub, &old, &root].into_iter().map(|t| (t.checksum(), t.clone())).collect();
        let load = |c: &Checksum| trees.get(c).cloned().ok_or(());
        let have: HashSet<Checksum> = [f(b"2")].into_iter().collect();
        let have_trees: HashSet<Checksum> = [old.checksum()].into_iter().collect();
        let list = file_list(&root.checksum(), &have_trees, &have, load).expect("walks");
        let got: Vec<(&str, Checksum)> = list.iter().map(|l| (l.path.as_str(), l.checksum)).collect();
        // "a" (1) first; "b" (2) is had; /old is skipped; "/s/y" (4); "/s/z" is 1 again.
        assert_eq!(got, vec![("/a", f(b"1")), ("/s/y", f(b"4"))]);
        assert_ne!(list_digest(list.iter().map(|l| &l.checksum)), list_digest([&f(b"4"), &f(b"1")]));
    }
}
