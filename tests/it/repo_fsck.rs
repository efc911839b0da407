//! fsck finds every kind of damage and names each bad object; hostile
//! objects are refused before they are used.

use std::fs;
use std::path::{Path, PathBuf};

use gvariant::{Marker, gv};
use sha2::Digest;

use crate::util::*;

fn setup(s: &Scratch, mode: &str) -> (PathBuf, String) {
    let tree = s.join("tree");
    fixture_tree(&tree, false);
    let repo = s.join("repo");
    pur(&repo, ["repo", "init", "--mode", mode]).ok();
    let c = pur(&repo, ["repo", "commit", "-b", "t", tree.to_str().expect("utf-8")]).ok();
    (repo, c)
}

fn find(repo: &Path, ext: &str, min_size: u64) -> PathBuf {
    object_files(repo)
        .into_iter()
        .find(|p| {
            p.extension().is_some_and(|e| e == ext) && fs::metadata(p).map(|m| m.len() >= min_size).unwrap_or(false)
        })
        .unwrap_or_else(|| panic!("no .{ext} object of {min_size}+ bytes"))
}

fn checksum_of(p: &Path) -> String {
    let dir = p.parent().and_then(Path::file_name).and_then(|n| n.to_str()).expect("objects/XX");
    let stem = p.file_stem().and_then(|n| n.to_str()).expect("name");
    format!("{dir}{stem}")
}

fn flip_byte(p: &Path, from_end: usize) {
    let mut data = fs::read(p).expect("read object");
    let i = data.len() - from_end;
    data[i] ^= 0x55;
    fs::write(p, data).expect("write object");
}

#[test]
fn fsck_names_each_damaged_object_archive() {
    let s = Scratch::new();
    let (repo, commit) = setup(&s, "archive");
    pur(&repo, ["repo", "fsck"]).ok();
    let big = find(&repo, "filez", 200);
    flip_byte(&big, 10);
    let dirtree = find(&repo, "dirtree", 1);
    flip_byte(&dirtree, 1);
    let truncated = object_files(&repo)
        .into_iter()
        .find(|p| {
            p.extension().is_some_and(|e| e == "filez")
                && *p != big
                && fs::metadata(p).map(|m| m.len() > 60).unwrap_or(false)
        })
        .expect("a second filez");
    let len = fs::metadata(&truncated).expect("stat").len();
    fs::OpenOptions::new().write(true).open(&truncated).expect("open").set_len(len - 5).expect("truncate");
    let dirmeta = find(&repo, "dirmeta", 1);
    fs::remove_file(&dirmeta).expect("rm");

    let r = pur(&repo, ["repo", "fsck"]);
    let err = r.fails(1);
    for (p, what) in [
        (&big, "corrupt file"),
        (&dirtree, "corrupt dirtree"),
        (&truncated, "corrupt file"),
        (&dirmeta, "missing dirmeta"),
    ] {
        let c = checksum_of(p);
        assert!(err.lines().any(|l| l.contains(what) && l.contains(&c)), "{what} {c} not named in:\n{err}");
    }
    // Same verdict from the oracle.
    ostree([&format!("--repo={}", repo.display()), "fsck"]).fails(1);

    // --delete-corrupt removes them and marks the commit partial.
    let doc: serde_json::Value =
        serde_json::from_str(&pur(&repo, ["--json", "repo", "fsck", "--delete-corrupt"]).fails_json(1)).expect("json");
    assert_eq!(doc["deleted"], 3, "{doc}");
    assert!(!big.exists() && !dirtree.exists() && !truncated.exists());
    assert!(repo.join(format!("state/{commit}.commitpartial")).exists());
    // A partial commit may lack objects: fsck is clean now.
    pur(&repo, ["repo", "fsck"]).ok();
}

