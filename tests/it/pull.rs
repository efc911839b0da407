//! Publish and pull over a real static web server (nginx on 127.0.0.1),
//! with the real `ostree` on the other end in both directions.

use std::fs;
use std::path::{Path, PathBuf};

use crate::server::Nginx;
use crate::util::*;

/// A published repository: archive mode, signed commit and summary.
struct Published {
    repo: PathBuf,
    key: PathBuf,
    pubkey: PathBuf,
    tree: PathBuf,
}

fn publish(s: &Scratch) -> Published {
    let repo = s.join("pub");
    let tree = s.join("tree");
    fixture_tree(&tree, true);
    let key = s.join("key");
    pu(["repo", "keygen", "--output", key.to_str().expect("utf-8")]).ok();
    pur(&repo, ["repo", "init", "--mode", "archive"]).ok();
    commit_signed(&repo, &tree, &key, "os/x86_64/stable", "100");
    Published { repo, pubkey: s.join("key.pub"), key, tree }
}

fn commit_signed(repo: &Path, tree: &Path, key: &Path, branch: &str, ts: &str) -> String {
    let c = pur(
        repo,
        [
            "repo",
            "commit",
            "-b",
            branch,
            "--timestamp",
            ts,
            "--sign-key",
            key.to_str().expect("utf-8"),
            tree.to_str().expect("utf-8"),
        ],
    )
    .ok();
    pur(repo, ["repo", "summary", "--update", "--sign-key", key.to_str().expect("utf-8")]).ok();
    c
}

fn client(s: &Scratch, name: &str, mode: &str, url: &str, pubkey: &Path) -> PathBuf {
    let repo = s.join(name);
    pur(&repo, ["repo", "init", "--mode", mode]).ok();
    pur(&repo, ["remote", "add", "origin", url, "--trusted-key", pubkey.to_str().expect("utf-8")]).ok();
    repo
}

fn object_hits(n: &Nginx) -> Vec<String> {
    n.hits().into_iter().filter(|h| h.path.starts_with("/objects/")).map(|h| h.path).collect()
}

/// A signed publish pulled into every client mode gives the same commit,
/// a clean fsck for both tools and a checkout identical to the source.
#[test]
fn pull_into_every_mode() {
    require_root();
    let s = Scratch::new();
    let p = publish(&s);
    let nginx = Nginx::serve(&p.repo, s.path_buf());
    let want = pur(&p.repo, ["repo", "rev-parse", "os/x86_64/stable"]).ok();
    for mode in ["bare-user", "bare", "archive"] {
        let c = client(&s, &format!("client-{mode}"), mode, &nginx.url(), &p.pubkey);
        let out = pur(&c, ["--json", "pull", "origin", "os/x86_64/stable"]).ok();
        let doc: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(doc["kind"], "PullReport");
        assert_eq!(doc["refs"][0]["new"], want.as_str(), "{doc}");
        assert_eq!(pur(&c, ["repo", "rev-parse", "origin:os/x86_64/stable"]).ok(), want);
        pur(&c, ["repo", "fsck"]).ok();
        ostree([&format!("--repo={}", c.display()), "fsck"]).ok();
        if mode == "bare" {
            let co = s.join("co-bare");
            pur(&c, ["repo", "checkout", "origin:os/x86_64/stable", co.to_str().expect("utf-8")]).ok();
            assert_eq!(describe_tree(&co, true), describe_tree(&p.tree, true));
        }
        pur(&c, ["repo", "verify", &want, "--trusted-key", p.pubkey.to_str().expect("utf-8")]).ok();
    }
    // bare-user-only cannot hold setuid files, owners or xattrs: refused
    // with a clear error (ostree refuses the setuid file too), no ref moves.
    let c = client(&s, "client-buo", "bare-user-only", &nginx.url(), &p.pubkey);
    let err = pur(&c, ["pull", "origin", "os/x86_64/stable"]).error_line();
    assert!(err.contains("bare-user-only repository"), "{err}");
    assert!(pur(&c, ["repo", "refs"]).ok().is_empty());
    pur(&c, ["repo", "fsck"]).ok();
    let theirs = s.join("ostree-buo");
    ostree([&format!("--repo={}", theirs.display()), "init", "--mode=bare-user-only"]).ok();
    ostree([&format!("--repo={}", theirs.display()), "remote", "add", "--no-gpg-verify", "origin", &nginx.url()]).ok();
    ostree([&format!("--repo={}", theirs.display()), "pull", "origin", "os/x86_64/stable"]).fails(1);
}

