//! Golden vectors made by the real `ostree` 2022.7 (`tests/vectors/make-vectors.sh`).
//!
//! Every object in `tests/vectors/objects/` must hash to its name, parse, re-encode to
//! the same bytes, and agree with the facts `ostree ls`/`ostree show` reported for it in
//! `tests/vectors/manifest.json`. A vector that does not parse fails the test: nothing
//! is skipped. Regenerate with `bash repo-format/tests/vectors/make-vectors.sh` (root).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::PathBuf;

use flate2::read::DeflateDecoder;
use repo_format::file::{content_checksum, parse_archive_header};
use repo_format::mode::{S_IFMT, S_IFREG, is_symlink};
use repo_format::variant::{Dyn, Type};
use repo_format::{Checksum, Commit, DirMeta, DirTree, FileHeader, Metadata, Value, Xattrs};
use serde_json::Value as Json;

type Result<T = ()> = std::result::Result<T, String>;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn manifest() -> Json {
    let path = vectors_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path).expect("tests/vectors/manifest.json is committed");
    serde_json::from_str(&text).expect("manifest.json is valid JSON")
}

fn objects(manifest: &Json) -> &[Json] {
    manifest["objects"].as_array().expect("manifest has an objects array")
}

/// Manifest entries by file name (`<checksum>.<ext>`).
fn by_file(manifest: &Json) -> BTreeMap<&str, &Json> {
    objects(manifest).iter().map(|o| (o["file"].as_str().expect("every object names its file"), o)).collect()
}

fn read_object(file: &str) -> Result<Vec<u8>> {
    std::fs::read(vectors_dir().join("objects").join(file)).map_err(|e| format!("reading the vector: {e}"))
}

fn field<'a>(o: &'a Json, key: &str) -> Result<&'a Json> {
    o.get(key).ok_or_else(|| format!("manifest entry lacks {key:?}"))
}

fn str_of<'a>(o: &'a Json, key: &str) -> Result<&'a str> {
    field(o, key)?.as_str().ok_or_else(|| format!("manifest {key:?} is not a string"))
}

fn u64_of(o: &Json, key: &str) -> Result<u64> {
    field(o, key)?.as_u64().ok_or_else(|| format!("manifest {key:?} is not a number"))
}

fn u32_of(o: &Json, key: &str) -> Result<u32> {
    u32::try_from(u64_of(o, key)?).map_err(|e| format!("manifest {key:?}: {e}"))
}

fn csum_of(o: &Json, key: &str) -> Result<Checksum> {
    Checksum::from_hex(str_of(o, key)?).map_err(|e| format!("manifest {key:?}: {e}"))
}

/// A mode written in octal, type bits included (`"100644"`).
fn mode_of(o: &Json) -> Result<u32> {
    u32::from_str_radix(str_of(o, "mode")?, 8).map_err(|e| format!("manifest mode: {e}"))
}

fn array_of<'a>(o: &'a Json, key: &str) -> Result<&'a [Json]> {
    field(o, key)?.as_array().map(Vec::as_slice).ok_or_else(|| format!("manifest {key:?} is not an array"))
}

/// xattrs in the order `ostree ls -X` printed them (the wire order).
fn xattrs_of(o: &Json) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    array_of(o, "xattrs")?
        .iter()
        .map(|x| {
            let value = hex::decode(str_of(x, "value_hex")?).map_err(|e| format!("manifest xattr value: {e}"))?;
            Ok((str_of(x, "name")?.as_bytes().to_vec(), value))
        })
        .collect()
}

fn xattr_list(x: &Xattrs) -> Vec<(Vec<u8>, Vec<u8>)> {
    x.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect()
}

fn same<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result {
    if got == want { Ok(()) } else { Err(format!("{what}: parsed {got:?}, ostree says {want:?}")) }
}

/// Re-encoding must give back the input exactly.
fn same_bytes(what: &str, got: &[u8], want: &[u8]) -> Result {
    if got == want {
        return Ok(());
    }
    let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
    Err(format!("{what} differs from the vector at byte {at} (lengths {} vs {})", got.len(), want.len()))
}

/// Metadata objects are named by the SHA-256 of their bytes.
fn hashes_to_name(bytes: &[u8], name: Checksum) -> Result {
    same("sha256 of the bytes", Checksum::of(bytes), name)
}

