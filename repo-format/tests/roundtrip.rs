//! Property tests for every codec in the crate.
//!
//! * Round trip: for any valid value `x`, `from_bytes(to_bytes(x)) == x`.
//! * Robustness: truncating, extending, overwriting or flipping bytes of a valid
//!   encoding (or feeding plain garbage) never panics, and whenever a parser still
//!   accepts the bytes, re-encoding what it returned gives back exactly those bytes:
//!   every parser accepts only GVariant normal form (SPEC.md §1.3).
//!
//! Case counts are kept small so the file runs in well under a second in a debug build.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::Index;

use repo_format::file::{parse_archive_header, parse_stream_header};
use repo_format::mode::{S_IFDIR, S_IFLNK, S_IFREG};
use repo_format::sizes::{ObjectSize, SizeIndex};
use repo_format::{
    Checksum, Commit, DirMeta, DirTree, FileHeader, Metadata, ObjectType, TreeDir, TreeFile, ValidName, Value, Xattrs,
};

/// Cases per property; `PROPTEST_CASES=20000 cargo test --test roundtrip` digs deeper.
const CASES: u32 = 96;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(CASES);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// Any string without NUL: GVariant `s` cannot hold one.
fn text() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,16}"
}

fn checksum() -> impl Strategy<Value = Checksum> {
    any::<[u8; 32]>().prop_map(Checksum::from_array)
}

fn entry_name() -> impl Strategy<Value = ValidName> {
    "[^\u{0}/]{1,12}".prop_filter_map("'.' and '..' are not entry names", |s| ValidName::new(s).ok())
}

fn xattrs() -> impl Strategy<Value = Xattrs> {
    btree_map(vec(1u8..=255, 1..12), vec(any::<u8>(), 0..20), 0..4)
        .prop_map(|m| Xattrs::from_pairs(m.into_iter().collect()).expect("names are unique, non-empty and NUL-free"))
}

fn dirmeta() -> impl Strategy<Value = DirMeta> {
    (any::<u32>(), any::<u32>(), 0u32..=0o7777, xattrs()).prop_map(|(uid, gid, perm, xattrs)| DirMeta {
        uid,
        gid,
        mode: S_IFDIR | perm,
        xattrs,
    })
}

fn file_header() -> impl Strategy<Value = FileHeader> {
    let target = prop_oneof![Just(String::new()), "[^\u{0}]{1,40}"];
    (any::<u32>(), any::<u32>(), 0u32..=0o7777, target, xattrs()).prop_map(
        |(uid, gid, perm, symlink_target, xattrs)| {
            let kind = if symlink_target.is_empty() { S_IFREG } else { S_IFLNK };
            FileHeader { uid, gid, mode: kind | perm, symlink_target, xattrs }
        },
    )
}

/// A header with the uncompressed size its archive form would declare.
fn sized_header() -> impl Strategy<Value = (FileHeader, u64)> {
    (file_header(), any::<u64>()).prop_map(|(h, size)| {
        let size = if h.is_symlink() { 0 } else { size };
        (h, size)
    })
}

/// The `user.ostreemeta` layout: a `DirMeta` with a file or symlink mode.
fn file_meta() -> impl Strategy<Value = DirMeta> {
    file_header().prop_map(|h| DirMeta { uid: h.uid, gid: h.gid, mode: h.mode, xattrs: h.xattrs })
}

fn fixed(type_str: &str, data: Vec<u8>) -> Value {
    Value::from_parts(type_str, data).expect("a basic type string is valid")
}

/// Variant values of the types OSTree puts in metadata, nested dictionaries included.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        text().prop_map(|s| Value::new_str(&s)),
        vec(text(), 0..4).prop_map(|v| Value::new_strs(&v)),
        any::<bool>().prop_map(Value::new_bool),
        any::<u64>().prop_map(Value::new_u64),
        vec(any::<u8>(), 0..24).prop_map(|b| Value::new_bytes(&b)),
        vec(vec(any::<u8>(), 0..12), 0..4).prop_map(|v| Value::new_byte_arrays(&v)),
        any::<u8>().prop_map(|n| fixed("y", vec![n])),
        any::<u32>().prop_map(|n| fixed("u", n.to_le_bytes().to_vec())),
        any::<i32>().prop_map(|n| fixed("i", n.to_le_bytes().to_vec())),
        any::<i64>().prop_map(|n| fixed("x", n.to_le_bytes().to_vec())),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| metadata_of(inner).prop_map(|m| Value::new_dict(&m)))
}

