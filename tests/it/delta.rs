//! Photon deltas and bundles (SPEC.md §11) end to end: a publisher makes
//! signed deltas, clients pull through them from nginx or apply bundles
//! offline, and get exactly what an object pull gets; broken or hostile
//! deltas are refused with the repository left as it was (refs, objects,
//! fsck); an interrupted part download resumes; without a usable delta the
//! pull falls back to objects.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use repo_format::delta::{self as fmt, Body, FileEntry, PartKind, SignedSuperblock, Superblock};
use repo_format::sign::{self as sigfmt, SecretKey};
use repo_format::{Checksum, Metadata, Summary};

use crate::server::Nginx;
use crate::util::*;

const REF: &str = "os/stable";

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn put(root: &Path, rel: &str, data: &[u8], mode: u32) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
    fs::write(&p, data).expect("writing a tree file");
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn link(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
    symlink(target, p).expect("symlink");
}

/// Version `v` (1 or 2) of a small OS: three dozen small files, a few
/// incompressible libraries (50–500 kB), an executable, an empty file,
/// symlinks. v2 changes a library slightly (a patch), moves a kernel
/// module to a new version directory and changes it slightly (a patch
/// found by path shape), adds files and a symlink, drops a file.
fn write_tree(root: &Path, v: u32) {
    let _ = fs::remove_dir_all(root);
    for i in 0..30 {
        let text = format!("package {i}\n{}", "Lorem ipsum dolor sit amet.\n".repeat(i + 1));
        put(root, &format!("usr/share/doc/pkg{i}/README"), text.as_bytes(), 0o644);
    }
    for (i, len) in [(1u64, 50_000usize), (2, 120_000), (3, 500_000)] {
        put(root, &format!("usr/lib/lib{i}.so.{i}"), &noise(100 + i, len), 0o755);
    }
    let mut lib = noise(7, 400_000);
    if v == 2 {
        lib[1000..1016].copy_from_slice(b"version two here");
        lib.extend_from_slice(b"appended in v2");
    }
    put(root, "usr/lib/libchanging.so.1", &lib, 0o644);
    let kver = if v == 1 { "6.1.0-13" } else { "6.1.0-15" };
    put(root, &format!("lib/modules/{kver}/kernel/x.ko"), &kernel_module(v), 0o644);
    put(root, "usr/bin/tool", format!("#!/bin/sh\necho tool {v}\n").as_bytes(), 0o755);
    put(root, "etc/os-release", format!("NAME=Sample\nVERSION_ID={v}\n").as_bytes(), 0o644);
    put(root, "etc/empty", b"", 0o644);
    link(root, "usr/bin/tool-link", "tool");
    link(root, "etc/localtime", "/usr/share/zoneinfo/UTC");
    // The same bytes in both versions, but an xattr (then a mode) that
    // changes: new objects whose content an old one already has.
    let motd = "Welcome to the sample OS.\n".repeat(80);
    put(root, "etc/motd", motd.as_bytes(), if v == 1 { 0o644 } else { 0o640 });
    put(root, "etc/issue", motd.as_bytes(), 0o644);
    sh("setfattr", &["-n", "user.release", "-v", &format!("v{v}"), s(&root.join("etc/issue"))]).ok();
    sh("setfattr", &["-n", "user.dir", "-v", "etc", s(&root.join("etc"))]).ok();
    if v == 1 {
        put(root, "usr/lib/old-only.bin", &noise(11, 80_000), 0o644);
    } else {
        put(root, "usr/lib/new-in-v2.bin", &noise(12, 250_000), 0o644);
        put(root, "usr/share/doc/new/README", b"new in v2\n", 0o644);
        link(root, "usr/lib/libnew.so", "new-in-v2.bin");
    }
}

/// The kernel module of version `v`: v2 differs from v1 in a few bytes.
fn kernel_module(v: u32) -> Vec<u8> {
    let mut ko = noise(9, 300_000);
    if v == 2 {
        ko[5000] ^= 0x55;
        ko[200_000..200_008].copy_from_slice(b"v2 patch");
    }
    ko
}

fn json(r: &Run) -> serde_json::Value {
    let out = r.ok();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {out}", r.what))
}

/// A publisher: an archive repository, a trusted key and another one.
struct Pub {
    scratch: Scratch,
    repo: PathBuf,
    key: PathBuf,
    key2: PathBuf,
    v1: String,
    v2: String,
}

impl Pub {
    /// Publishes v1 signed, its from-empty delta signed, a signed summary.
    fn new() -> Pub {
        let scratch = Scratch::new();
        let repo = scratch.join("pub");
        let (key, key2) = (scratch.join("key"), scratch.join("key2"));
        pu(["repo", "keygen", "-o", s(&key)]).ok();
        pu(["repo", "keygen", "-o", s(&key2)]).ok();
        pur(&repo, ["repo", "init", "--mode", "archive"]).ok();
        let mut p = Pub { scratch, repo, key, key2, v1: String::new(), v2: String::new() };
        p.v1 = p.commit(1, "100", REF);
        p.generate(None, &p.v1.clone());
        p.summary();
        p
    }

    fn pubkey(&self) -> PathBuf {
        self.scratch.join("key.pub")
    }

    fn pubkey2(&self) -> PathBuf {
        self.scratch.join("key2.pub")
    }

    fn commit(&self, v: u32, ts: &str, branch: &str) -> String {
        let tree = self.scratch.join(format!("tree-{v}"));
        write_tree(&tree, v);
        let version = format!("{v}.0");
        pur(
            &self.repo,
            ["repo", "commit", "-b", branch, "--version", &version, "--timestamp", ts, "--sign-key", s(&self.key)]
                .into_iter()
                .chain([s(&tree)]),
        )
        .ok()
    }

    /// Generates and signs a delta; returns `repo delta generate --json`.
    fn generate(&self, from: Option<&str>, to: &str) -> serde_json::Value {
        let mut args = vec!["--json", "repo", "delta", "generate", "--to", to, "--sign-key", s(&self.key)];
        match from {
            Some(f) => args.extend(["--from", f]),
            None => args.push("--empty"),
        }
        json(&pur(&self.repo, args))
    }

    fn summary(&self) {
        pur(&self.repo, ["repo", "summary", "--update", "--sign-key", s(&self.key)]).ok();
    }

    /// Publishes v2 with its update delta from v1 and a from-empty delta,
    /// both signed; returns the update delta's `generate --json`.
    fn publish_v2(&mut self) -> serde_json::Value {
        self.v2 = self.commit(2, "200", REF);
        let (v1, v2) = (self.v1.clone(), self.v2.clone());
        let g = self.generate(Some(&v1), &v2);
        self.generate(None, &v2);
        self.summary();
        g
    }

    fn update_id(&self) -> String {
        format!("{}-{}", self.v1, self.v2)
    }

    fn secret(&self, key: &Path) -> SecretKey {
        sigfmt::parse_secret_key(&fs::read_to_string(key).expect("reading a secret key")).expect("a secret key")
    }
}

/// A copy of the publisher's repository that nginx serves and tests break.
struct Served {
    dir: PathBuf,
    pristine: PathBuf,
    key: SecretKey,
    key_path: PathBuf,
}