/// How `ostree show --print-metadata-key` prints a value: GLib's
/// `g_variant_print(.., TRUE)` after `g_variant_byteswap` (ostree's
/// `ot_dump_variant` swaps on little-endian hosts, so numbers show swapped).
fn gvariant_text(v: &Value) -> Result<String> {
    let (ty, d) = v.decode().ok_or_else(|| format!("value of type {} does not decode", v.type_str()))?;
    text(&ty, &d)
}

fn quote(s: &str) -> Result<String> {
    if s.chars().any(|c| c == '\'' || c == '\\' || c.is_control()) {
        Err(format!("string {s:?} needs GVariant escapes this printer does not do"))
    } else {
        Ok(format!("'{s}'"))
    }
}

fn text(ty: &Type, d: &Dyn) -> Result<String> {
    Ok(match (ty, d) {
        (Type::Str, Dyn::Str(s)) => quote(s)?,
        (Type::Bool, Dyn::Bool(b)) => b.to_string(),
        (Type::Byte, Dyn::Byte(b)) => format!("byte 0x{b:02x}"),
        (Type::U32, Dyn::U32(n)) => format!("uint32 {}", n.swap_bytes()),
        (Type::I32, Dyn::I32(n)) => n.swap_bytes().to_string(),
        (Type::U64, Dyn::U64(n)) => format!("uint64 {}", n.swap_bytes()),
        (Type::I64, Dyn::I64(n)) => format!("int64 {}", n.swap_bytes()),
        (Type::Array(t), Dyn::Array(items)) if items.is_empty() => format!(
            "@a{} {}",
            t.to_type_string(),
            match t.as_ref() {
                Type::DictEntry(..) => "{}",
                _ => "[]",
            }
        ),
        (Type::Array(t), Dyn::Array(items)) if **t == Type::Byte => {
            let bytes: Vec<u8> =
                items.iter().filter_map(|b| if let Dyn::Byte(b) = b { Some(*b) } else { None }).collect();
            // GLib prints a NUL-terminated `ay` as b'...'; the vectors hold none.
            if bytes.last() == Some(&0) {
                return Err("NUL-terminated ay: no printer".into());
            }
            let rest: String = bytes[1..].iter().map(|x| format!(", 0x{x:02x}")).collect();
            format!("[byte 0x{:02x}{rest}]", bytes[0])
        }
        (Type::Array(t), Dyn::Array(items)) => match t.as_ref() {
            Type::DictEntry(k, v) => {
                let entries = items.iter().map(|e| match e {
                    Dyn::Tuple(kv) if kv.len() == 2 => Ok(format!("{}: {}", text(k, &kv[0])?, text(v, &kv[1])?)),
                    other => Err(format!("bad dict entry {other:?}")),
                });
                format!("{{{}}}", entries.collect::<Result<Vec<_>>>()?.join(", "))
            }
            _ => format!("[{}]", items.iter().map(|i| text(t, i)).collect::<Result<Vec<_>>>()?.join(", ")),
        },
        (Type::Variant, Dyn::Variant(t, c)) => format!("<{}>", text(t, c)?),
        (t, d) => return Err(format!("no GVariant text printer for type {} ({d:?})", t.to_type_string())),
    })
}

/// Keys in stored order, each with its value as `ostree show` prints it.
fn same_metadata(what: &str, got: &Metadata, o: &Json) -> Result {
    let want: Vec<(String, String)> = array_of(o, "metadata")?
        .iter()
        .map(|kv| Ok((str_of(kv, "key")?.to_owned(), str_of(kv, "text")?.to_owned())))
        .collect::<Result<_>>()?;
    let got: Vec<(String, String)> =
        got.iter().map(|(k, v)| Ok((k.to_owned(), gvariant_text(v)?))).collect::<Result<_>>()?;
    same(what, got, want)
}

fn check_dirmeta(bytes: &[u8], name: Checksum, o: &Json) -> Result {
    hashes_to_name(bytes, name)?;
    let m = DirMeta::from_bytes(bytes).map_err(|e| format!("DirMeta::from_bytes: {e}"))?;
    same_bytes("DirMeta::to_bytes", &m.to_bytes(), bytes)?;
    same("DirMeta::checksum", m.checksum(), name)?;
    same("uid", m.uid, u32_of(o, "uid")?)?;
    same("gid", m.gid, u32_of(o, "gid")?)?;
    same("mode", m.mode, mode_of(o)?)?;
    same("xattrs", xattr_list(&m.xattrs), xattrs_of(o)?)
}