/// Keys in generated (not sorted) order; a repeated key replaces the first. Keys are
/// never empty: OSTree refuses a commit with an empty key (`ostree_validate_structureof_commit`).
fn metadata_of(values: impl Strategy<Value = Value>) -> impl Strategy<Value = Metadata> {
    vec(("[^\u{0}]{1,16}", values), 0..5).prop_map(|entries| {
        let mut m = Metadata::new();
        for (k, v) in entries {
            m.insert(k, v);
        }
        m
    })
}

fn metadata() -> impl Strategy<Value = Metadata> {
    metadata_of(value())
}

fn dirtree() -> impl Strategy<Value = DirTree> {
    // One map, so no name is both a file and a directory.
    btree_map(entry_name(), (any::<bool>(), checksum(), checksum()), 0..8).prop_map(|entries| {
        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        for (name, (is_file, a, b)) in entries {
            if is_file {
                files.push(TreeFile { name, checksum: a });
            } else {
                dirs.push(TreeDir { name, tree: a, meta: b });
            }
        }
        DirTree::new(files, dirs).expect("unique valid names")
    })
}

fn commit() -> impl Strategy<Value = Commit> {
    (
        metadata(),
        proptest::option::of(checksum()),
        vec((text(), checksum()), 0..3),
        (text(), text(), any::<u64>()),
        checksum(),
        checksum(),
    )
        .prop_map(|(metadata, parent, related, (subject, body, timestamp), root_tree, root_meta)| Commit {
            metadata,
            parent,
            related,
            subject,
            body,
            timestamp,
            root_tree,
            root_meta,
        })
}

/// One way to damage an encoding.
#[derive(Debug, Clone)]
enum Damage {
    /// Keep only a prefix.
    Truncate(Index),
    /// Append bytes.
    Extend(Vec<u8>),
    /// XOR some bytes with non-zero masks.
    Flip(Vec<(Index, u8)>),
    /// Overwrite one byte: framing offsets are often small numbers.
    Set(Index, u8),
    /// Insert bytes in the middle.
    Insert(Index, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<Index>().prop_map(Damage::Truncate),
        vec(any::<u8>(), 1..16).prop_map(Damage::Extend),
        vec((any::<Index>(), 1u8..=255), 1..4).prop_map(Damage::Flip),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Set(i, b)),
        (any::<Index>(), vec(any::<u8>(), 1..8)).prop_map(|(i, b)| Damage::Insert(i, b)),
    ]
}

fn apply(bytes: &[u8], d: &Damage) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match d {
        Damage::Extend(extra) => out.extend_from_slice(extra),
        _ if out.is_empty() => out.push(0xff),
        Damage::Truncate(i) => out.truncate(i.index(bytes.len())),
        Damage::Flip(flips) => flips.iter().for_each(|(i, mask)| out[i.index(bytes.len())] ^= mask),
        Damage::Set(i, b) => out[i.index(bytes.len())] = *b,
        Damage::Insert(i, extra) => {
            let at = i.index(bytes.len() + 1);
            out.splice(at..at, extra.iter().copied());
        }
    }
    out
}