impl Served {
    fn new(p: &Pub) -> Served {
        let s = Served {
            dir: p.scratch.join("served"),
            pristine: p.repo.clone(),
            key: p.secret(&p.key),
            key_path: p.key.clone(),
        };
        s.reset();
        s
    }

    /// Back to exactly what the publisher published.
    fn reset(&self) {
        copy_tree(&self.pristine, &self.dir);
    }

    fn delta_dir(&self, id: &str) -> PathBuf {
        self.dir.join(fmt::DELTAS_DIR).join(id)
    }

    fn part_path(&self, id: &str, n: usize) -> PathBuf {
        self.delta_dir(id).join(format!("part-{n}"))
    }

    fn read_superblock(&self, id: &str) -> (SignedSuperblock, Superblock) {
        let raw = fs::read(self.delta_dir(id).join(fmt::SUPERBLOCK_FILE)).expect("reading a superblock");
        let signed = SignedSuperblock::from_bytes(&raw).expect("a superblock file");
        let sb = Superblock::from_bytes(&signed.body).expect("a superblock body");
        (signed, sb)
    }

    /// Writes `sb` as delta `id`'s superblock, signed by `keys`.
    fn write_superblock(&self, id: &str, sb: &Superblock, keys: &[&SecretKey]) {
        let body = sb.to_bytes();
        self.write_signed(id, body, keys);
    }

    fn write_signed(&self, id: &str, body: Vec<u8>, keys: &[&SecretKey]) {
        let mut signatures = Metadata::new();
        for k in keys {
            sigfmt::add_signature(&mut signatures, &k.sign(&body)).expect("adding a signature");
        }
        let file = SignedSuperblock { body, signatures }.to_bytes();
        fs::write(self.delta_dir(id).join(fmt::SUPERBLOCK_FILE), file).expect("writing a superblock");
    }

    /// `repo summary --update`, signed by the trusted key: the summary
    /// names every superblock body as it now is.
    fn resummary(&self) {
        pur(&self.dir, ["repo", "summary", "--update", "--sign-key", s(&self.key_path)]).ok();
    }

    /// Writes `summary` and a `summary.sig` by the trusted key.
    fn write_summary(&self, summary: &Summary) {
        let bytes = summary.to_bytes();
        let mut sig = Metadata::new();
        sigfmt::add_signature(&mut sig, &self.key.sign(&bytes)).expect("signing the summary");
        fs::write(self.dir.join("summary"), &bytes).expect("writing summary");
        fs::write(self.dir.join("summary.sig"), sig.to_bytes()).expect("writing summary.sig");
    }

    /// Decompresses part `n` of delta `id`.
    fn part_stream(&self, id: &str, n: usize) -> Vec<u8> {
        zstd::decode_all(fs::read(self.part_path(id, n)).expect("reading a part").as_slice()).expect("a zstd part")
    }

    /// Replaces part `n`'s file with `file`, and puts its size and SHA-256
    /// (and `uncompressed`, if given) in the superblock, which is re-signed
    /// by the trusted key; then the summary is regenerated. Everything
    /// checks out but what the part holds.
    fn replace_part(&self, id: &str, n: usize, file: &[u8], uncompressed: Option<u64>) {
        fs::write(self.part_path(id, n), file).expect("writing a part");
        let (_, mut sb) = self.read_superblock(id);
        sb.parts[n].checksum = Checksum::of(file);
        sb.parts[n].size = file.len() as u64;
        if let Some(u) = uncompressed {
            sb.parts[n].uncompressed = u;
        }
        self.write_superblock(id, &sb, &[&self.key]);
        self.resummary();
    }

    /// Re-encodes part `n` from `stream` (its decompressed bytes), as the
    /// signed superblock then describes it, declared `uncompressed` bytes
    /// kept unless given.
    fn reencode_part(&self, id: &str, n: usize, stream: &[u8], uncompressed: Option<u64>) {
        let file = zstd::encode_all(stream, 3).expect("zstd");
        self.replace_part(id, n, &file, uncompressed);
    }

    /// The files parts of delta `id` (index in the superblock).
    fn files_parts(&self, id: &str) -> Vec<usize> {
        let (_, sb) = self.read_superblock(id);
        (0..sb.parts.len()).filter(|&n| sb.parts[n].kind == PartKind::Files).collect()
    }
}

/// One entry of a decompressed files part.
struct Entry {
    /// Offset of its head in the stream.
    at: usize,
    head: FileEntry,
    head_len: usize,
    /// Bytes of its body (content or patch frame).
    body_len: usize,
}

/// Splits a decompressed files part into its entries.
fn entries(stream: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let mut r = &stream[at..];
        let before = r.len();
        let head = FileEntry::read(&mut r).expect("an entry head").expect("not at the end");
        let head_len = before - r.len();
        let body_len = match head.body {
            Body::Whole => head.size as usize,
            Body::Patch { len, .. } => len as usize,
        };
        out.push(Entry { at, head, head_len, body_len });
        at += head_len + body_len;
    }
    assert_eq!(at, stream.len(), "entries end exactly at the end of the part");
    out
}

/// A client repository with remote `origin` trusting the publisher's key.
fn client(dir: &Path, mode: &str, url: &str, pubkey: &Path) -> PathBuf {
    pur(dir, ["repo", "init", "--mode", mode]).ok();
    pur(dir, ["remote", "add", "origin", url, "--trusted-key", s(pubkey)]).ok();
    dir.to_owned()
}

fn pull(c: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["--json", "pull", "origin", REF];
    args.extend(extra);
    pur(c, args)
}

fn rev(c: &Path, r: &str) -> String {
    pur(c, ["repo", "rev-parse", r]).ok()
}

/// Refs and every object file: what a refused operation must not change.
fn state(c: &Path) -> (String, Vec<PathBuf>) {
    (pur(c, ["--json", "repo", "refs"]).ok(), object_files(c))
}

/// Runs `r` (a refused command on repository `c`): exit 1, one `error:`
/// line and nothing else on stderr, naming every one of `words`; refs and
/// objects as before; `repo fsck` clean. Returns the error line.
#[track_caller]
fn refused(c: &Path, what: &str, words: &[&str], run: impl FnOnce() -> Run) -> String {
    let before = state(c);
    let r = run();
    let line = r.error_line();
    eprintln!("{what}: refused as expected: {line}");
    assert_eq!(r.stderr().trim_end().lines().count(), 1, "{what}: more than the error line:\n{}", r.stderr());
    for w in words {
        assert!(line.contains(w), "{what}: the error line does not name {w:?}:\n{line}");
    }
    let after = state(c);
    assert_eq!(after.0, before.0, "{what}: refs moved ({line})");
    let new: Vec<_> = after.1.iter().filter(|o| !before.1.contains(o)).collect();
    assert!(new.is_empty() && after.1.len() == before.1.len(), "{what}: objects changed: new {new:?} ({line})");
    pur(c, ["repo", "fsck"]).ok();
    line
}

fn paths(n: &Nginx) -> Vec<String> {
    n.hits().into_iter().map(|h| h.path).collect()
}