fn check_dirtree(bytes: &[u8], name: Checksum, o: &Json) -> Result {
    hashes_to_name(bytes, name)?;
    let t = DirTree::from_bytes(bytes).map_err(|e| format!("DirTree::from_bytes: {e}"))?;
    same_bytes("DirTree::to_bytes", &t.to_bytes(), bytes)?;
    same("DirTree::checksum", t.checksum(), name)?;
    let files: Vec<(String, Checksum)> = t.files().iter().map(|f| (f.name.to_string(), f.checksum)).collect();
    let want_files = array_of(o, "files")?
        .iter()
        .map(|f| Ok((str_of(f, "name")?.to_owned(), csum_of(f, "checksum")?)))
        .collect::<Result<Vec<_>>>()?;
    same("file entries", files, want_files)?;
    let dirs: Vec<(String, Checksum, Checksum)> =
        t.dirs().iter().map(|d| (d.name.to_string(), d.tree, d.meta)).collect();
    let want_dirs = array_of(o, "dirs")?
        .iter()
        .map(|d| Ok((str_of(d, "name")?.to_owned(), csum_of(d, "tree")?, csum_of(d, "meta")?)))
        .collect::<Result<Vec<_>>>()?;
    same("directory entries", dirs, want_dirs)
}

fn check_commit(bytes: &[u8], name: Checksum, o: &Json) -> Result {
    hashes_to_name(bytes, name)?;
    let c = Commit::from_bytes(bytes).map_err(|e| format!("Commit::from_bytes: {e}"))?;
    same_bytes("Commit::to_bytes", &c.to_bytes(), bytes)?;
    same("Commit::checksum", c.checksum(), name)?;
    let parent = match field(o, "parent")? {
        Json::Null => None,
        _ => Some(csum_of(o, "parent")?),
    };
    same("parent", c.parent, parent)?;
    same("related", c.related.len(), array_of(o, "related")?.len())?;
    same("subject", c.subject.as_str(), str_of(o, "subject")?)?;
    same("body", c.body.as_str(), str_of(o, "body")?)?;
    same("timestamp", c.timestamp, u64_of(o, "timestamp")?)?;
    same("root dirtree", c.root_tree, csum_of(o, "root_tree")?)?;
    same("root dirmeta", c.root_meta, csum_of(o, "root_meta")?)?;
    same("version", c.version().as_deref(), Some(str_of(o, "version")?))?;
    same_metadata("metadata", &c.metadata, o)
}

/// Detached metadata is not content-addressed: it is named after its commit.
fn check_commitmeta(bytes: &[u8], o: &Json) -> Result {
    let m = Metadata::from_bytes(bytes).map_err(|e| format!("Metadata::from_bytes: {e}"))?;
    same_bytes("Metadata::to_bytes", &m.to_bytes(), bytes)?;
    same_metadata("detached metadata", &m, o)
}

/// A `.filez`: header, then raw deflate of the content (nothing for symlinks).
/// Returns the header and the inflated content.
fn read_filez(bytes: &[u8]) -> Result<(FileHeader, Vec<u8>)> {
    let (header, size, used) = parse_archive_header(bytes).map_err(|e| format!("parse_archive_header: {e}"))?;
    same_bytes("FileHeader::to_archive_header", &header.to_archive_header(size), &bytes[..used])?;
    let body = &bytes[used..];
    if header.is_symlink() {
        same("bytes after a symlink header", body.len(), 0)?;
        return Ok((header, Vec::new()));
    }
    let mut inflate = DeflateDecoder::new(body);
    let mut content = Vec::new();
    inflate.read_to_end(&mut content).map_err(|e| format!("inflating the body: {e}"))?;
    same("compressed bytes consumed", inflate.total_in(), body.len() as u64)?;
    same("declared size vs inflated length", size, content.len() as u64)?;
    Ok((header, content))
}