/// Typed accessors on metadata that came from hostile bytes must not panic either.
fn read_every_value(m: &Metadata) {
    for (_, v) in m.iter() {
        let _ = v.decode();
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn size_index_round_trips(items in vec((any::<[u8; 32]>(), 0u8..=5, any::<u64>(), any::<u64>()), 0..64)) {
        let items: Vec<_> = items
            .into_iter()
            .filter_map(|(id, kind, archived, unpacked)| {
                let kind = ObjectType::from_u8(kind)?;
                Some((Checksum::from_bytes(&id).ok()?, ObjectSize { kind, archived, unpacked }))
            })
            .collect();
        let idx = SizeIndex::new(items.iter().copied());
        let bytes = idx.to_bytes();
        prop_assert_eq!(SizeIndex::from_bytes(&bytes), Ok(idx.clone()));
        // Every id is found, with the sizes given last for it.
        for (c, _) in &items {
            let last = items.iter().rev().find(|(d, _)| d.as_bytes()[..8] == c.as_bytes()[..8]).map(|(_, s)| *s);
            prop_assert_eq!(idx.get(c), last);
        }
        // Any strict prefix is refused.
        for cut in 0..bytes.len() {
            prop_assert!(SizeIndex::from_bytes(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn dirmeta_round_trips(m in dirmeta()) {
        prop_assert_eq!(DirMeta::from_bytes(&m.to_bytes()), Ok(m));
    }

    #[test]
    fn file_meta_round_trips(m in file_meta()) {
        prop_assert_eq!(DirMeta::file_meta_from_bytes(&m.to_bytes()), Ok(m));
    }

    #[test]
    fn dirtree_round_trips(t in dirtree()) {
        prop_assert_eq!(DirTree::from_bytes(&t.to_bytes()), Ok(t));
    }

    #[test]
    fn commit_round_trips(c in commit()) {
        prop_assert_eq!(Commit::from_bytes(&c.to_bytes()), Ok(c));
    }

    #[test]
    fn metadata_round_trips(m in metadata()) {
        prop_assert_eq!(Metadata::from_bytes(&m.to_bytes()), Ok(m));
    }

    #[test]
    fn file_header_round_trips((h, size) in sized_header()) {
        let archive = h.to_archive_header(size);
        prop_assert_eq!(parse_archive_header(&archive), Ok((h.clone(), size, archive.len())));
        let stream = h.to_stream_prefix();
        prop_assert_eq!(parse_stream_header(&stream), Ok((h, stream.len())));
    }

    #[test]
    fn damaged_dirmeta_is_refused_or_normal(m in dirmeta(), d in damage()) {
        let bad = apply(&m.to_bytes(), &d);
        if let Ok(back) = DirMeta::from_bytes(&bad) {
            prop_assert_eq!(back.to_bytes(), bad);
        }
    }

    #[test]
    fn damaged_file_meta_is_refused_or_normal(m in file_meta(), d in damage()) {
        let bad = apply(&m.to_bytes(), &d);
        if let Ok(back) = DirMeta::file_meta_from_bytes(&bad) {
            prop_assert_eq!(back.to_bytes(), bad);
        }
    }

    #[test]
    fn damaged_dirtree_is_refused_or_normal(t in dirtree(), d in damage()) {
        let bad = apply(&t.to_bytes(), &d);
        if let Ok(back) = DirTree::from_bytes(&bad) {
            prop_assert_eq!(back.to_bytes(), bad);
        }
    }

    #[test]
    fn damaged_commit_is_refused_or_normal(c in commit(), d in damage()) {
        let bad = apply(&c.to_bytes(), &d);
        if let Ok(back) = Commit::from_bytes(&bad) {
            read_every_value(&back.metadata);
            let _ = back.version();
            prop_assert_eq!(back.to_bytes(), bad);
        }
    }

    #[test]
    fn damaged_metadata_is_refused_or_normal(m in metadata(), d in damage()) {
        let bad = apply(&m.to_bytes(), &d);
        if let Ok(back) = Metadata::from_bytes(&bad) {
            read_every_value(&back);
            prop_assert_eq!(back.to_bytes(), bad);
        }
    }

    #[test]
    fn damaged_archive_header_is_refused_or_normal((h, size) in sized_header(), d in damage()) {
        let bad = apply(&h.to_archive_header(size), &d);
        if let Ok((back, size, used)) = parse_archive_header(&bad) {
            prop_assert_eq!(back.to_archive_header(size), bad[..used].to_vec());
        }
    }

    #[test]
    fn damaged_stream_header_is_refused_or_normal(h in file_header(), d in damage()) {
        let bad = apply(&h.to_stream_prefix(), &d);
        if let Ok((back, used)) = parse_stream_header(&bad) {
            prop_assert_eq!(back.to_stream_prefix(), bad[..used].to_vec());
        }
    }

    /// Bytes that were never an object: every parser refuses them or reads them
    /// in normal form.
    #[test]
    fn garbage_is_refused_or_normal(bad in vec(any::<u8>(), 0..96)) {
        if let Ok(m) = DirMeta::from_bytes(&bad) {
            prop_assert_eq!(m.to_bytes(), bad.clone());
        }
        if let Ok(m) = DirMeta::file_meta_from_bytes(&bad) {
            prop_assert_eq!(m.to_bytes(), bad.clone());
        }
        if let Ok(t) = DirTree::from_bytes(&bad) {
            prop_assert_eq!(t.to_bytes(), bad.clone());
        }
        if let Ok(c) = Commit::from_bytes(&bad) {
            read_every_value(&c.metadata);
            prop_assert_eq!(c.to_bytes(), bad.clone());
        }
        if let Ok(m) = Metadata::from_bytes(&bad) {
            read_every_value(&m);
            prop_assert_eq!(m.to_bytes(), bad.clone());
        }
        if let Ok((h, size, used)) = parse_archive_header(&bad) {
            prop_assert_eq!(h.to_archive_header(size), bad[..used].to_vec());
        }
        if let Ok((h, used)) = parse_stream_header(&bad) {
            prop_assert_eq!(h.to_stream_prefix(), bad[..used].to_vec());
        }
    }
}

// Known gaps, found while writing these tests: the crate accepts commits that
// `ostree pull` (2022.7) refuses. Each input below was served over HTTP to the real
// `ostree pull`, which failed with the message quoted. Run with `--ignored`.

/// A base commit whose metadata gets one bad entry.
fn commit_with(key: &str, value: Value) -> Vec<u8> {
    let mut metadata = Metadata::new();
    metadata.insert("version", Value::new_str("1.0"));
    metadata.insert(key, value);
    let root = Checksum::of(b"root");
    let c = Commit {
        metadata,
        parent: None,
        related: vec![],
        subject: String::new(),
        body: String::new(),
        timestamp: 0,
        root_tree: root,
        root_meta: root,
    };
    c.to_bytes()
}

/// A variant holding arbitrary bytes, to build what a hostile server could send.
struct RawVariant<'a>(&'a str, &'a [u8]);

impl gvariant::SerializeTo<gvariant::Variant> for &RawVariant<'_> {
    fn serialize(self, f: &mut impl std::io::Write) -> std::io::Result<usize> {
        f.write_all(self.1)?;
        f.write_all(b"\0")?;
        f.write_all(self.0.as_bytes())?;
        Ok(self.1.len() + 1 + self.0.len())
    }
}

/// A commit whose metadata holds `key` → a raw (possibly malformed) value.
fn raw_commit_with(key: &str, type_str: &str, data: &[u8]) -> Vec<u8> {
    use gvariant::{Marker, gv};
    let version = RawVariant("s", b"1.0\0");
    let bad = RawVariant(type_str, data);
    let meta: Vec<(&str, &RawVariant<'_>)> = vec![("version", &version), (key, &bad)];
    let root = Checksum::of(b"root");
    let related: Vec<(&str, &[u8])> = vec![];
    gv!("(a{sv}aya(say)sstayay)").serialize_to_vec(&(
        &meta,
        &[][..],
        &related,
        "",
        "",
        0u64,
        root.as_bytes().as_slice(),
        root.as_bytes().as_slice(),
    ))
}

/// OSTree's `validate_variant` (src/libostree/ostree-core.c) runs
/// `g_variant_is_normal_form` over the whole commit, which also looks inside each
/// metadata variant; `Commit::from_bytes` only checks the framing around the
/// variant's bytes. `ostree pull`: "Not normal form".
#[test]
fn commit_with_non_normal_variant_value_is_refused() {
    let bad_values = [
        ("s", vec![b'a', b'b']),  // string without its NUL
        ("u", vec![1, 2, 3]),     // fixed-size type with the wrong size
        ("b", vec![2]),           // boolean byte other than 0 or 1
        ("as", vec![b'a', 0, 9]), // framing offset past the end
    ];
    let accepted: Vec<_> = bad_values
        .into_iter()
        .filter(|(type_str, data)| {
            // The API refuses to build such a value at all...
            let refused_by_api = Value::from_parts(type_str, data.clone()).is_none();
            // ...and the parser refuses a commit that carries one.
            !refused_by_api || Commit::from_bytes(&raw_commit_with("bad", type_str, data)).is_ok()
        })
        .collect();
    assert!(accepted.is_empty(), "accepted non-normal variant values (type, data): {accepted:?}");
}

/// `ostree_validate_structureof_commit` refuses an empty key. `ostree pull`:
/// "Empty metadata key".
#[test]
fn commit_with_empty_metadata_key_is_refused() {
    let bytes = commit_with("", Value::new_str("x"));
    assert!(Commit::from_bytes(&bytes).is_err(), "accepted an empty metadata key");
}