/// Every request of a delta pull is the summary, a commit, a superblock
/// or a part: no object walk.
#[track_caller]
fn only_delta_requests(n: &Nginx, ids: &[&str]) {
    for p in paths(n) {
        let ok = p == "/summary"
            || p == "/summary.sig"
            || (p.starts_with("/objects/") && (p.ends_with(".commit") || p.ends_with(".commitmeta")))
            || ids.iter().any(|id| {
                p == format!("/photon-deltas/{id}/superblock")
                    || p.strip_prefix(&format!("/photon-deltas/{id}/part-"))
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            });
        assert!(ok, "a delta pull requested {p}; all requests: {:?}", paths(n));
    }
}

// ---------------------------------------------------------------------------
// 1. Round trip and interop.

/// From nothing to v1 through the from-empty delta, then v1 to v2 through
/// the update delta, into bare-user and archive clients: the same commits
/// and trees as an object pull, a handful of requests, no object walk, a
/// clean fsck for both tools.
#[test]
fn pull_through_deltas_equals_object_pull() {
    require_root();
    let mut p = Pub::new();
    let nginx = Nginx::serve(&p.repo, p.scratch.path_buf());
    let url = nginx.url();
    let modes = ["bare-user", "bare", "archive"];
    let clients: Vec<PathBuf> =
        modes.iter().map(|m| client(&p.scratch.join(format!("client-{m}")), m, &url, &p.pubkey())).collect();
    let reference = client(&p.scratch.join("reference"), "bare-user", &url, &p.pubkey());

    for c in &clients {
        nginx.clear_log();
        let doc = json(&pull(c, &[]));
        assert_eq!(doc["deltas"], serde_json::json!([p.v1]), "the from-empty delta: {doc}");
        assert_eq!(doc["refs"][0]["new"], p.v1.as_str(), "{doc}");
        only_delta_requests(&nginx, &[&p.v1]);
    }
    nginx.clear_log();
    let doc = json(&pull(&reference, &["--disable-deltas"]));
    assert!(doc.get("deltas").is_none(), "--disable-deltas used a delta: {doc}");
    assert!(!paths(&nginx).iter().any(|h| h.contains("photon-deltas")), "{:?}", paths(&nginx));

    let g = p.publish_v2();
    // The library, the moved module, the file whose mode changed and the
    // one whose xattr changed.
    assert_eq!(g["patched"].as_u64(), Some(4), "the fixture must make patches: {g}");
    let update = p.update_id();
    // A dry run plans the superblock and the parts, nothing else.
    let show = json(&pur(&p.repo, ["--json", "repo", "delta", "show", &update]));
    let mut want: Vec<(String, u64)> = show["partList"]
        .as_array()
        .expect("parts")
        .iter()
        .map(|x| (x["checksum"].as_str().expect("checksum").to_owned(), x["size"].as_u64().expect("size")))
        .collect();
    let plan = json(&pull(&clients[0], &["--dry-run"]));
    assert_eq!(plan["deltas"], serde_json::json!([update]), "{plan}");
    let planned = |kind: &str| -> Vec<(String, u64)> {
        plan["plan"]
            .as_array()
            .expect("a plan")
            .iter()
            .filter(|o| o["type"] == kind)
            .map(|o| (o["checksum"].as_str().expect("checksum").to_owned(), o["bytes"].as_u64().expect("bytes")))
            .collect()
    };
    let mut parts = planned("delta-part");
    parts.sort();
    want.sort();
    assert_eq!(parts, want, "{plan}");
    assert_eq!(planned("delta-superblock").len(), 1, "{plan}");
    let other: Vec<_> = plan["plan"]
        .as_array()
        .expect("a plan")
        .iter()
        .filter(|o| {
            !["delta-part", "delta-superblock", "commit", "commitmeta"].contains(&o["type"].as_str().unwrap_or(""))
        })
        .collect();
    assert!(other.is_empty(), "objects planned besides the delta: {other:?}");
    assert_eq!(rev(&clients[0], &format!("origin:{REF}")), p.v1, "a dry run moved the ref");

    let mut delta_bytes = Vec::new();
    for c in &clients {
        nginx.clear_log();
        let doc = json(&pull(c, &[]));
        delta_bytes.push(doc["bytes"].as_u64().expect("bytes"));
        assert_eq!(doc["deltas"], serde_json::json!([update]), "the update delta: {doc}");
        assert_eq!(doc["refs"][0]["old"], p.v1.as_str(), "{doc}");
        assert_eq!(doc["refs"][0]["new"], p.v2.as_str(), "{doc}");
        let requests = doc["requests"].as_u64().expect("requests");
        assert!(requests <= 10, "{requests} requests for an update through a delta: {:?}", paths(&nginx));
        assert_eq!(nginx.hits().len() as u64, requests, "the report's request count: {:?}", paths(&nginx));
        assert!(doc["bytes"].as_u64().expect("bytes") > 0, "{doc}");
        only_delta_requests(&nginx, &[&update]);
    }
    nginx.clear_log();
    let doc = json(&pull(&reference, &["--disable-deltas"]));
    assert!(!paths(&nginx).iter().any(|h| h.contains("photon-deltas")), "{:?}", paths(&nginx));
    // The patches pay: the changed library and the moved module cost a
    // fraction of their size.
    let objects_bytes = doc["bytes"].as_u64().expect("bytes");
    for b in delta_bytes {
        assert!(b * 10 < objects_bytes * 6, "the update delta took {b} bytes, objects {objects_bytes}");
    }

    // OSTree ignores the deltas and the summary key listing them.
    let theirs = p.scratch.join("ostree-client");
    let o = |args: &[&str]| {
        let mut v = vec![format!("--repo={}", theirs.display())];
        v.extend(args.iter().map(|a| (*a).to_owned()));
        ostree(v)
    };
    o(&["init", "--mode=bare-user"]).ok();
    o(&["remote", "add", "--no-gpg-verify", "origin", &url]).ok();
    o(&["pull", "origin", REF]).ok();
    assert_eq!(o(&["rev-parse", &format!("origin:{REF}")]).ok(), p.v2);

    for (c, mode) in clients.iter().zip(modes) {
        assert_eq!(rev(c, &format!("origin:{REF}")), p.v2, "{mode}");
        assert_eq!(rev(c, &format!("origin:{REF}")), rev(&reference, &format!("origin:{REF}")));
        for v in [&p.v1, &p.v2] {
            assert_eq!(
                pur(c, ["repo", "ls", "-R", v]).ok(),
                pur(&reference, ["repo", "ls", "-R", v]).ok(),
                "{mode}: tree of {v} differs from the object pull's"
            );
        }
        pur(c, ["repo", "fsck"]).ok();
        ostree([&format!("--repo={}", c.display()), "fsck"]).ok();
        pur(c, ["repo", "verify", &p.v2, "--trusted-key", s(&p.pubkey())]).ok();
    }
    // The checked-out tree is the one committed.
    let co = p.scratch.join("co");
    pur(&clients[0], ["repo", "checkout", &p.v2, s(&co)]).ok();
    assert_eq!(describe_tree(&co, false), describe_tree(&p.scratch.join("tree-2"), false));

    // A rebuild of the same tree: a delta with no parts, still used.
    let v3 = pur(
        &p.repo,
        ["repo", "commit", "-b", REF, "--timestamp", "300", "--sign-key", s(&p.key), s(&p.scratch.join("tree-2"))],
    )
    .ok();
    let g = p.generate(Some(&p.v2), &v3);
    assert_eq!(g["parts"].as_u64(), Some(0), "{g}");
    p.summary();
    nginx.clear_log();
    let doc = json(&pull(&clients[0], &[]));
    assert_eq!(doc["deltas"], serde_json::json!([format!("{}-{v3}", p.v2)]), "{doc}");
    assert_eq!(rev(&clients[0], &format!("origin:{REF}")), v3);
    pur(&clients[0], ["repo", "fsck"]).ok();
}