/// An update fetches only what changed; a dry run lists exactly what the
/// real pull then fetches.
#[test]
fn update_fetches_only_new_objects_and_dry_run_is_exact() {
    require_root();
    let s = Scratch::new();
    let p = publish(&s);
    let nginx = Nginx::serve(&p.repo, s.path_buf());
    let c = client(&s, "client", "bare-user", &nginx.url(), &p.pubkey);
    pur(&c, ["pull", "origin", "os/x86_64/stable"]).ok();
    let c1 = pur(&c, ["repo", "rev-parse", "origin:os/x86_64/stable"]).ok();
    fs::write(p.tree.join("etc/os-release"), "ID=v2\n").expect("write");
    fs::write(p.tree.join("usr/bin/added"), vec![9u8; 50_000]).expect("write");
    let c2 = commit_signed(&p.repo, &p.tree, &p.key, "os/x86_64/stable", "200");
    nginx.clear_log();
    let plan: serde_json::Value =
        serde_json::from_str(&pur(&c, ["--json", "pull", "--dry-run", "origin", "os/x86_64/stable"]).ok())
            .expect("json");
    let planned: Vec<(String, u64)> = plan["plan"]
        .as_array()
        .expect("plan")
        .iter()
        .filter(|o| o["type"] != "commit" && o["type"] != "commitmeta")
        .map(|o| (o["checksum"].as_str().expect("checksum").to_owned(), o["bytes"].as_u64().expect("bytes")))
        .collect();
    assert_eq!(pur(&c, ["repo", "rev-parse", "origin:os/x86_64/stable"]).ok(), c1, "a dry run moved the ref");
    nginx.clear_log();
    pur(&c, ["pull", "origin", "os/x86_64/stable"]).ok();
    assert_eq!(pur(&c, ["repo", "rev-parse", "origin:os/x86_64/stable"]).ok(), c2);
    let fetched: Vec<(String, u64)> = nginx
        .hits()
        .into_iter()
        .filter(|h| {
            h.status == 200
                && (h.path.ends_with(".filez") || h.path.ends_with(".dirtree") || h.path.ends_with(".dirmeta"))
        })
        .map(|h| {
            let name = h.path.trim_start_matches("/objects/").replace('/', "");
            (name.split('.').next().expect("checksum").to_owned(), h.bytes)
        })
        .collect();
    let mut a = planned.clone();
    let mut b = fetched.clone();
    a.sort();
    b.sort();
    assert_eq!(a, b, "dry run differs from the real pull");
    // Only the changed file, the new file and the dirtrees above them.
    let files = fetched.iter().filter(|(c, _)| planned.iter().any(|(p, _)| p == c)).count();
    assert!(files <= 8, "update fetched {files} objects: {fetched:?}");
    pur(&c, ["repo", "fsck"]).ok();
}

/// `--depth` fetches parents; downgrades are refused unless allowed.
#[test]
fn depth_and_downgrade() {
    require_root();
    let s = Scratch::new();
    let p = publish(&s);
    let c1 = pur(&p.repo, ["repo", "rev-parse", "os/x86_64/stable"]).ok();
    fs::write(p.tree.join("etc/os-release"), "ID=v2\n").expect("write");
    let c2 = commit_signed(&p.repo, &p.tree, &p.key, "os/x86_64/stable", "200");
    let nginx = Nginx::serve(&p.repo, s.path_buf());
    let c = client(&s, "client", "bare-user", &nginx.url(), &p.pubkey);
    pur(&c, ["pull", "--depth", "1", "origin", "os/x86_64/stable"]).ok();
    assert_eq!(pur(&c, ["repo", "rev-parse", "origin:os/x86_64/stable^"]).ok(), c1);
    pur(&c, ["repo", "fsck"]).ok();
    // The publisher moves the branch back to the older commit.
    pur(&p.repo, ["repo", "refs", "--delete", "os/x86_64/stable"]).ok();
    fs::write(p.repo.join("refs/heads/os/x86_64/stable"), format!("{c1}\n")).expect("write ref");
    pur(&p.repo, ["repo", "summary", "--update", "--sign-key", p.key.to_str().expect("utf-8")]).ok();
    let err = pur(&c, ["pull", "origin", "os/x86_64/stable"]).error_line();
    assert!(err.contains("refusing to downgrade") && err.contains("--allow-downgrade"), "{err}");
    assert_eq!(pur(&c, ["repo", "rev-parse", "origin:os/x86_64/stable"]).ok(), c2);
    pur(&c, ["pull", "--allow-downgrade", "origin", "os/x86_64/stable"]).ok();
    assert_eq!(pur(&c, ["repo", "rev-parse", "origin:os/x86_64/stable"]).ok(), c1);
}