fn check_filez(bytes: &[u8], name: Checksum, o: &Json) -> Result {
    let (h, content) = read_filez(bytes)?;
    h.validate().map_err(|e| format!("FileHeader::validate: {e}"))?;
    same("content checksum", content_checksum(&h, &content), name)?;
    same("uid", h.uid, u32_of(o, "uid")?)?;
    same("gid", h.gid, u32_of(o, "gid")?)?;
    same("mode", h.mode, mode_of(o)?)?;
    same("size", content.len() as u64, u64_of(o, "size")?)?;
    same("symlink target", h.symlink_target.as_str(), str_of(o, "symlink_target")?)?;
    same("xattrs", xattr_list(&h.xattrs), xattrs_of(o)?)
}

/// The bare-user `user.ostreemeta` value of a content object: the same owner,
/// mode and xattrs as the archive header, and together with the content it
/// gives the object id again.
fn check_ostreemeta(bytes: &[u8], name: Checksum, o: &Json) -> Result {
    let m = DirMeta::file_meta_from_bytes(bytes).map_err(|e| format!("DirMeta::file_meta_from_bytes: {e}"))?;
    same_bytes("DirMeta::to_bytes", &m.to_bytes(), bytes)?;
    let (h, content) = read_filez(&read_object(&format!("{name}.filez"))?)?;
    same("uid (vs .filez)", m.uid, h.uid)?;
    same("gid (vs .filez)", m.gid, h.gid)?;
    same("mode (vs .filez)", m.mode, h.mode)?;
    same("xattrs (vs .filez)", &m.xattrs, &h.xattrs)?;
    let rebuilt =
        FileHeader { uid: m.uid, gid: m.gid, mode: m.mode, symlink_target: h.symlink_target.clone(), xattrs: m.xattrs };
    same("content checksum from ostreemeta", content_checksum(&rebuilt, &content), name)?;
    // What bare-user puts on disk (src/libostree/ostree-repo-commit.c): symlinks become
    // 0644 regular files holding the target and its NUL (write_content_object); regular
    // files get (mode & (S_IFREG | 0775)) | S_IRUSR (commit_loose_regfile_object), so
    // setuid/setgid bits live only in the xattr.
    let disk_mode = u32::from_str_radix(str_of(o, "bare_user_mode")?, 8).map_err(|e| e.to_string())?;
    let disk_size = u64_of(o, "bare_user_size")?;
    if is_symlink(h.mode) {
        same("bare-user file mode of a symlink", disk_mode, S_IFREG | 0o644)?;
        same("bare-user file size of a symlink", disk_size, h.symlink_target.len() as u64 + 1)
    } else {
        same("bare-user file mode", disk_mode, (h.mode & (S_IFMT | 0o775)) | 0o400)?;
        same("bare-user file size", disk_size, content.len() as u64)
    }
}

fn check_vector(o: &Json) -> Result {
    let file = str_of(o, "file")?;
    let (stem, ext) = file.split_once('.').ok_or("file name has no extension")?;
    let name = Checksum::from_hex(stem).map_err(|e| format!("file name: {e}"))?;
    same("manifest checksum", csum_of(o, "checksum")?, name)?;
    let bytes = read_object(file)?;
    match (ext, str_of(o, "type")?) {
        ("dirmeta", "dirmeta") => check_dirmeta(&bytes, name, o),
        ("dirtree", "dirtree") => check_dirtree(&bytes, name, o),
        ("commit", "commit") => check_commit(&bytes, name, o),
        ("commitmeta", "commitmeta") => check_commitmeta(&bytes, o),
        ("filez", "file") => check_filez(&bytes, name, o),
        ("ostreemeta", "ostreemeta") => check_ostreemeta(&bytes, name, o),
        (ext, ty) => Err(format!("no check for extension {ext:?} with manifest type {ty:?}")),
    }
}