// ---------------------------------------------------------------------------
// 2. Refusals.

/// A publisher at v2, a server copy to break, a client at v1 (update
/// delta) and an empty one (from-empty delta).
struct Refusals {
    p: Pub,
    served: Served,
    /// Serves `served` (kept running for the test's length).
    _nginx: Nginx,
    at_v1: PathBuf,
    empty: PathBuf,
}

impl Refusals {
    fn new() -> Refusals {
        require_root();
        let mut p = Pub::new();
        let served = Served::new(&p);
        let nginx = Nginx::serve(&served.dir, p.scratch.path_buf());
        let at_v1 = client(&p.scratch.join("at-v1"), "bare-user", &nginx.url(), &p.pubkey());
        pull(&at_v1, &[]).ok();
        assert_eq!(rev(&at_v1, &format!("origin:{REF}")), p.v1);
        p.publish_v2();
        served.reset();
        let empty = client(&p.scratch.join("empty"), "bare-user", &nginx.url(), &p.pubkey());
        Refusals { p, served, _nginx: nginx, at_v1, empty }
    }

    /// Pulls into `c` (which must refuse); then puts the server back and
    /// checks the same client now pulls through the delta: the refusal
    /// was the breakage, not the setup.
    #[track_caller]
    fn refuse(&self, c: &Path, what: &str, words: &[&str]) -> String {
        let line = refused(c, what, words, || pull(c, &[]));
        self.served.reset();
        let before = state(c);
        let doc = json(&pull(c, &["--dry-run"]));
        assert_eq!(doc["deltas"].as_array().map(Vec::len), Some(1), "{what}: the pristine server offers a delta");
        assert_eq!(state(c), before);
        line
    }

    fn update(&self) -> String {
        self.p.update_id()
    }

    fn empty_id(&self) -> String {
        self.p.v2.clone()
    }
}