/// A pull killed halfway resumes: the large object continues with a Range
/// request and what was verified is not fetched again.
#[test]
fn killed_pull_resumes() {
    require_root();
    let s = Scratch::new();
    let p = publish(&s);
    // 8 MiB that does not compress, served slowly.
    let big = noise(7, 8 << 20);
    fs::write(p.tree.join("usr/lib/big.bin"), &big).expect("write");
    commit_signed(&p.repo, &p.tree, &p.key, "os/x86_64/stable", "300");
    let nginx = Nginx::serve_limited(&p.repo, s.path_buf(), "1m");
    let c = client(&s, "client", "bare-user", &nginx.url(), &p.pubkey);
    let mut child = std::process::Command::new(bin())
        .args(["--repo", c.to_str().expect("utf-8"), "pull", "origin", "os/x86_64/stable"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn pull");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    child.kill().expect("kill");
    let _ = child.wait();
    assert!(pur(&c, ["repo", "refs"]).ok().is_empty(), "a killed pull moved a ref");
    pur(&c, ["repo", "fsck"]).ok();
    let first: u64 = nginx.hits().iter().map(|h| h.bytes).sum();
    assert!(first > 1 << 20, "the first run fetched only {first} bytes; the test needs it to be killed mid-object");
    nginx.clear_log();
    pur(&c, ["pull", "origin", "os/x86_64/stable"]).ok();
    pur(&c, ["repo", "fsck"]).ok();
    let hits = nginx.hits();
    assert!(hits.iter().any(|h| h.status == 206), "no Range request on the rerun: {hits:?}");
    let second: u64 = hits.iter().map(|h| h.bytes).sum();
    let total = first + second;
    let object_bytes: u64 = object_files(&p.repo).iter().map(|f| fs::metadata(f).map(|m| m.len()).unwrap_or(0)).sum();
    assert!(total <= object_bytes + (1 << 20), "fetched {total} bytes for {object_bytes} bytes of objects");
}

/// The real `ostree pull` reads what we publish, and we read what
/// `ostree commit` + `ostree summary -u` publish.
#[test]
fn ostree_interop_without_signatures() {
    require_root();
    let s = Scratch::new();
    let p = publish(&s);
    let nginx = Nginx::serve(&p.repo, s.path_buf());
    let theirs = s.join("ostree-client");
    let o = |args: &[&str]| {
        let mut v = vec![format!("--repo={}", theirs.display())];
        v.extend(args.iter().map(|a| (*a).to_owned()));
        ostree(v)
    };
    o(&["init", "--mode=bare-user"]).ok();
    o(&["remote", "add", "--no-gpg-verify", "origin", &nginx.url()]).ok();
    o(&["pull", "origin", "os/x86_64/stable"]).ok();
    o(&["fsck"]).ok();
    let want = pur(&p.repo, ["repo", "rev-parse", "os/x86_64/stable"]).ok();
    assert_eq!(o(&["rev-parse", "origin:os/x86_64/stable"]).ok(), want);

    // ostree publishes, we pull (unsigned: Debian's ostree cannot sign ed25519).
    let opub = s.join("ostree-pub");
    ostree([&format!("--repo={}", opub.display()), "init", "--mode=archive"]).ok();
    let oc = ostree([
        &format!("--repo={}", opub.display()),
        "commit",
        "-b",
        "os/x86_64/stable",
        "--generate-sizes",
        &format!("--tree=dir={}", p.tree.display()),
    ])
    .ok();
    ostree([&format!("--repo={}", opub.display()), "summary", "-u"]).ok();
    let n2 = Nginx::serve(&opub, s.path_buf());
    let ours = s.join("our-client");
    pur(&ours, ["repo", "init"]).ok();
    pur(&ours, ["remote", "add", "origin", &n2.url(), "--no-sign-verify"]).ok();
    // OSTree's `ostree.sizes` commit metadata gives the byte total up front.
    let r = pur(&ours, ["--progress", "json", "pull", "origin", "os/x86_64/stable"]);
    r.ok();
    let fetching = r
        .stderr()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["phase"] == "fetching")
        .expect("a fetching phase");
    let content: u64 = n2.hits().iter().filter(|h| h.path.ends_with(".filez")).map(|h| h.bytes).sum();
    assert_eq!(
        (&fetching["unit"], fetching["total"].as_u64()),
        (&serde_json::json!("bytes"), Some(content)),
        "{fetching}"
    );
    assert_eq!(pur(&ours, ["repo", "rev-parse", "origin:os/x86_64/stable"]).ok(), oc);
    pur(&ours, ["repo", "fsck"]).ok();
    ostree([&format!("--repo={}", ours.display()), "fsck"]).ok();
}

/// With an ed25519-capable `ostree` (built by tests/run.sh from Debian's
/// source, path in OSTREE_ED25519): signatures verify both ways, its pull
/// with sign-verify checks our signed summary and commits, and ours checks
/// what `ostree sign` and `ostree summary --sign` made.
#[test]
fn ostree_interop_with_ed25519_signatures() {
    require_root();
    let ot = std::env::var("OSTREE_ED25519").expect(
        "OSTREE_ED25519 must name an ed25519-capable ostree (tests/run.sh builds one with tests/build-ostree-ed25519.sh)",
    );
    let run_ot = |args: Vec<String>| {
        let out = std::process::Command::new(&ot).args(&args).output().expect("run ed25519 ostree");
        Run { out, what: format!("ostree-ed25519 {}", args.join(" ")) }
    };
    let s = Scratch::new();
    let p = publish(&s);
    let c = pur(&p.repo, ["repo", "rev-parse", "os/x86_64/stable"]).ok();
    let pubkey = fs::read_to_string(&p.pubkey).expect("read pub").trim().to_owned();
    let seckey = fs::read_to_string(&p.key).expect("read key").trim().to_owned();
    // ostree accepts our commit signature.
    run_ot(vec![format!("--repo={}", p.repo.display()), "sign".into(), "--verify".into(), c.clone(), pubkey.clone()])
        .ok();
    // We accept ostree's.
    let other = s.join("other-tree");
    fs::create_dir_all(other.join("usr")).expect("mkdir");
    fs::write(other.join("usr/f"), "x").expect("write");
    let oc = run_ot(vec![
        format!("--repo={}", p.repo.display()),
        "commit".into(),
        "-b".into(),
        "os/x86_64/other".into(),
        format!("--tree=dir={}", other.display()),
    ])
    .ok();
    run_ot(vec![format!("--repo={}", p.repo.display()), "sign".into(), oc.clone(), seckey.clone()]).ok();
    pur(&p.repo, ["repo", "verify", &oc, "--trusted-key", p.pubkey.to_str().expect("utf-8")]).ok();
    // ostree pulls our signed publish with sign-verify on...
    pur(&p.repo, ["repo", "summary", "--update", "--sign-key", p.key.to_str().expect("utf-8")]).ok();
    let nginx = Nginx::serve(&p.repo, s.path_buf());
    let oclient = s.join("ot-client");
    run_ot(vec![format!("--repo={}", oclient.display()), "init".into(), "--mode=bare-user".into()]).ok();
    let add = |name: &str, key: &str| {
        run_ot(vec![
            format!("--repo={}", oclient.display()),
            "remote".into(),
            "add".into(),
            "--set=gpg-verify=false".into(),
            "--set=sign-verify=true".into(),
            "--set=sign-verify-summary=true".into(),
            format!("--set=verification-ed25519-key={key}"),
            name.into(),
            nginx.url(),
        ])
        .ok();
    };
    add("good", &pubkey);
    run_ot(vec![format!("--repo={}", oclient.display()), "pull".into(), "good".into(), "os/x86_64/stable".into()]).ok();
    // ... and refuses it with another key.
    let wrong = s.join("wrong");
    pu(["repo", "keygen", "--output", wrong.to_str().expect("utf-8")]).ok();
    add("bad", fs::read_to_string(s.join("wrong.pub")).expect("read").trim());
    let r =
        run_ot(vec![format!("--repo={}", oclient.display()), "pull".into(), "bad".into(), "os/x86_64/other".into()]);
    assert!(!r.out.status.success(), "ostree pulled with the wrong key");
    // ostree signs the summary; our pull checks it.
    run_ot(vec![
        format!("--repo={}", p.repo.display()),
        "summary".into(),
        "-u".into(),
        "--sign-type=ed25519".into(),
        format!("--sign={seckey}"),
    ])
    .ok();
    let ours = client(&s, "our-client", "bare-user", &nginx.url(), &p.pubkey);
    pur(&ours, ["pull", "origin", "os/x86_64/other", "os/x86_64/stable"]).ok();
    pur(&ours, ["repo", "fsck"]).ok();
}

/// HTTPS with HTTP/2 and a private CA: the pull multiplexes over one
/// connection; without the CA it fails with a clear TLS error.
#[test]
fn https_http2_with_private_ca() {
    require_root();
    let s = Scratch::new();
    let p = publish(&s);
    let (nginx, ca) = Nginx::serve_tls(&p.repo, s.path_buf());
    let ca = ca.to_str().expect("utf-8");
    without_then_with(&s.join("client"), &nginx.https_url(), &p.pubkey, &[], &["--tls-ca", ca], |e| {
        e.contains("certificate") || e.contains("UnknownIssuer")
    });
    assert!(!object_hits(&nginx).is_empty());
}

/// Authenticated remotes: a bearer token read from a file, and a TLS client
/// certificate; without them the server refuses and the pull says so.
#[test]
fn bearer_token_and_client_certificate() {
    require_root();
    let s = Scratch::new();
    let p = publish(&s);
    let nginx = Nginx::serve_bearer(&p.repo, s.path_buf(), "s3cr3t-token");
    let token = s.join("token");
    fs::write(&token, "s3cr3t-token\n").expect("write token");
    let token = token.to_str().expect("utf-8");
    without_then_with(&s.join("client"), &nginx.url(), &p.pubkey, &[], &["--bearer-token-file", token], |e| {
        e.contains("401")
    });

    let (tls, ca, cert, key) = Nginx::serve_tls_client_auth(&p.repo, s.path_buf());
    let utf8 = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let (ca, cert, key) = (utf8(&ca), utf8(&cert), utf8(&key));
    without_then_with(
        &s.join("client2"),
        &tls.https_url(),
        &p.pubkey,
        &["--tls-ca", &ca],
        &["--tls-client-cert", &cert, "--tls-client-key", &key],
        |e| e.contains("400") || e.contains("certificate"),
    );
}

/// In a new repository `c`, adds remote `without` (URL, key, `common`) and
/// `origin` (the same plus `extra`): a pull from `without` must fail with
/// an error line `refused` accepts; one from `origin` must succeed.
fn without_then_with(
    c: &Path,
    url: &str,
    pubkey: &Path,
    common: &[&str],
    extra: &[&str],
    refused: impl Fn(&str) -> bool,
) {
    pur(c, ["repo", "init"]).ok();
    let key = pubkey.to_str().expect("utf-8");
    for (name, more) in [("without", &[][..]), ("origin", extra)] {
        let mut args = vec!["remote", "add", name, url, "--trusted-key", key];
        args.extend(common.iter().chain(more));
        pur(c, args).ok();
    }
    let err = pur(c, ["pull", "without", "os/x86_64/stable"]).error_line();
    assert!(refused(&err), "{err}");
    pur(c, ["pull", "origin", "os/x86_64/stable"]).ok();
    pur(c, ["repo", "fsck"]).ok();
}

/// The publisher's size index gives the pull its total up front: the
/// progress bar counts bytes against it, and a repository too small for
/// the pull is refused before any content is downloaded.
#[test]
fn total_bytes_up_front_and_space_check() {
    require_root();
    let s = Scratch::new();
    let p = publish(&s);
    let big = noise(8, 6 << 20);
    fs::write(p.tree.join("usr/lib/big.bin"), &big).expect("write");
    commit_signed(&p.repo, &p.tree, &p.key, "os/x86_64/stable", "300");
    let nginx = Nginx::serve(&p.repo, s.path_buf());
    let c = client(&s, "client", "bare-user", &nginx.url(), &p.pubkey);
    let r = pur(&c, ["--progress", "json", "pull", "origin", "os/x86_64/stable"]);
    r.ok();
    let lines: Vec<serde_json::Value> = r.stderr().lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let fetching = lines.iter().find(|l| l["phase"] == "fetching" && l["finished"] == false).expect("a fetching phase");
    assert_eq!(fetching["unit"], "bytes", "{fetching}");
    let total = fetching["total"].as_u64().expect("a total known up front");
    let done =
        lines.iter().filter(|l| l["phase"] == "fetching").filter_map(|l| l["done"].as_u64()).max().expect("done");
    assert_eq!(done, total, "bytes fetched differ from the announced total");
    let content: u64 = nginx.hits().iter().filter(|h| h.path.ends_with(".filez")).map(|h| h.bytes).sum();
    assert_eq!(total, content);

    // A client repository on a small filesystem: refused before content.
    let small = s.join("small");
    let _fs = Tmpfs::mount(&small, "4m");
    let repo = small.join("repo");
    pur(&repo, ["repo", "init"]).ok();
    pur(&repo, ["remote", "add", "origin", &nginx.url(), "--trusted-key", p.pubkey.to_str().expect("utf-8")]).ok();
    nginx.clear_log();
    let err = pur(&repo, ["pull", "origin", "os/x86_64/stable"]).error_line();
    assert!(err.contains("not enough space") && err.contains("the pull needs"), "{err}");
    assert!(!nginx.hits().iter().any(|h| h.path.ends_with(".filez")), "content was downloaded before the space check");
    assert!(pur(&repo, ["repo", "refs"]).ok().is_empty());
}

/// A `file://` remote (an update medium, a mounted disk): verified like
/// HTTP; an update fetches only what changed; a wrong key is refused.
#[test]
fn file_remote() {
    require_root();
    let s = Scratch::new();
    let p = publish(&s);
    let url = format!("file://{}", p.repo.display());
    let c = client(&s, "client", "bare-user", &url, &p.pubkey);
    pur(&c, ["pull", "origin", "os/x86_64/stable"]).ok();
    pur(&c, ["repo", "fsck"]).ok();
    fs::write(p.tree.join("usr/lib/new-file"), "v2\n").expect("write");
    let v2 = commit_signed(&p.repo, &p.tree, &p.key, "os/x86_64/stable", "200");
    let out = pur(&c, ["--json", "pull", "origin", "os/x86_64/stable"]).ok();
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(pur(&c, ["repo", "rev-parse", "origin:os/x86_64/stable"]).ok(), v2);
    // One new file, its new parent dirtrees, the commit: a handful of objects, not the tree.
    let fetched = v["contentObjects"].as_u64().expect("contentObjects");
    assert_eq!(fetched, 1, "{out}");
    // Another publisher's key is refused.
    let other = s.join("other");
    pu(["repo", "keygen", "--output", other.to_str().expect("utf-8")]).ok();
    let c2 = client(&s, "client2", "bare-user", &url, &s.join("other.pub"));
    let err = pur(&c2, ["pull", "origin", "os/x86_64/stable"]).error_line();
    assert!(err.contains("signature"), "{err}");
    // A missing directory is a clear error.
    let c3 = client(&s, "client3", "bare-user", "file:///nonexistent/repo", &p.pubkey);
    let err = pur(&c3, ["pull", "origin", "os/x86_64/stable"]).error_line();
    assert!(err.contains("/nonexistent/repo"), "{err}");
}

/// A host without CA certificates (offline, minimal) pulls from a
/// `file://` remote: nothing connects, so no trust store is needed. Found
/// by the VM test, whose guest had none.
#[test]
fn file_remote_needs_no_ca_certificates() {
    require_root();
    let s = Scratch::new();
    let p = publish(&s);
    let c = client(&s, "client", "bare-user", &format!("file://{}", p.repo.display()), &p.pubkey);
    // The system trust store as rustls-native-certs finds it: empty.
    let empty = s.join("no-certs");
    fs::create_dir_all(&empty).expect("mkdir");
    let out = std::process::Command::new(bin())
        .args(["--repo".as_ref(), c.as_os_str()])
        .args(["pull", "origin", "os/x86_64/stable"])
        .env("SSL_CERT_FILE", empty.join("none.pem"))
        .env("SSL_CERT_DIR", &empty)
        .output()
        .expect("run photon-upgrade");
    assert!(out.status.success(), "pull failed: {}", String::from_utf8_lossy(&out.stderr));
    pur(&c, ["repo", "rev-parse", "origin:os/x86_64/stable"]).ok();
}