#[test]
fn fsck_bare_user_content_and_meta() {
    let s = Scratch::new();
    let (repo, _) = setup(&s, "bare-user");
    let obj = find(&repo, "file", 1000);
    flip_byte(&obj, 1);
    let other = object_files(&repo)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "file") && *p != obj)
        .expect("a second content object");
    sh("setfattr", &["-x", "user.ostreemeta", other.to_str().expect("utf-8")]).ok();
    let err = pur(&repo, ["repo", "fsck"]).fails(1);
    assert!(err.contains(&checksum_of(&obj)), "{err}");
    let line = err.lines().find(|l| l.contains(&checksum_of(&other))).unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains("user.ostreemeta"), "{line}");
}

#[test]
fn broken_ref_is_reported() {
    let s = Scratch::new();
    let (repo, _) = setup(&s, "archive");
    fs::write(repo.join("refs/heads/dangling"), format!("{}\n", "ab".repeat(32))).expect("write ref");
    let err = pur(&repo, ["repo", "fsck"]).fails(1);
    assert!(err.contains("ref dangling points at a missing commit"), "{err}");
}

/// Writes a metadata object under its true name, as a malicious server or
/// tampered disk would.
fn plant(repo: &Path, data: &[u8], ext: &str) -> String {
    let c = hex::encode(sha2::Sha256::digest(data));
    let dir = repo.join("objects").join(&c[..2]);
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(dir.join(format!("{}.{ext}", &c[2..])), data).expect("write");
    c
}

fn raw(c: &str) -> Vec<u8> {
    hex::decode(c).expect("hex")
}

/// A tree naming `..` or holding `/` is refused before anything is
/// written, and nothing lands outside the destination.
#[test]
fn hostile_tree_names_are_refused() {
    let s = Scratch::new();
    let (repo, good) = setup(&s, "bare-user");
    let show: serde_json::Value =
        serde_json::from_str(&pur(&repo, ["--json", "repo", "show", &good]).ok()).expect("json");
    let root_meta = show["rootMeta"].as_str().expect("root meta").to_owned();
    let file = checksum_of(&find(&repo, "file", 1));
    for bad in ["..", "a/b", "../../escape", ".", ""] {
        let file_raw = raw(&file);
        let files: Vec<(&str, &[u8])> = vec![(bad, &file_raw)];
        let dirs: Vec<(&str, &[u8], &[u8])> = vec![];
        let tree = gv!("(a(say)a(sayay))").serialize_to_vec(&(&files, &dirs));
        let tree_id = plant(&repo, &tree, "dirtree");
        let meta: Vec<(&str, gvariant::Owned<gvariant::Variant>)> = vec![];
        let meta: Vec<(&str, &gvariant::Variant)> = meta.iter().map(|(k, v)| (*k, &**v)).collect();
        let related: Vec<(&str, &[u8])> = vec![];
        let commit = gv!("(a{sv}aya(say)sstayay)").serialize_to_vec(&(
            &meta,
            &[][..],
            &related,
            "evil",
            "",
            0u64,
            &raw(&tree_id)[..],
            &raw(&root_meta)[..],
        ));
        let c = plant(&repo, &commit, "commit");
        let dest = s.join(format!("co-{}", bad.len()));
        let err = pur(&repo, ["repo", "checkout", "--user-mode", &c, dest.to_str().expect("utf-8")]).error_line();
        assert!(err.contains("dirtree") && err.contains(&tree_id), "{bad:?}: {err}");
        assert!(!s.join("escape").exists());
        let fsck = pur(&repo, ["repo", "fsck"]).fails(1);
        assert!(fsck.contains(&format!("corrupt dirtree {tree_id}")), "{fsck}");
        fs::remove_file(repo.join("objects").join(&tree_id[..2]).join(format!("{}.dirtree", &tree_id[2..])))
            .expect("rm");
        fs::remove_file(repo.join("objects").join(&c[..2]).join(format!("{}.commit", &c[2..]))).expect("rm");
    }
}

impl Run {
    /// stdout of a run that must exit with `code`.
    #[track_caller]
    fn fails_json(&self, code: i32) -> String {
        self.fails(code);
        self.stdout()
    }
}