/// Parts that are not what the signed superblock says, or that hold more,
/// less or other than their declared entries.
#[test]
fn pull_refuses_broken_parts() {
    let t = Refusals::new();
    let (up, em) = (t.update(), t.empty_id());
    let up_files = t.served.files_parts(&up)[0];
    let em_files = t.served.files_parts(&em)[0];

    // (a) One byte flipped in a part.
    let p = t.served.part_path(&up, up_files);
    let mut data = fs::read(&p).expect("read");
    let mid = data.len() / 2;
    data[mid] ^= 0x01;
    fs::write(&p, &data).expect("write");
    t.refuse(&t.at_v1, "part with a flipped byte", &[&format!("part {up_files} of delta {up}"), "is corrupt"]);

    // (b) A part cut short.
    let p = t.served.part_path(&em, em_files);
    let data = fs::read(&p).expect("read");
    fs::write(&p, &data[..data.len() / 2]).expect("write");
    let line = t.refuse(
        &t.empty,
        "truncated part",
        &[&format!("part {em_files} of delta {em}"), "the signed superblock says"],
    );
    assert!(line.contains(&format!("is {} bytes", data.len() / 2)), "{line}");

    // (i) A part that decompresses to more than it declares (signed and
    // hashed correctly: only the declared size is wrong).
    let mut stream = t.served.part_stream(&up, up_files);
    let declared = stream.len() as u64;
    stream.extend_from_slice(&[0u8; 64]);
    t.served.reencode_part(&up, up_files, &stream, Some(declared));
    t.refuse(
        &t.at_v1,
        "part longer than declared",
        &[&format!("part {up_files} of delta {up}"), "holds more than its"],
    );

    // ... and to less.
    let mut stream = t.served.part_stream(&up, up_files);
    let declared = stream.len() as u64;
    stream.truncate(stream.len() - 10);
    t.served.reencode_part(&up, up_files, &stream, Some(declared));
    t.refuse(&t.at_v1, "part shorter than declared", &[&format!("part {up_files} of delta {up}"), "truncated"]);

    // ... and bytes after its zstd frame.
    let mut file = fs::read(t.served.part_path(&up, up_files)).expect("read");
    file.extend_from_slice(b"trailing junk after the frame");
    t.served.replace_part(&up, up_files, &file, None);
    t.refuse(&t.at_v1, "junk after the part's frame", &[&format!("part {up_files} of delta {up}")]);

    // A part whose frame needs a window over the 2^25 bytes a reader holds.
    let stream = t.served.part_stream(&up, up_files);
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd");
    enc.window_log(fmt::MAX_WINDOW_LOG + 2).expect("window");
    enc.write_all(&stream).expect("zstd");
    t.served.replace_part(&up, up_files, &enc.finish().expect("zstd"), None);
    t.refuse(&t.at_v1, "part needing a big window", &[&format!("part {up_files} of delta {up}"), "too much memory"]);

    // A part the server lacks (a broken publish): a warning naming it, and
    // the pull goes on with objects; nothing of the delta is kept.
    fs::remove_file(t.served.part_path(&up, up_files)).expect("rm");
    let r = pull(&t.at_v1, &[]);
    let doc = json(&r);
    assert!(doc["deltas"].as_array().is_none_or(|d| d.is_empty()), "the broken delta counts as used: {doc}");
    let err = r.stderr();
    assert!(err.contains("warning:") && err.contains(&format!("part {up_files} of delta {up}")), "{err}");
    pur(&t.at_v1, ["repo", "fsck"]).ok();
    let left: Vec<_> = fs::read_dir(t.at_v1.join("tmp/fetch"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in tmp/fetch: {left:?}");
}

/// Superblocks that are not trusted or not the ones the summary names.
#[test]
fn pull_refuses_untrusted_or_mismatched_superblocks() {
    let t = Refusals::new();
    let up = t.update();
    let what = format!("delta {up} superblock");

    // (c) Re-signed by a key the client does not trust (the body, and so
    // the summary's hash of it, unchanged).
    let (signed, _) = t.served.read_superblock(&up);
    t.served.write_signed(&up, signed.body.clone(), &[&t.p.secret(&t.p.key2)]);
    t.served.resummary();
    t.refuse(&t.at_v1, "superblock signed by an untrusted key", &[&what, "is from a trusted key"]);

    // (d) Not signed at all.
    t.served.write_signed(&up, signed.body.clone(), &[]);
    t.served.resummary();
    t.refuse(&t.at_v1, "unsigned superblock", &[&what, "is not signed"]);

    // (e) A body the summary does not name, even though correctly signed.
    let (_, mut sb) = t.served.read_superblock(&up);
    sb.timestamp += 1;
    t.served.write_superblock(&up, &sb, &[&t.served.key]);
    t.refuse(&t.at_v1, "superblock not matching the summary", &[&what, "does not match the summary"]);

    // (f) The summary offers FROM-TO, but the (signed, summary-named)
    // superblock there is for another FROM: a commit with v1's tree but
    // another timestamp. The client holds v1 and takes the offer.
    let tree1 = t.p.scratch.join("tree-1b");
    write_tree(&tree1, 1);
    // Made by the publisher (a reset of the server copy keeps them).
    let other = pur(
        &t.p.repo,
        ["repo", "commit", "-b", "os/other", "--timestamp", "150", "--sign-key", s(&t.p.key), s(&tree1)],
    )
    .ok();
    // Serves delta `real`'s superblock as `up`, named by a signed summary.
    let serve_as = |real: &str| {
        let raw = fs::read(t.served.delta_dir(real).join("superblock")).expect("read");
        fs::write(t.served.delta_dir(&up).join("superblock"), &raw).expect("write");
        let body_sum = SignedSuperblock::from_bytes(&raw).expect("superblock").body_checksum();
        let summary = Summary::from_bytes(&fs::read(t.served.dir.join("summary")).expect("read")).expect("summary");
        let mut listed = fmt::parse_summary_value(summary.metadata.get(fmt::SUMMARY_KEY).expect("photon.deltas"))
            .expect("a delta list");
        for (id, sum) in listed.iter_mut() {
            if *id == up {
                *sum = body_sum;
            }
        }
        let mut meta = summary.metadata.clone();
        meta.insert(fmt::SUMMARY_KEY, fmt::summary_value(&listed));
        t.served.write_summary(&Summary::new(summary.refs().to_vec(), meta).expect("summary"));
    };
    let generate = |from: &str, to: &str| {
        pur(&t.p.repo, ["repo", "delta", "generate", "--from", from, "--to", to, "--sign-key", s(&t.p.key)]).ok();
        format!("{from}-{to}")
    };
    let other_from = generate(&other, &t.p.v2);
    let other_to = generate(&t.p.v1, &other);
    t.served.reset();
    serve_as(&other_from);
    let line = t.refuse(&t.at_v1, "superblock for another from-commit", &[&what, "is for", &other_from]);
    assert!(line.contains("not for"), "{line}");
    // ... and for another TO (the same FROM).
    serve_as(&other_to);
    t.refuse(&t.at_v1, "superblock for another to-commit", &[&what, "is for", &other_to, "not for"]);

    // The superblock names a content list other than what v1 -> v2 needs
    // (signed by the trusted key; the summary names it).
    let (_, mut sb) = t.served.read_superblock(&up);
    sb.file_list_digest = Checksum::of(b"another list");
    t.served.write_superblock(&up, &sb, &[&t.served.key]);
    t.served.resummary();
    t.refuse(&t.at_v1, "content list digest mismatch", &[&format!("delta {up}"), "this repository needs"]);
}

/// Entries crafted inside a correctly hashed and signed part.
#[test]
fn pull_refuses_crafted_entries() {
    let t = Refusals::new();
    let up = t.update();
    let n = t.served.files_parts(&up)[0];
    let stream = t.served.part_stream(&up, n);
    let list = entries(&stream);
    // The moved kernel module's patch (found by path shape).
    let patch = list
        .iter()
        .find(|e| matches!(e.head.body, Body::Patch { .. }) && e.head.size == 300_000)
        .expect("the kernel module's patch in the update");

    // (g) A patch that yields more than the size its entry declares.
    let mut crafted = stream.clone();
    let head = FileEntry { size: patch.head.size - 1, ..patch.head.clone() }.encode();
    assert_eq!(head.len(), patch.head_len);
    crafted[patch.at..patch.at + head.len()].copy_from_slice(&head);
    t.served.reencode_part(&up, n, &crafted, None);
    t.refuse(&t.at_v1, "patch growing past its size", &["grows past its declared"]);

    // ... and one that yields less.
    let mut crafted = stream.clone();
    let head = FileEntry { size: patch.head.size + 1, ..patch.head.clone() }.encode();
    crafted[patch.at..patch.at + head.len()].copy_from_slice(&head);
    t.served.reencode_part(&up, n, &crafted, None);
    t.refuse(&t.at_v1, "patch short of its size", &["the patch yields", "not the declared"]);

    // A patch frame that needs a window over 2^25 (valid otherwise: it
    // rebuilds the right object from the v1 file).
    let old = kernel_module(1);
    let frame = &stream[patch.at + patch.head_len..patch.at + patch.head_len + patch.body_len];
    let mut new = Vec::new();
    zstd::stream::read::Decoder::with_ref_prefix(frame, &old)
        .expect("zstd")
        .read_to_end(&mut new)
        .expect("the patch applies to the v1 module");
    assert!(new == kernel_module(2), "the patch rebuilds the v2 module");
    let mut enc = zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), 3, &old).expect("zstd");
    enc.window_log(fmt::MAX_WINDOW_LOG + 2).expect("window");
    enc.write_all(&new).expect("zstd");
    let big = enc.finish().expect("zstd");
    let Body::Patch { source, .. } = patch.head.body else { unreachable!("a patch") };
    let mut crafted = stream[..patch.at].to_vec();
    crafted.extend(FileEntry { body: Body::Patch { source, len: big.len() as u64 }, ..patch.head.clone() }.encode());
    crafted.extend_from_slice(&big);
    crafted.extend_from_slice(&stream[patch.at + patch.head_len + patch.body_len..]);
    t.served.reencode_part(&up, n, &crafted, Some(crafted.len() as u64));
    t.refuse(&t.at_v1, "patch needing a big window", &["decompressing the patch", "too much memory"]);

    // (h) A whole object whose bytes do not hash to its content-list id.
    let whole = list
        .iter()
        .filter(|e| e.head.body == Body::Whole && e.head.size > 1000)
        .max_by_key(|e| e.body_len)
        .expect("a whole entry");
    let mut crafted = stream.clone();
    let at = whole.at + whole.head_len + whole.body_len / 2;
    crafted.swap(at, at + 1);
    assert_ne!(crafted, stream, "the swapped bytes differ");
    t.served.reencode_part(&up, n, &crafted, None);
    t.refuse(&t.at_v1, "whole object with wrong bytes", &["content object", "hashes to", "refusing to store it"]);

    // A dirtree in the metadata part whose bytes do not hash to its id.
    let (_, sb) = t.served.read_superblock(&up);
    let m = (0..sb.parts.len()).find(|&n| sb.parts[n].kind == PartKind::Metadata).expect("a metadata part");
    let mut meta = t.served.part_stream(&up, m);
    let mut at = 0;
    let tree = loop {
        let e = fmt::MetaEntry::read(&mut &meta[at..]).expect("an entry").expect("a dirtree before the end");
        if e.objtype == repo_format::ObjectType::DirTree {
            break e;
        }
        at += fmt::MIN_ENTRY_BYTES as usize + e.len as usize;
    };
    meta[at + fmt::MIN_ENTRY_BYTES as usize + tree.len as usize / 2] ^= 0x01;
    t.served.reencode_part(&up, m, &meta, None);
    t.refuse(&t.at_v1, "dirtree with wrong bytes", &[&format!("dirtree {}", tree.checksum), "in the delta hashes to"]);

    // The from-empty delta's content list is the whole tree: a swapped
    // object there too.
    let em = t.empty_id();
    let n = t.served.files_parts(&em)[0];
    let stream = t.served.part_stream(&em, n);
    let list = entries(&stream);
    let whole = list.iter().find(|e| e.head.body == Body::Whole && e.head.size > 1000).expect("a whole entry");
    let mut crafted = stream.clone();
    crafted[whole.at + whole.head_len] ^= 0x80;
    t.served.reencode_part(&em, n, &crafted, None);
    t.refuse(&t.empty, "from-empty object with wrong bytes", &["content object", "hashes to"]);
}