#[test]
fn every_vector_parses_hashes_and_round_trips() {
    let manifest = manifest();
    let failures: Vec<String> = objects(&manifest)
        .iter()
        .filter_map(|o| check_vector(o).err().map(|e| format!("{}: {e}", o["file"])))
        .collect();
    assert!(failures.is_empty(), "{} vector(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn manifest_lists_exactly_the_files_on_disk() {
    let manifest = manifest();
    let listed: BTreeSet<String> = by_file(&manifest).keys().map(|s| (*s).to_owned()).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(vectors_dir().join("objects"))
        .expect("tests/vectors/objects exists")
        .map(|e| e.expect("readable directory entry").file_name().into_string().expect("ASCII object names"))
        .collect();
    assert_eq!(listed, on_disk);
}

/// The objects reference each other the way a repository's do: every tree
/// entry, root and parent is itself a vector, and the detached metadata
/// belongs to a commit.
#[test]
fn vectors_form_closed_commit_graphs() {
    let manifest = manifest();
    let files = by_file(&manifest);
    let mut missing = Vec::new();
    let mut need = |id: Checksum, ext: &str, from: &str| {
        if !files.contains_key(format!("{id}.{ext}").as_str()) {
            missing.push(format!("{id}.{ext} (from {from})"));
        }
    };
    for (file, o) in &files {
        let bytes = read_object(file).expect("listed vectors exist");
        if file.ends_with(".commit") {
            let c = Commit::from_bytes(&bytes).expect("commit vectors parse");
            need(c.root_tree, "dirtree", file);
            need(c.root_meta, "dirmeta", file);
            if let Some(p) = c.parent {
                need(p, "commit", file);
            }
        } else if file.ends_with(".dirtree") {
            let t = DirTree::from_bytes(&bytes).expect("dirtree vectors parse");
            t.files().iter().for_each(|f| need(f.checksum, "filez", file));
            for d in t.dirs() {
                need(d.tree, "dirtree", file);
                need(d.meta, "dirmeta", file);
            }
        } else if file.ends_with(".commitmeta") {
            need(csum_of(o, "checksum").expect("commitmeta names its commit"), "commit", file);
        }
    }
    assert!(missing.is_empty(), "dangling references: {missing:#?}");
    let commits: Vec<&str> =
        manifest["commits"].as_array().expect("commits list").iter().filter_map(Json::as_str).collect();
    let [first, second] = commits[..] else { panic!("expected two commits, got {commits:?}") };
    let second = Commit::from_bytes(&read_object(&format!("{second}.commit")).expect("second commit vector"))
        .expect("second commit parses");
    assert_eq!(second.parent.map(|p| p.to_hex()).as_deref(), Some(first), "second commit's parent");
}

/// Guards the generator: regenerating must not quietly drop a case the brief
/// asks the vectors to cover.
#[test]
fn vectors_cover_the_interesting_cases() {
    let manifest = manifest();
    let of_type = |t: &'static str| objects(&manifest).iter().filter(move |o| o["type"] == t);
    let files: Vec<&Json> = of_type("file").collect();
    let mode = |o: &Json| mode_of(o).expect("manifest modes are octal");
    let has = |what: &str, pred: &dyn Fn(&Json) -> bool| {
        assert!(files.iter().any(|o| pred(o)), "no content vector with {what}");
    };
    for perm in [0o644, 0o755, 0o4755, 0o600] {
        has(&format!("mode {perm:o}"), &|o| mode(o) == S_IFREG | perm);
    }
    has("empty content", &|o| mode(o) & S_IFMT == S_IFREG && o["size"] == 0);
    has("a relative symlink", &|o| o["symlink_target"].as_str().is_some_and(|t| !t.is_empty() && !t.starts_with('/')));
    has("an absolute symlink", &|o| o["symlink_target"].as_str().is_some_and(|t| t.starts_with('/')));
    has("user xattrs", &|o| o["xattrs"].as_array().is_some_and(|x| !x.is_empty()));
    has("a non-zero uid and gid", &|o| o["uid"] != 0 && o["gid"] != 0);
    has("two hardlinked paths", &|o| o["paths"].as_array().is_some_and(|p| p.len() >= 2));
    has("a non-ASCII name", &|o| {
        o["paths"].as_array().is_some_and(|p| p.iter().filter_map(Json::as_str).any(|p| !p.is_ascii()))
    });
    assert!(of_type("dirmeta").any(|o| o["xattrs"].as_array().is_some_and(|x| !x.is_empty())), "no dirmeta xattrs");
    let deepest = of_type("dirtree")
        .flat_map(|o| o["paths"].as_array().into_iter().flatten().filter_map(Json::as_str))
        .map(|p| p.matches('/').count())
        .max();
    assert!(deepest >= Some(4), "nesting too shallow: {deepest:?}");
    assert!(of_type("dirtree").any(|o| o["files"] == Json::Array(vec![]) && o["dirs"] == Json::Array(vec![])));
    assert_eq!(of_type("commit").count(), 2);
    assert_eq!(of_type("commitmeta").count(), 1);
    assert!(of_type("ostreemeta").count() >= 4);
}