/// SPEC §11.4: a part is *one* zstd frame and trailing bytes are refused.
/// Bytes that do not parse as a frame are; an empty frame or a skippable
/// frame after the part's frame is not.
#[test]
fn pull_refuses_extra_frames_after_a_part() {
    let t = Refusals::new();
    let up = t.update();
    let n = t.served.files_parts(&up)[0];
    let skippable = [0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4];
    let empty = zstd::encode_all(&b""[..], 3).expect("zstd");
    for (what, extra) in
        [("an empty zstd frame after the part", empty), ("a skippable frame after the part", skippable.to_vec())]
    {
        t.served.reset();
        let mut file = fs::read(t.served.part_path(&up, n)).expect("read");
        file.extend_from_slice(&extra);
        t.served.replace_part(&up, n, &file, None);
        t.refuse(&t.at_v1, what, &[&format!("part {n} of delta {up}")]);
    }
}

/// A delta refused for what its (correctly hashed) parts hold leaves its
/// downloaded parts in `tmp/fetch`; once the commit is pulled another way
/// (the error suggests `--disable-deltas`), they must not stay there for
/// good: a from-empty delta's parts are the size of the OS.
#[test]
fn refused_delta_parts_do_not_linger() {
    let t = Refusals::new();
    let up = t.update();
    let n = t.served.files_parts(&up)[0];
    let mut stream = t.served.part_stream(&up, n);
    let last = stream.len() - 3;
    stream[last] ^= 0x01;
    t.served.reencode_part(&up, n, &stream, None);
    t.refuse(&t.at_v1, "object with wrong bytes", &["content object", "hashes to"]);
    // The server still serves the broken delta; the user follows the advice.
    t.served.reencode_part(&up, n, &stream, None);
    pull(&t.at_v1, &["--disable-deltas"]).ok();
    assert_eq!(rev(&t.at_v1, &format!("origin:{REF}")), t.p.v2);
    pur(&t.at_v1, ["repo", "prune"]).ok();
    let left: Vec<_> = fs::read_dir(t.at_v1.join("tmp/fetch"))
        .map(|d| d.map(|e| e.expect("entry").file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in tmp/fetch after the commit was pulled: {left:?}");
}

// ---------------------------------------------------------------------------
// 3. Bundles.

/// Exported bundles apply offline (from-empty, then the update) to the
/// publisher's exact commits; damaged, foreign or unverifiable bundles
/// are refused with the repository unchanged.
#[test]
fn bundles_apply_offline_and_refuse_damage() {
    require_root();
    let mut p = Pub::new();
    p.publish_v2();
    let (v1, v2) = (p.v1.clone(), p.v2.clone());
    let update = p.update_id();
    let listed = pur(&p.repo, ["repo", "delta", "list"]).ok();
    assert_eq!(listed.lines().collect::<BTreeSet<_>>(), BTreeSet::from([v1.as_str(), v2.as_str(), update.as_str()]));

    let b1 = p.scratch.join("v1.bundle");
    let b2 = p.scratch.join("update.bundle");
    let doc = json(&pur(&p.repo, ["--json", "repo", "delta", "export", "--to", &v1, s(&b1)]));
    assert_eq!(doc["id"], v1.as_str(), "{doc}");
    pur(&p.repo, ["repo", "delta", "export", "--from", &v1, "--to", &v2, s(&b2)]).ok();
    // Exactly: magic, length, the stored superblock, the stored parts.
    for (b, id) in [(&b1, &v1), (&b2, &update)] {
        let dir = p.repo.join(fmt::DELTAS_DIR).join(id);
        let show = json(&pur(&p.repo, ["--json", "repo", "delta", "show", id]));
        let parts = show["partList"].as_array().expect("parts").len();
        let mut want = b"PUDELTA\x01".to_vec();
        let sb = fs::read(dir.join("superblock")).expect("read");
        want.extend_from_slice(&(sb.len() as u64).to_le_bytes());
        want.extend_from_slice(&sb);
        for n in 0..parts {
            want.extend(fs::read(dir.join(format!("part-{n}"))).expect("read"));
        }
        assert!(fs::read(b).expect("read") == want, "bundle {} is not the stored delta", b.display());
        assert_eq!(show["delta"]["partsSize"].as_u64(), Some((want.len() - 16 - sb.len()) as u64), "{show}");
    }

    let sysroot = p.scratch.join("sysroot");
    fs::create_dir_all(&sysroot).expect("mkdir");
    let apply = |repo: &Path, file: &Path, extra: &[&str]| {
        let mut args = vec!["--sysroot", s(&sysroot), "repo", "delta", "apply", s(file)];
        args.extend(extra);
        pur(repo, args)
    };
    let key = p.pubkey();
    let key2 = p.pubkey2();
    let trusted = ["--trusted-key", s(&key)];
    let damaged = |name: &str, from: &Path, edit: &dyn Fn(&mut Vec<u8>)| -> PathBuf {
        let mut data = fs::read(from).expect("read");
        edit(&mut data);
        let out = p.scratch.join(name);
        fs::write(&out, data).expect("write");
        out
    };

    let r = p.scratch.join("offline");
    pur(&r, ["repo", "init", "--mode", "bare-user"]).ok();
    let cut = damaged("cut.bundle", &b1, &|d| {
        d.pop();
    });
    refused(&r, "bundle one byte short", &["truncated or has extra data"], || apply(&r, &cut, &trusted));
    let long = damaged("long.bundle", &b1, &|d| d.push(0));
    refused(&r, "bundle one byte long", &["truncated or has extra data"], || apply(&r, &long, &trusted));
    let flipped = damaged("flipped.bundle", &b1, &|d| {
        let at = d.len() - 100;
        d[at] ^= 0x01;
    });
    refused(
        &r,
        "bundle with a flipped part byte",
        &[&format!("delta {v1}"), "is corrupt", "the repository is unchanged"],
        || apply(&r, &flipped, &trusted),
    );
    let magic = damaged("magic.bundle", &b1, &|d| d[0] = b'X');
    refused(&r, "bundle with bad magic", &["not a photon-upgrade bundle", "bad magic"], || apply(&r, &magic, &trusted));
    refused(&r, "bundle signed by an untrusted key", &["is from a trusted key"], || {
        apply(&r, &b1, &["--trusted-key", s(&key2)])
    });
    refused(&r, "bundle with no trusted key", &["no trusted ed25519 keys", "--trusted-key"], || apply(&r, &b1, &[]));
    refused(&r, "update bundle without its from commit", &[&v1, "does not have complete"], || apply(&r, &b2, &trusted));
    assert!(pur(&r, ["repo", "refs"]).ok().is_empty());

    assert_eq!(apply(&r, &b1, &[&trusted[..], &["--ref", "os"]].concat()).ok(), v1);
    assert_eq!(rev(&r, "os"), v1);
    // The update, damaged, on a repository that has v1: refused, v1 kept.
    let flipped2 = damaged("flipped2.bundle", &b2, &|d| {
        let at = d.len() - 10;
        d[at] ^= 0x01;
    });
    refused(&r, "update bundle with a flipped part byte", &[&format!("delta {update}"), "is corrupt"], || {
        apply(&r, &flipped2, &[&trusted[..], &["--ref", "os"]].concat())
    });
    refused(&r, "update bundle signed by an untrusted key", &["is from a trusted key"], || {
        apply(&r, &b2, &["--trusted-key", s(&key2), "--ref", "os"])
    });
    // A signed delta of an unsigned commit: the commit's own signature is
    // required too.
    let v3 =
        pur(&p.repo, ["repo", "commit", "-b", "os/unsigned", "--timestamp", "300", s(&p.scratch.join("tree-2"))]).ok();
    let b3 = p.scratch.join("unsigned-commit.bundle");
    pur(&p.repo, ["repo", "delta", "export", "--empty", "--to", &v3, "--sign-key", s(&p.key), s(&b3)]).ok();
    let r3 = p.scratch.join("offline-3");
    pur(&r3, ["repo", "init", "--mode", "bare-user"]).ok();
    refused(&r3, "signed bundle of an unsigned commit", &[&format!("commit {v3}"), "is not signed"], || {
        apply(&r3, &b3, &trusted)
    });
    // Trust from a remote's keys.
    pur(&r, ["remote", "add", "origin", "file:///nonexistent", "--trusted-key", s(&key)]).ok();
    assert_eq!(apply(&r, &b2, &["--remote", "origin", "--ref", "os"]).ok(), v2);
    assert_eq!(rev(&r, "os"), v2);
    pur(&r, ["repo", "fsck"]).ok();
    ostree([&format!("--repo={}", r.display()), "fsck"]).ok();
    pur(&r, ["repo", "verify", &v2, "--trusted-key", s(&key)]).ok();
    for v in [&v1, &v2] {
        assert_eq!(pur(&r, ["repo", "ls", "-R", v]).ok(), pur(&p.repo, ["repo", "ls", "-R", v]).ok());
    }

    // A rebuild with the same tree: a delta with no parts at all.
    let tree2 = p.scratch.join("tree-2");
    let v2b =
        pur(&p.repo, ["repo", "commit", "-b", "os/rebuild", "--timestamp", "400", "--sign-key", s(&p.key), s(&tree2)])
            .ok();
    let b4 = p.scratch.join("rebuild.bundle");
    pur(&p.repo, ["repo", "delta", "export", "--from", &v2, "--to", &v2b, "--sign-key", s(&p.key), s(&b4)]).ok();
    assert_eq!(apply(&r, &b4, &[&trusted[..], &["--ref", "os"]].concat()).ok(), v2b);
    pur(&r, ["repo", "fsck"]).ok();
    assert_eq!(pur(&r, ["repo", "ls", "-R", &v2b]).ok(), pur(&p.repo, ["repo", "ls", "-R", &v2]).ok());
}

// ---------------------------------------------------------------------------
// 4. Resume.

/// A published from-empty delta with big incompressible files.
struct BigDelta {
    sc: Scratch,
    repo: PathBuf,
    commit: String,
    /// Per part: checksum, size.
    parts: Vec<(String, u64)>,
}

impl BigDelta {
    /// The sample v1 tree plus `files` noise files of `len` bytes, as a
    /// signed commit with a signed from-empty delta (`generate_args` added)
    /// and a signed summary.
    fn new(files: usize, len: usize, generate_args: &[&str]) -> BigDelta {
        require_root();
        let sc = Scratch::new();
        let repo = sc.join("pub");
        let key = sc.join("key");
        pu(["repo", "keygen", "-o", s(&key)]).ok();
        pur(&repo, ["repo", "init", "--mode", "archive"]).ok();
        let tree = sc.join("tree");
        write_tree(&tree, 1);
        for i in 0..files {
            put(&tree, &format!("usr/lib/big/{i}.bin"), &noise(42 + i as u64, len), 0o644);
        }
        let commit =
            pur(&repo, ["repo", "commit", "-b", REF, "--timestamp", "100", "--sign-key", s(&key), s(&tree)]).ok();
        let mut args = vec!["repo", "delta", "generate", "--empty", "--to", &commit, "--sign-key", s(&key)];
        args.extend(generate_args);
        pur(&repo, args).ok();
        pur(&repo, ["repo", "summary", "--update", "--sign-key", s(&key)]).ok();
        let show = json(&pur(&repo, ["--json", "repo", "delta", "show", &commit]));
        let parts = show["partList"]
            .as_array()
            .expect("parts")
            .iter()
            .map(|p| (p["checksum"].as_str().expect("checksum").to_owned(), p["size"].as_u64().expect("size")))
            .collect();
        BigDelta { sc, repo, commit, parts }
    }

    fn parts_size(&self) -> u64 {
        self.parts.iter().map(|p| p.1).sum()
    }

    /// A client of `nginx`, its remote with options `extra`.
    fn client(&self, nginx: &Nginx, extra: &[&str]) -> PathBuf {
        let c = self.sc.join("client");
        let (url, key) = (nginx.url(), self.sc.join("key.pub"));
        pur(&c, ["repo", "init", "--mode", "bare-user"]).ok();
        let mut add = vec!["remote", "add", "origin", &url, "--trusted-key", s(&key)];
        add.extend(extra);
        pur(&c, add).ok();
        c
    }

    fn part_file(&self, c: &Path, n: usize) -> PathBuf {
        c.join("tmp/fetch").join(format!("delta-{}.part", self.parts[n].0))
    }

    /// Starts `pull` into `c` and kills it (SIGKILL) once part `n` has
    /// `want` bytes downloaded: on a condition, not a timer. Returns the
    /// bytes of the part left on disk.
    fn pull_killed_at(&self, c: &Path, n: usize, want: u64) -> u64 {
        let partial_file = self.part_file(c, n);
        let mut child = Command::new(bin())
            .args(["--repo", s(c), "pull", "origin", REF])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning a pull");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let held = fs::metadata(&partial_file).map(|m| m.len()).unwrap_or(0);
            if held >= want {
                break;
            }
            if let Some(st) = child.try_wait().expect("waiting") {
                panic!("the pull ended ({st}) before it was killed, with {held} bytes of part {n}");
            }
            assert!(Instant::now() < deadline, "part {n} did not reach {want} bytes in 30 s ({held})");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().expect("kill");
        child.wait().expect("wait");
        let partial = fs::metadata(&partial_file).expect("the partial part is kept").len();
        assert!(partial >= want && partial < self.parts[n].1, "{partial} of {}", self.parts[n].1);
        assert!(pur(c, ["repo", "refs"]).ok().is_empty(), "a killed pull moved a ref");
        pur(c, ["repo", "fsck"]).ok();
        partial
    }

    /// Reruns the pull to the end: through the delta, the commit complete.
    fn pull_to_the_end(&self, c: &Path) {
        let doc = json(&pull(c, &[]));
        assert_eq!(doc["deltas"], serde_json::json!([self.commit]), "{doc}");
        assert_eq!(rev(c, &format!("origin:{REF}")), self.commit);
        pur(c, ["repo", "fsck"]).ok();
        for n in 0..self.parts.len() {
            assert!(!self.part_file(c, n).exists(), "part {n} was left in tmp/fetch");
        }
    }

    fn part_path(&self, n: usize) -> String {
        format!("/photon-deltas/{}/part-{n}", self.commit)
    }
}

/// A pull killed while a part downloads leaves the partial part; the next
/// pull fetches only the rest of it (HTTP Range) and completes.
#[test]
fn killed_delta_pull_resumes_its_part() {
    let d = BigDelta::new(1, 4 << 20, &[]);
    let (big_n, big) = d.parts.iter().enumerate().map(|(n, p)| (n, p.1)).max_by_key(|p| p.1).expect("a part");
    assert!(big > 4 << 20, "the big part is incompressible: {big} bytes");
    let nginx = Nginx::serve_limited(&d.repo, d.sc.path_buf(), "2m");
    let c = d.client(&nginx, &[]);
    // Well over half the part: without resume the rerun would fetch over
    // 1.5 times the parts.
    let partial = d.pull_killed_at(&c, big_n, big * 6 / 10);
    let first_run = nginx.hits().len();
    d.pull_to_the_end(&c);
    let hits = nginx.hits();
    let rerun: Vec<_> = hits[first_run..].iter().filter(|h| h.path == d.part_path(big_n)).collect();
    assert_eq!(rerun.len(), 1, "{hits:?}");
    assert_eq!((rerun[0].status, rerun[0].bytes), (206, big - partial), "the rerun fetched only the rest: {hits:?}");
    let served: u64 = hits.iter().filter(|h| h.path.contains("/part-")).map(|h| h.bytes).sum();
    assert!(served * 2 < d.parts_size() * 3, "{served} bytes of parts served for {}: {hits:?}", d.parts_size());
}

/// Several parts, fetched one after the other: killed in the last big one, the
/// rerun fetches the rest of that one only, not the parts the first run
/// had already downloaded (and applied into a transaction it never
/// committed).
#[test]
fn killed_delta_pull_keeps_the_parts_it_finished() {
    let d = BigDelta::new(5, 1 << 20, &["--part-size", "1"]);
    assert!(d.parts.len() >= 6, "one metadata part and a files part per big file: {:?}", d.parts);
    let nginx = Nginx::serve_limited(&d.repo, d.sc.path_buf(), "4m");
    let c = d.client(&nginx, &["--set", "fetch-parallelism=1"]);
    let last = (0..d.parts.len()).rev().find(|&n| d.parts[n].1 > 1 << 20).expect("a big part");
    d.pull_killed_at(&c, last, d.parts[last].1 / 2);
    let first: Vec<_> = nginx.hits();
    let finished: Vec<String> = first
        .iter()
        .filter(|h| h.status == 200 && h.path.contains("/part-"))
        .filter(|h| (0..d.parts.len()).any(|n| h.path == d.part_path(n) && h.bytes == d.parts[n].1))
        .map(|h| h.path.clone())
        .collect();
    assert!(finished.len() >= 2, "the first run finished parts before the kill: {first:?}");
    d.pull_to_the_end(&c);
    let hits = nginx.hits();
    let again: Vec<_> = hits[first.len()..].iter().filter(|h| finished.contains(&h.path)).collect();
    let served: u64 = hits.iter().filter(|h| h.path.contains("/part-")).map(|h| h.bytes).sum();
    assert!(
        again.is_empty(),
        "the rerun fetched again parts the first run had finished: {again:?} ({served} bytes of parts served for {})",
        d.parts_size()
    );
    assert!(served * 2 < d.parts_size() * 3, "{served} bytes of parts served for {}", d.parts_size());
}

// ---------------------------------------------------------------------------
// 5. Fallback.

/// Without a delta for the step (none listed, or the listed superblock
/// missing on the server) a pull fetches objects and succeeds;
/// `--disable-deltas` never asks for anything under photon-deltas/.
#[test]
fn pull_falls_back_to_objects_without_a_usable_delta() {
    require_root();
    let mut p = Pub::new();
    let served = Served::new(&p);
    let nginx = Nginx::serve(&served.dir, p.scratch.path_buf());
    let url = nginx.url();
    let no_delta_hits = |what: &str| {
        let h = paths(&nginx);
        assert!(!h.iter().any(|p| p.contains("photon-deltas")), "{what}: asked for a delta: {h:?}");
        assert!(h.iter().any(|p| p.ends_with(".filez")), "{what}: fetched no objects: {h:?}");
    };
    let a = client(&p.scratch.join("a"), "bare-user", &url, &p.pubkey());
    nginx.clear_log();
    let doc = json(&pull(&a, &["--disable-deltas"]));
    assert!(doc.get("deltas").is_none(), "{doc}");
    no_delta_hits("--disable-deltas from nothing");
    let b = p.scratch.join("b");
    copy_tree(&a, &b);
    p.publish_v2();
    served.reset();

    nginx.clear_log();
    let doc = json(&pull(&b, &["--disable-deltas"]));
    assert!(doc.get("deltas").is_none(), "{doc}");
    no_delta_hits("--disable-deltas with an update delta offered");
    assert_eq!(rev(&b, &format!("origin:{REF}")), p.v2);

    // The summary lists the update delta, the server lacks its superblock.
    let up = p.update_id();
    fs::remove_file(served.delta_dir(&up).join("superblock")).expect("rm");
    nginx.clear_log();
    let doc = json(&pull(&a, &[]));
    assert!(doc.get("deltas").is_none(), "{doc}");
    let h = nginx.hits();
    let sb_path = format!("/photon-deltas/{up}/superblock");
    assert!(h.iter().any(|x| x.path == sb_path && x.status == 404), "{h:?}");
    assert!(!h.iter().any(|x| x.path.contains("/part-")), "{h:?}");
    assert!(h.iter().any(|x| x.path.ends_with(".filez")), "{h:?}");
    assert_eq!(rev(&a, &format!("origin:{REF}")), p.v2);
    pur(&a, ["repo", "fsck"]).ok();

    // The summary lists no delta at all.
    served.reset();
    fs::remove_dir_all(served.dir.join(fmt::DELTAS_DIR)).expect("rm");
    served.resummary();
    let c = client(&p.scratch.join("c"), "archive", &url, &p.pubkey());
    nginx.clear_log();
    let doc = json(&pull(&c, &[]));
    assert!(doc.get("deltas").is_none(), "{doc}");
    no_delta_hits("no delta in the summary");
    assert_eq!(rev(&c, &format!("origin:{REF}")), p.v2);
    for r in [&a, &b, &c] {
        pur(r, ["repo", "fsck"]).ok();
        assert_eq!(pur(r, ["repo", "ls", "-R", &p.v2]).ok(), pur(&p.repo, ["repo", "ls", "-R", &p.v2]).ok());
    }
}
