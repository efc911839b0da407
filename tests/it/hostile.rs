//! `pull` against a hostile server (issue 3): a small HTTP/1.1 server
//! written here with std only serves a repository published by our own CLI,
//! and can be told to misbehave per path or path pattern. Every hostile
//! case must end in exit 1 with one `error:` line naming what was wrong,
//! the client's refs untouched and `repo fsck` clean; 500s followed by
//! success must succeed.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gvariant::{Marker, gv};
use repo_format::commit::keys as commit_keys;
use repo_format::sign::{self as fmt, SecretKey};
use repo_format::summary::keys as summary_keys;
use repo_format::{Checksum, Commit, DirTree, FileHeader, Metadata, Summary, TreeFile, ValidName, Value, Xattrs};
use sha2::Digest;

use crate::util::*;

// ---------------------------------------------------------------------------
// The hostile server.

/// How the server misbehaves on a matching path.
#[derive(Clone, Debug)]
enum Act {
    /// Serve these bytes instead of the file (correct Content-Length).
    Serve(Vec<u8>),
    /// Serve the file with one byte in the middle flipped.
    Corrupt,
    /// Declare the full length, send this many bytes, close the connection.
    Truncate(usize),
    /// Declare this many bytes, send the whole (longer) body.
    ShortLength(usize),
    /// A chunked body that never ends.
    Endless,
    /// Declare the full length, send one byte every this many milliseconds.
    Drip(u64),
    /// Declare the full length, send this many bytes, then nothing.
    Stall(usize),
    /// Answer 500 this many times for each path, then serve normally.
    Fail500(u32),
    /// Redirect between two URLs of the same path, forever.
    RedirectLoop,
    /// Answer 404.
    NotFound,
}

/// One request the server saw: path (no query), status, body bytes sent.
#[derive(Clone, Debug)]
struct Hit {
    path: String,
    status: u16,
    bytes: u64,
}

struct Shared {
    root: PathBuf,
    rules: Mutex<Vec<(String, Act)>>,
    log: Mutex<Vec<Hit>>,
    failed: Mutex<HashMap<String, u32>>,
    stop: AtomicBool,
    conns: Mutex<Vec<(TcpStream, JoinHandle<()>)>>,
}

/// A misbehaving HTTP/1.1 server on 127.0.0.1; stops (and joins every
/// thread it started) when dropped.
struct Hostile {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// True if `path` matches `pattern`: `*` anything, `*.ext` by suffix,
/// otherwise exactly.
fn matches(pattern: &str, path: &str) -> bool {
    if let Some(suffix) = pattern.strip_prefix('*') {
        path.ends_with(suffix)
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        path.starts_with(prefix)
    } else {
        pattern == path
    }
}

impl Hostile {
    fn serve(root: &Path) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        listener.set_nonblocking(true).expect("non-blocking listener");
        let shared = Arc::new(Shared {
            root: root.to_owned(),
            rules: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            failed: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        });
        let sh = Arc::clone(&shared);
        let accept = std::thread::spawn(move || {
            while !sh.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if stream.set_nonblocking(false).is_err() {
                            continue;
                        }
                        let Ok(clone) = stream.try_clone() else { continue };
                        let sh2 = Arc::clone(&sh);
                        let handle = std::thread::spawn(move || handle_connection(&sh2, stream));
                        let mut conns = sh.conns.lock().expect("conns lock");
                        // Reap finished connections so descriptors do not pile up.
                        let mut i = 0;
                        while i < conns.len() {
                            if conns[i].1.is_finished() {
                                let (_, h) = conns.swap_remove(i);
                                let _ = h.join();
                            } else {
                                i += 1;
                            }
                        }
                        conns.push((clone, handle));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Hostile { port, shared, accept: Some(accept) }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Adds a rule; the first matching rule wins.
    fn on(&self, pattern: &str, act: Act) {
        self.shared.rules.lock().expect("rules lock").push((pattern.to_owned(), act));
    }

    fn clear_rules(&self) {
        self.shared.rules.lock().expect("rules lock").clear();
    }

    fn hits(&self) -> Vec<Hit> {
        self.shared.log.lock().expect("log lock").clone()
    }

    fn clear_log(&self) {
        self.shared.log.lock().expect("log lock").clear();
    }

    /// Requests whose path matches `pattern`.
    fn hits_of(&self, pattern: &str) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| matches(pattern, &h.path)).collect()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        let conns: Vec<_> = self.shared.conns.lock().map(|mut c| c.drain(..).collect()).unwrap_or_default();
        for (stream, handle) in conns {
            let _ = stream.shutdown(Shutdown::Both);
            let _ = handle.join();
        }
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
}

fn read_request(r: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    // Headers: read and ignore (Range is ignored on purpose: a 200 restarts).
    let mut total = 0;
    loop {
        let mut h = String::new();
        let n = r.read_line(&mut h).ok()?;
        total += n;
        if n == 0 || total > 64 * 1024 {
            return None;
        }
        if h == "\r\n" || h == "\n" {
            break;
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
    Some(Request { method, path: path.trim_start_matches('/').to_owned(), query: query.to_owned() })
}

fn handle_connection(sh: &Shared, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    if let Ok(read_half) = stream.try_clone() {
        let mut reader = BufReader::new(read_half);
        if let Some(req) = read_request(&mut reader) {
            respond(sh, &stream, &mut reader, &req);
        }
    }
    // Every response ends the connection (`Connection: close`); shut the
    // socket down explicitly, as the server keeps a clone of it.
    let _ = stream.shutdown(Shutdown::Both);
}

/// Sleeps `ms`, waking early when the server stops; false if it stopped.
fn nap(sh: &Shared, ms: u64) -> bool {
    let end = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < end {
        if sh.stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(ms.min(10)));
    }
    !sh.stop.load(Ordering::SeqCst)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Whatever",
    }
}

fn respond(sh: &Shared, mut out: &TcpStream, reader: &mut BufReader<TcpStream>, req: &Request) {
    let act = sh.rules.lock().expect("rules lock").iter().find(|(p, _)| matches(p, &req.path)).map(|(_, a)| a.clone());
    let file = if req.path.split('/').any(|c| c == ".." || c.is_empty()) {
        None
    } else {
        fs::read(sh.root.join(&req.path)).ok()
    };
    let mut act = act;
    if let Some(Act::Fail500(n)) = act {
        let mut failed = sh.failed.lock().expect("failed lock");
        let count = failed.entry(req.path.clone()).or_insert(0);
        if *count < n {
            *count += 1;
        } else {
            act = None;
        }
    }
    let (status, body) = match (&act, file) {
        (Some(Act::NotFound), _) => (404, Vec::new()),
        (Some(Act::Fail500(_)), _) => (500, b"try again later".to_vec()),
        (Some(Act::RedirectLoop), _) => (302, Vec::new()),
        (Some(Act::Serve(b)), _) => (200, b.clone()),
        (_, Some(f)) => (200, f),
        (_, None) => (404, Vec::new()),
    };
    let idx = {
        let mut log = sh.log.lock().expect("log lock");
        log.push(Hit { path: req.path.clone(), status, bytes: 0 });
        log.len() - 1
    };
    let head_only = req.method == "HEAD";
    let mut headers = format!("HTTP/1.1 {status} {}\r\nConnection: close\r\n", reason(status));
    if status == 302 {
        let next = if req.query == "loop=1" { "loop=2" } else { "loop=1" };
        headers.push_str(&format!("Location: /{}?{next}\r\n", req.path));
    }
    let mut sent = 0u64;
    let mut send = |out: &mut &TcpStream, data: &[u8]| -> bool {
        if out.write_all(data).is_err() {
            return false;
        }
        sent += data.len() as u64;
        true
    };
    let ok_body = status == 200 && !head_only;
    match act {
        Some(Act::Endless) if status == 200 => {
            headers.push_str("Transfer-Encoding: chunked\r\n\r\n");
            if out.write_all(headers.as_bytes()).is_ok() && !head_only {
                let chunk = vec![b'A'; 64 * 1024];
                let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                framed.extend_from_slice(&chunk);
                framed.extend_from_slice(b"\r\n");
                let start = Instant::now();
                while !sh.stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(60) {
                    if !send(&mut out, &framed) {
                        break;
                    }
                }
            }
        }
        Some(Act::ShortLength(n)) if status == 200 => {
            headers.push_str(&format!("Content-Length: {}\r\n\r\n", n.min(body.len())));
            if out.write_all(headers.as_bytes()).is_ok() && ok_body {
                send(&mut out, &body);
            }
        }
        Some(Act::Truncate(n)) if status == 200 => {
            headers.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            if out.write_all(headers.as_bytes()).is_ok() && ok_body {
                send(&mut out, &body[..n.min(body.len())]);
            }
        }
        Some(Act::Drip(ms)) if status == 200 => {
            headers.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            if out.write_all(headers.as_bytes()).is_ok() && ok_body {
                for b in &body {
                    if !send(&mut out, std::slice::from_ref(b)) || !nap(sh, ms) {
                        break;
                    }
                }
            }
        }
        Some(Act::Stall(n)) if status == 200 => {
            headers.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            if out.write_all(headers.as_bytes()).is_ok() && ok_body && send(&mut out, &body[..n.min(body.len())]) {
                // Hold the connection open, silent, until the client gives
                // up (EOF), the server stops, or a minute passes.
                let _ = reader.get_ref().set_read_timeout(Some(Duration::from_millis(20)));
                let start = Instant::now();
                let mut buf = [0u8; 512];
                while !sh.stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(60) {
                    match reader.read(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                            continue;
                        }
                        Err(_) => break,
                    }
                }
            }
        }
        _ => {
            let mut body = body;
            if matches!(act, Some(Act::Corrupt)) && status == 200 && !body.is_empty() {
                let i = body.len() / 2;
                body[i] ^= 0xff;
            }
            headers.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            if out.write_all(headers.as_bytes()).is_ok() && !head_only {
                send(&mut out, &body);
            }
        }
    }
    let _ = out.flush();
    if let Some(h) = sh.log.lock().expect("log lock").get_mut(idx) {
        h.bytes = sent;
    }
}

// ---------------------------------------------------------------------------
// A published repository, a client that already pulled from it, helpers.

const REF: &str = "os/stable";
/// In `World::new`'s remote arguments: the path of the second key's `.pub`.
const KEY2_PUB: &str = "@key2.pub";

/// Fast client timeouts so the whole file runs in seconds.
const FAST: [&str; 10] = [
    "--set",
    "zero-progress-timeout=1",
    "--set",
    "low-speed-limit=2000",
    "--set",
    "low-speed-time=2",
    "--set",
    "retries=2",
    "--set",
    "retry-backoff-ms=50",
];

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// Size of the incompressible file new in version `v`.
fn data_len(v: u64) -> usize {
    if v >= 2 { 300_000 } else { 150_000 }
}

/// The OS tree of version `v`: each version changes a file, adds a new
/// incompressible file (150 kB, 300 kB from v2 on) and changes the mode of
/// `srv` (a new dirmeta).
fn write_tree(root: &Path, v: u64) {
    let _ = fs::remove_dir_all(root);
    for d in ["usr/bin", "usr/lib", "etc", "srv"] {
        fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    fs::write(root.join("usr/bin/tool"), b"#!/bin/sh\necho tool\n").expect("write");
    fs::set_permissions(root.join("usr/bin/tool"), fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::write(root.join("etc/os-release"), format!("NAME=Sample\nVERSION_ID={v}\n")).expect("write");
    fs::write(root.join(format!("usr/lib/data-{v}.bin")), noise(v + 1, data_len(v))).expect("write");
    fs::write(root.join("srv/readme"), b"served files\n").expect("write");
    fs::set_permissions(root.join("srv"), fs::Permissions::from_mode([0o755, 0o750, 0o700, 0o711][v as usize % 4]))
        .expect("chmod");
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

struct World {
    scratch: Scratch,
    /// The published archive repository the server serves.
    publ: PathBuf,
    /// The publisher's secret key (trusted by the client) ...
    key: PathBuf,
    /// ... and another one the client does not trust.
    key2: PathBuf,
    client: PathBuf,
    server: Hostile,
    /// Commits on `os/stable`: v0 <- v1; the client has v1 (not v0).
    v0: String,
    v1: String,
}

impl World {
    /// Publishes v0 and v1, starts the server, makes a client whose remote
    /// `origin` has `remote_args` (besides the fast timeouts) and pulls v1.
    fn new(remote_args: &[&str]) -> World {
        World::with_client_mode("bare-user", remote_args)
    }

    /// As [`World::new`], with a client repository of `mode`.
    fn with_client_mode(mode: &str, remote_args: &[&str]) -> World {
        let scratch = Scratch::new();
        let publ = scratch.join("publ");
        let key = scratch.join("key");
        let key2 = scratch.join("key2");
        pur(&publ, ["repo", "init", "--mode", "archive"]).ok();
        pu(["repo", "keygen", "-o", s(&key)]).ok();
        pu(["repo", "keygen", "-o", s(&key2)]).ok();
        let t = now();
        let mut w = World {
            publ,
            key,
            key2,
            client: scratch.join("client"),
            server: Hostile::serve(&scratch.join("publ")),
            v0: String::new(),
            v1: String::new(),
            scratch,
        };
        let key = w.key.clone();
        w.v0 = w.commit(0, t - 3000, &key);
        w.v1 = w.commit(1, t - 2000, &key);
        w.summary();
        fs::create_dir_all(w.scratch.join("sysroot")).expect("mkdir sysroot");
        pur(&w.client, ["repo", "init", "--mode", mode]).ok();
        let mut add = vec!["remote", "add", "origin"];
        let url = w.server.url();
        add.push(&url);
        let key_pub = format!("{}.pub", s(&w.key));
        add.extend(["--trusted-key", key_pub.as_str()]);
        add.extend(FAST);
        let key2_pub = format!("{}.pub", s(&w.key2));
        add.extend(remote_args.iter().map(|a| if *a == KEY2_PUB { key2_pub.as_str() } else { a }));
        pur(&w.client, &add).ok();
        w.pull(&[REF]).ok();
        assert_eq!(w.client_ref(), Some(w.v1.clone()), "setup: the client has v1");
        w.server.clear_log();
        w
    }

    /// Commits version `v` of the tree to `os/stable` signed with `key`.
    fn commit(&self, v: u64, timestamp: u64, key: &Path) -> String {
        let tree = self.scratch.join("tree");
        write_tree(&tree, v);
        let ts = timestamp.to_string();
        let version = format!("1.{v}");
        pur(
            &self.publ,
            ["repo", "commit", "-b", REF, "--version", &version, "--timestamp", &ts, "--sign-key", s(key), s(&tree)],
        )
        .ok()
    }

    /// `repo summary --update`, signed by the trusted key.
    fn summary(&self) {
        pur(&self.publ, ["repo", "summary", "--update", "--sign-key", s(&self.key)]).ok();
    }

    /// Publishes v2 (parent v1) signed with `key`, and a signed summary.
    fn publish_v2_signed_by(&self, key: &Path) -> String {
        let c = self.commit(2, now() - 1000, key);
        self.summary();
        c
    }

    fn publish_v2(&self) -> String {
        self.publish_v2_signed_by(&self.key.clone())
    }

    /// Runs `pull origin ARGS` on the client, killed after a minute: a hang
    /// is a bug to report, not a test to wait for.
    fn pull(&self, args: &[&str]) -> Run {
        let sysroot = self.scratch.join("sysroot");
        let mut all: Vec<&str> = vec!["--repo", s(&self.client), "--sysroot", s(&sysroot), "pull", "origin"];
        all.extend(args);
        run_with_deadline(&all, Duration::from_secs(60))
    }

    fn client_ref(&self) -> Option<String> {
        let r = pur(&self.client, ["repo", "rev-parse", &format!("origin:{REF}")]);
        r.out.status.success().then(|| r.stdout().trim().to_owned())
    }

    fn client_refs(&self) -> String {
        pur(&self.client, ["--json", "repo", "refs"]).ok()
    }

    fn secret(&self, key: &Path) -> SecretKey {
        fmt::parse_secret_key(&fs::read_to_string(key).expect("reading a secret key")).expect("a secret key")
    }

    /// The published summary as it is now.
    fn published_summary(&self) -> Summary {
        Summary::from_bytes(&fs::read(self.publ.join("summary")).expect("published summary")).expect("valid summary")
    }

    /// Serves `summary` (and a `summary.sig` by `key`) instead of the published ones.
    fn serve_summary(&self, summary: &Summary, key: &Path) {
        let bytes = summary.to_bytes();
        let mut sig = Metadata::new();
        fmt::add_signature(&mut sig, &self.secret(key).sign(&bytes)).expect("adding a signature");
        self.server.on("summary", Act::Serve(bytes));
        self.server.on("summary.sig", Act::Serve(sig.to_bytes()));
    }

    /// The published summary with `os/stable` pointing at `commit` and
    /// metadata changed by `edit`.
    fn summary_with(&self, commit: &str, edit: impl FnOnce(&mut Metadata)) -> Summary {
        let old = self.published_summary();
        let id = Checksum::from_hex(commit).expect("commit id");
        let size = fs::metadata(obj_path(&self.publ, commit, "commit")).map(|m| m.len()).unwrap_or(0);
        let mut refs: Vec<_> = old.refs().iter().filter(|r| r.name != REF).cloned().collect();
        let mut entry = old.get(REF).expect("os/stable in the summary").clone();
        entry.checksum = id;
        entry.commit_size = size;
        refs.push(entry);
        let mut meta = old.metadata.clone();
        edit(&mut meta);
        Summary::new(refs, meta).expect("a valid summary")
    }

    fn load_commit(&self, c: &str) -> Commit {
        Commit::from_bytes(&fs::read(obj_path(&self.publ, c, "commit")).expect("commit object")).expect("commit")
    }

    /// Plants a commit of `root_tree` (root dirmeta of v1, parent v1)
    /// signed by the trusted key, points `os/stable` at it and re-signs the
    /// summary: every signature checks out, only the tree is hostile.
    fn publish_crafted_tree(&self, root_tree: &str) -> String {
        let v1 = self.load_commit(&self.v1);
        let mut metadata = Metadata::new();
        metadata.insert(commit_keys::VERSION, Value::new_str("1.2-crafted"));
        metadata.insert(commit_keys::REF_BINDING, Value::new_strs(&[REF]));
        let commit = Commit {
            metadata,
            parent: Some(Checksum::from_hex(&self.v1).expect("v1 id")),
            related: vec![],
            subject: "crafted".into(),
            body: String::new(),
            timestamp: now() - 500,
            root_tree: Checksum::from_hex(root_tree).expect("tree id"),
            root_meta: v1.root_meta,
        };
        let c = self.plant_signed_commit(&commit.to_bytes());
        fs::write(self.publ.join("refs/heads").join(REF), format!("{c}\n")).expect("moving the published ref");
        self.summary();
        c
    }

    /// Plants commit bytes under their true name with a detached signature
    /// by the trusted key.
    fn plant_signed_commit(&self, bytes: &[u8]) -> String {
        let c = plant(&self.publ, bytes, "commit");
        let mut meta = Metadata::new();
        fmt::add_signature(&mut meta, &self.secret(&self.key).sign(bytes)).expect("signing");
        fs::write(obj_path(&self.publ, &c, "commitmeta"), meta.to_bytes()).expect("writing commitmeta");
        c
    }

    /// Runs a pull that must be refused: exit 1, a single line on stderr
    /// starting `error:` and containing every word of `words`, refs
    /// unchanged, fsck clean. Returns the error line.
    #[track_caller]
    fn refused(&self, args: &[&str], words: &[&str]) -> String {
        let before = self.client_refs();
        let r = self.pull(args);
        let line = r.error_line();
        eprintln!("refused as expected: {line}");
        assert_eq!(r.stderr().trim_end().lines().count(), 1, "more than the error line on stderr:\n{}", r.stderr());
        for w in words {
            assert!(line.contains(w), "error line does not name {w:?}:\n{line}");
        }
        assert_eq!(self.client_refs(), before, "refs moved by a refused pull ({line})");
        pur(&self.client, ["repo", "fsck"]).ok();
        line
    }

    /// Object requests that reach the trees (after the commits).
    fn tree_hits(&self) -> Vec<Hit> {
        self.server
            .hits()
            .into_iter()
            .filter(|h| [".dirtree", ".dirmeta", ".filez"].iter().any(|e| h.path.ends_with(e)))
            .collect()
    }
}

/// Runs our binary with a deadline; kills it and fails the test if it hangs.
fn run_with_deadline(args: &[&str], deadline: Duration) -> Run {
    let what = format!("photon-upgrade {}", args.join(" "));
    let mut child = Command::new(bin())
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("PHOTON_UPGRADE_REPO")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let mut so = child.stdout.take().expect("stdout pipe");
    let mut se = child.stderr.take().expect("stderr pipe");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("waiting for the child") {
            break st;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = t_err.join().unwrap_or_default();
            panic!("{what} hung for {deadline:?}; stderr so far:\n{}", String::from_utf8_lossy(&err));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    Run { out: std::process::Output { status, stdout, stderr }, what }
}

fn obj_path(repo: &Path, c: &str, ext: &str) -> PathBuf {
    repo.join("objects").join(&c[..2]).join(format!("{}.{ext}", &c[2..]))
}

/// Writes an object under its true name (sha256 of `data`).
fn plant(repo: &Path, data: &[u8], ext: &str) -> String {
    let c = hex::encode(sha2::Sha256::digest(data));
    plant_as(repo, &c, data, ext);
    c
}

fn plant_as(repo: &Path, c: &str, data: &[u8], ext: &str) {
    let p = obj_path(repo, c, ext);
    fs::create_dir_all(p.parent().expect("objects/XX")).expect("mkdir");
    fs::write(p, data).expect("writing an object");
}

fn id(c: &str) -> Vec<u8> {
    hex::decode(c).expect("hex checksum")
}

/// A dirtree with raw (unvalidated) names, as a hostile publisher makes it.
fn raw_dirtree(files: &[(&str, &str)], dirs: &[(&str, &str, &str)]) -> Vec<u8> {
    let f: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, c)| (*n, id(c))).collect();
    let f: Vec<(&str, &[u8])> = f.iter().map(|(n, c)| (*n, c.as_slice())).collect();
    let d: Vec<(&str, Vec<u8>, Vec<u8>)> = dirs.iter().map(|(n, t, m)| (*n, id(t), id(m))).collect();
    let d: Vec<(&str, &[u8], &[u8])> = d.iter().map(|(n, t, m)| (*n, t.as_slice(), m.as_slice())).collect();
    gv!("(a(say)a(sayay))").serialize_to_vec(&(&f, &d))
}

/// A regular-file header, root-owned, 0644.
fn file_header() -> FileHeader {
    FileHeader { uid: 0, gid: 0, mode: 0o100_644, symlink_target: String::new(), xattrs: Xattrs::new() }
}

fn deflate(chunks: impl Iterator<Item = Vec<u8>>) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(9));
    for c in chunks {
        e.write_all(&c).expect("deflating");
    }
    e.finish().expect("deflating")
}

/// The bytes of a root dirtree holding only the file `name` -> `file`.
fn dirtree_bytes(name: &str, file: &str) -> Vec<u8> {
    DirTree::new(
        vec![TreeFile {
            name: ValidName::new(name).expect("valid name"),
            checksum: Checksum::from_hex(file).expect("file id"),
        }],
        vec![],
    )
    .expect("a valid tree")
    .to_bytes()
}

// ---------------------------------------------------------------------------
// Transport: bytes, lengths, speed, status codes.

#[test]
fn wrong_bytes_for_a_dirtree() {
    let w = World::new(&[]);
    w.publish_v2();
    w.server.on("*.dirtree", Act::Corrupt);
    w.refused(&[REF], &["server sent wrong bytes for dirtree object", "they hash to"]);
}

#[test]
fn wrong_bytes_for_a_dirmeta() {
    let w = World::new(&[]);
    w.publish_v2();
    w.server.on("*.dirmeta", Act::Corrupt);
    let line = w.refused(&[REF], &["server sent wrong bytes for dirmeta object"]);
    assert!(!w.server.hits_of("*.dirmeta").is_empty(), "{line}");
}

#[test]
fn wrong_bytes_for_a_content_object() {
    let w = World::new(&[]);
    let v2 = w.publish_v2();
    // Every content object is answered with the (valid) bytes of another one.
    let other = object_files(&w.publ)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "filez"))
        .expect("a published content object");
    w.server.on("*.filez", Act::Serve(fs::read(other).expect("read")));
    let line = w.refused(&[REF], &["content object", "hashes to", "refusing to store it"]);
    assert!(!line.contains(&v2), "the commit is not to blame: {line}");
}

#[test]
fn summary_points_at_a_commit_that_hashes_wrong() {
    let w = World::new(&[]);
    let v2 = w.publish_v2();
    // The summary and signatures are right; the commit served is v1's.
    let v1_bytes = fs::read(obj_path(&w.publ, &w.v1, "commit")).expect("read");
    w.server.on(&format!("objects/{}/{}.commit", &v2[..2], &v2[2..]), Act::Serve(v1_bytes));
    w.refused(&[REF], &[&format!("server sent wrong bytes for commit {v2}"), &w.v1]);
    assert!(w.tree_hits().is_empty(), "tree objects requested after a bad commit: {:?}", w.tree_hits());
}

#[test]
fn truncated_body() {
    let w = World::new(&[]);
    let v2 = w.publish_v2();
    w.server.on("*.filez", Act::Truncate(1000));
    let line = w.refused(&[REF], &["content object", ".filez", "giving up after 3 attempts"]);
    assert!(line.contains("body") || line.contains("short"), "{line}");
    // Once the server behaves, the same pull completes.
    w.server.clear_rules();
    w.pull(&[REF]).ok();
    assert_eq!(w.client_ref(), Some(v2));
}

#[test]
fn body_longer_than_declared() {
    let w = World::new(&[]);
    w.publish_v2();
    w.server.on("*.dirtree", Act::ShortLength(20));
    w.refused(&[REF], &["server sent wrong bytes for dirtree object"]);
}

#[test]
fn endless_metadata_body() {
    let w = World::new(&[]);
    w.publish_v2();
    w.server.on("*.dirtree", Act::Endless);
    w.refused(&[REF], &[".dirtree", "body is larger than 67108864 bytes"]);
}

#[test]
fn endless_content_body_stops_at_max_object_size() {
    // v2's 300 kB file is within the limit by the size index; its body never ends.
    let w = World::new(&["--set", "max-object-size=400000"]);
    w.publish_v2();
    w.server.on("*.filez", Act::Endless);
    let line = w.refused(&[REF], &[".filez", "body is larger than"]);
    let sent: u64 = w.server.hits_of("*.filez").iter().map(|h| h.bytes).sum();
    assert!(sent < 64 << 20, "the client read {sent} bytes of an endless body before refusing it ({line})");
}

#[test]
fn slow_drip_under_the_zero_progress_timeout() {
    let w = World::new(&[]);
    w.publish_v2();
    // A byte every 150 ms never trips the 1 s zero-progress timeout.
    w.server.on("*.dirtree", Act::Drip(150));
    let start = Instant::now();
    w.refused(&[REF], &[".dirtree", "slower than 2000 bytes/s for 2s", "giving up after 3 attempts"]);
    assert!(start.elapsed() < Duration::from_secs(20), "took {:?}", start.elapsed());
}

#[test]
fn stall_mid_body() {
    let w = World::new(&[]);
    let v2 = w.publish_v2();
    w.server.on("*.filez", Act::Stall(4096));
    w.refused(&[REF], &[".filez", "no data for 1s", "giving up after 3 attempts"]);
    // Once the server behaves, the same pull completes.
    w.server.clear_rules();
    w.pull(&[REF]).ok();
    assert_eq!(w.client_ref(), Some(v2));
    pur(&w.client, ["repo", "fsck"]).ok();
}

#[test]
fn five_hundreds_then_success() {
    let w = World::new(&[]);
    let v2 = w.publish_v2();
    for p in [
        "summary",
        "summary.sig",
        "*.commit",
        "*.commitmeta",
        "*.dirtree",
        "*.dirmeta",
        "*.filez",
        "extensions/photon-upgrade/sizes/*",
    ] {
        w.server.on(p, Act::Fail500(2));
    }
    w.pull(&[REF]).ok();
    assert_eq!(w.client_ref(), Some(v2.clone()));
    pur(&w.client, ["repo", "fsck"]).ok();
    let hits = w.server.hits();
    let fails = hits.iter().filter(|h| h.status == 500).count();
    let oks: Vec<_> = hits.iter().filter(|h| h.status == 200).collect();
    assert!(fails >= 2 * oks.len(), "each path failed twice first: {hits:?}");
    for h in &oks {
        let n = hits.iter().filter(|x| x.path == h.path && x.status == 500).count();
        assert_eq!(n, 2, "{} got {n} 500s before success", h.path);
    }
    // The checkout is v2.
    let co = w.scratch.join("co");
    pur(&w.client, ["repo", "checkout", "--user-mode", &v2, s(&co)]).ok();
    assert_eq!(fs::read(co.join("usr/lib/data-2.bin")).expect("read"), noise(3, data_len(2)));
}

#[test]
fn five_hundreds_forever_give_up() {
    let w = World::new(&[]);
    w.publish_v2();
    w.server.on("*.filez", Act::Fail500(1000));
    w.refused(&[REF], &[".filez", "server answered HTTP 500", "giving up after 3 attempts"]);
}

#[test]
fn redirect_loop() {
    let w = World::new(&[]);
    w.publish_v2();
    w.server.on("*.dirtree", Act::RedirectLoop);
    w.refused(&[REF], &[".dirtree", "too many redirects"]);
    assert!(w.server.hits_of("*.dirtree").len() <= 3 * 12, "the loop was followed too long");
}

#[test]
fn not_found_on_an_object() {
    let w = World::new(&[]);
    w.publish_v2();
    w.server.on("*.filez", Act::NotFound);
    w.refused(&[REF], &["content object", "missing on the server", "HTTP 404"]);
}

#[test]
fn not_found_on_a_dirtree() {
    let w = World::new(&[]);
    w.publish_v2();
    w.server.on("*.dirtree", Act::NotFound);
    w.refused(&[REF], &["dirtree object", "is missing on the server"]);
}

// ---------------------------------------------------------------------------
// Trust: signatures, freshness, bindings.

#[test]
fn unsigned_summary() {
    let w = World::new(&[]);
    w.publish_v2();
    w.server.on("summary.sig", Act::NotFound);
    w.refused(&[REF], &["summary of remote origin is not signed"]);
    assert!(w.server.hits_of("*.commit").is_empty(), "a commit was fetched on an unsigned summary");
}

#[test]
fn summary_signed_by_an_untrusted_key() {
    let w = World::new(&[]);
    w.publish_v2();
    let summary = w.published_summary();
    w.serve_summary(&summary, &w.key2);
    w.refused(&[REF], &["summary of remote origin", "none of its 1 signature(s) is from a trusted key"]);
    assert!(w.server.hits_of("*.commit").is_empty());
}

#[test]
fn summary_signed_by_a_revoked_key() {
    // key2 is trusted, but also revoked: revocation wins.
    let w = World::new(&["--trusted-key", KEY2_PUB, "--revoked-key", KEY2_PUB]);
    w.publish_v2();
    w.serve_summary(&w.published_summary(), &w.key2);
    let pk = w.secret(&w.key2).public().to_base64();
    w.refused(&[REF], &[&format!("summary of remote origin is signed by revoked key {pk}")]);
    assert!(w.server.hits_of("*.commit").is_empty());
}

#[test]
fn corrupt_summary() {
    let w = World::new(&[]);
    w.publish_v2();
    w.server.on("summary", Act::Corrupt);
    w.refused(&[REF], &["summary of remote origin"]);
    assert!(w.server.hits_of("*.commit").is_empty());
}

#[test]
fn commit_signed_by_an_untrusted_key() {
    let w = World::new(&[]);
    let v2 = w.publish_v2_signed_by(&w.key2.clone());
    w.refused(&[REF], &[&format!("commit {v2}"), "none of its 1 signature(s) is from a trusted key"]);
    assert!(w.tree_hits().is_empty(), "tree objects requested after a bad commit signature: {:?}", w.tree_hits());
}

#[test]
fn commit_signed_by_a_revoked_key() {
    let w = World::new(&["--trusted-key", KEY2_PUB, "--revoked-key", KEY2_PUB]);
    let v2 = w.publish_v2_signed_by(&w.key2.clone());
    let pk = w.secret(&w.key2).public().to_base64();
    w.refused(&[REF], &[&format!("commit {v2} is signed by revoked key {pk}")]);
    assert!(w.tree_hits().is_empty(), "{:?}", w.tree_hits());
}

#[test]
fn unsigned_commit() {
    let w = World::new(&[]);
    let v2 = w.publish_v2();
    w.server.on("*.commitmeta", Act::NotFound);
    w.refused(&[REF], &[&format!("commit {v2} is not signed")]);
    assert!(w.tree_hits().is_empty(), "{:?}", w.tree_hits());
}

#[test]
fn old_signed_summary_replayed() {
    let w = World::new(&[]);
    w.publish_v2();
    // An older summary, validly signed, pointing at v0 (older than what the client has).
    let seen = w.published_summary().last_modified().expect("last-modified");
    let v0 = w.v0.clone();
    let old = w.summary_with(&v0, |m| {
        m.insert(summary_keys::LAST_MODIFIED, Value::new_u64((seen - 3600).to_be()));
    });
    w.serve_summary(&old, &w.key);
    w.refused(&[REF], &["summary of remote origin was written at", "refusing a replayed old summary"]);
    assert!(w.server.hits_of("*.commit").is_empty());
}

#[test]
fn expired_summary() {
    let w = World::new(&[]);
    let v2 = w.publish_v2();
    let t = now();
    let expired = w.summary_with(&v2, |m| {
        m.insert(summary_keys::LAST_MODIFIED, Value::new_u64(t.to_be()));
        m.insert(summary_keys::EXPIRES, Value::new_u64((t - 60).to_be()));
    });
    w.serve_summary(&expired, &w.key);
    w.refused(&[REF], &["summary of remote origin expired at"]);
    assert!(w.server.hits_of("*.commit").is_empty());
}

#[test]
fn commit_bound_to_another_branch() {
    let w = World::new(&[]);
    // A validly signed commit of os/other, offered as os/stable.
    let tree = w.scratch.join("tree");
    write_tree(&tree, 2);
    let ts = (now() - 100).to_string();
    let other =
        pur(&w.publ, ["repo", "commit", "-b", "os/other", "--timestamp", &ts, "--sign-key", s(&w.key), s(&tree)]).ok();
    w.summary();
    let lying = w.summary_with(&other, |_| {});
    w.serve_summary(&lying, &w.key);
    w.refused(&[REF], &[&format!("commit {other} was made for os/other and not for os/stable")]);
    assert!(w.tree_hits().is_empty(), "{:?}", w.tree_hits());
}

#[test]
fn downgrade_is_refused() {
    let w = World::new(&[]);
    // A fresh, validly signed summary moving os/stable back to v0.
    let v0 = w.v0.clone();
    let back = w.summary_with(&v0, |_| {});
    w.serve_summary(&back, &w.key);
    let line = w.refused(&[REF], &["refusing to downgrade origin:os/stable", &w.v1, &v0, "--allow-downgrade"]);
    assert!(w.tree_hits().is_empty(), "{line}: {:?}", w.tree_hits());
}

#[test]
fn parent_commit_missing_under_depth() {
    let w = World::new(&[]);
    let v2 = w.publish_v2();
    let v0 = w.v0.clone();
    w.server.on(&format!("objects/{}/{}.commit", &v0[..2], &v0[2..]), Act::NotFound);
    w.refused(&[REF, "--depth", "5"], &["parent", &v0, &v2, "missing on the server"]);
}

#[test]
fn content_over_max_object_size() {
    // v1's largest file (150 kB) passed; v2's 300 kB file is over the limit.
    let w = World::new(&["--set", "max-object-size=200000"]);
    w.publish_v2();
    // Refused from the publisher's size index, before any content download...
    w.refused(&[REF], &["content object", "declares 300000 bytes of content", "more than the 200000-byte limit"]);
    assert!(w.server.hits_of("*.filez").is_empty(), "content was fetched: {:?}", w.server.hits());
    // ...and, with no index, from the object's own header.
    w.server.on(SIZES, Act::NotFound);
    w.refused(&[REF], &["content object", "declares 300000 bytes of content, more than the 200000-byte limit"]);
}

/// Where the publisher's size indexes are.
const SIZES: &str = "extensions/photon-upgrade/sizes/*";

#[test]
fn size_index_with_wrong_bytes() {
    let w = World::new(&[]);
    w.publish_v2();
    w.server.on(SIZES, Act::Corrupt);
    w.refused(&[REF], &["server sent wrong bytes for size index"]);
    assert!(w.server.hits_of("*.filez").is_empty(), "content was fetched: {:?}", w.server.hits());
}

#[test]
fn size_index_missing_is_only_advisory() {
    // A summary update can drop an index a client just read of: the pull
    // goes on, counting objects instead of bytes.
    let w = World::new(&[]);
    let v2 = w.publish_v2();
    w.server.on(SIZES, Act::NotFound);
    w.pull(&[REF]).ok();
    assert_eq!(w.client_ref(), Some(v2));
    assert!(!w.server.hits_of(SIZES).is_empty(), "the index was never asked for");
}

// ---------------------------------------------------------------------------
// Crafted objects under their true names, every signature valid.

#[test]
fn dirtree_naming_dotdot() {
    let w = World::new(&[]);
    let v1 = w.load_commit(&w.v1);
    let root = DirTree::from_bytes(&fs::read(obj_path(&w.publ, &v1.root_tree.to_hex(), "dirtree")).expect("read"))
        .expect("root tree");
    let d = &root.dirs()[0];
    let tree = plant(&w.publ, &raw_dirtree(&[], &[("..", &d.tree.to_hex(), &d.meta.to_hex())]), "dirtree");
    w.publish_crafted_tree(&tree);
    w.refused(&[REF], &[&format!("dirtree {tree}"), "\"..\""]);
}

#[test]
fn dirtree_name_with_a_slash() {
    let w = World::new(&[]);
    let file = object_files(&w.publ)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "filez"))
        .expect("a content object");
    let file = format!(
        "{}{}",
        file.parent().and_then(Path::file_name).and_then(|n| n.to_str()).expect("XX"),
        file.file_stem().and_then(|n| n.to_str()).expect("name")
    );
    let tree = plant(&w.publ, &raw_dirtree(&[("etc/passwd", &file)], &[]), "dirtree");
    w.publish_crafted_tree(&tree);
    w.refused(&[REF], &[&format!("dirtree {tree}"), "\"etc/passwd\""]);
    assert!(w.server.hits_of("*.filez").is_empty(), "a file of a refused tree was fetched");
}

/// A `.filez` whose header declares 1000 bytes but whose deflate stream
/// inflates to 256 MiB of zeros, named by the hash of its first 1000
/// bytes: a reader that stopped at the declared size would accept it.
fn bomb() -> (String, Vec<u8>) {
    let declared = 1000u64;
    let header = file_header();
    let mut bytes = header.to_archive_header(declared);
    bytes.extend(deflate((0..256).map(|_| vec![0u8; 1 << 20])));
    let mut h = sha2::Sha256::new();
    h.update(header.to_stream_prefix());
    h.update(vec![0u8; declared as usize]);
    (hex::encode(h.finalize()), bytes)
}

/// A valid 4-byte `.filez` (named truthfully) followed by junk after the
/// end of its deflate stream.
fn trailing_junk() -> (String, Vec<u8>) {
    let header = file_header();
    let mut bytes = header.to_archive_header(4);
    bytes.extend(deflate(std::iter::once(b"tiny".to_vec())));
    bytes.extend(vec![0x5a; 100_000]);
    let mut h = sha2::Sha256::new();
    h.update(header.to_stream_prefix());
    h.update(b"tiny");
    (hex::encode(h.finalize()), bytes)
}

/// Publishes a tree holding one crafted content object and checks that a
/// client repository of `mode` refuses it.
fn refuse_crafted_file(mode: &str, (file, bytes): (String, Vec<u8>), words: &[&str]) {
    let w = World::with_client_mode(mode, &[]);
    plant_as(&w.publ, &file, &bytes, "filez");
    let tree = plant(&w.publ, &dirtree_bytes("crafted", &file), "dirtree");
    w.publish_crafted_tree(&tree);
    let mut all = vec![format!("content object {file}")];
    all.extend(words.iter().map(|w| (*w).to_owned()));
    w.refused(&[REF], &all.iter().map(String::as_str).collect::<Vec<_>>());
    let stored = object_files(&w.client).into_iter().any(|p| p.to_string_lossy().contains(&file[2..]));
    assert!(!stored, "the refused object {file} was stored");
}

#[test]
fn decompression_bomb() {
    refuse_crafted_file("bare-user", bomb(), &["longer than its header declares"]);
}

#[test]
fn decompression_bomb_archive_client() {
    refuse_crafted_file("archive", bomb(), &["longer than its header declares"]);
}

#[test]
fn junk_after_the_deflate_stream() {
    refuse_crafted_file("bare-user", trailing_junk(), &[]);
}

#[test]
fn junk_after_the_deflate_stream_archive_client() {
    refuse_crafted_file("archive", trailing_junk(), &[]);
}

#[test]
fn content_declaring_a_huge_size() {
    let w = World::new(&[]);
    let header = file_header();
    let mut bytes = header.to_archive_header(1 << 40);
    bytes.extend(deflate(std::iter::once(b"tiny".to_vec())));
    let file = plant(&w.publ, &bytes, "filez");
    let tree = plant(&w.publ, &dirtree_bytes("huge", &file), "dirtree");
    w.publish_crafted_tree(&tree);
    w.refused(&[REF], &[&format!("content object {file}"), "declares 1099511627776 bytes of content"]);
    w.server.on(SIZES, Act::NotFound);
    w.refused(&[REF], &[&format!("content object {file}"), "declares 1099511627776 bytes of content"]);
}

#[test]
fn absurd_gvariant_offsets_in_a_dirtree() {
    let w = World::new(&[]);
    // Any checksum will do for the entry: the tree is refused before it is used.
    let mut bytes = dirtree_bytes("x", &w.v1);
    // The framing offset of the first array points far past the end.
    let last = bytes.len() - 1;
    bytes[last] = 0xff;
    let tree = plant(&w.publ, &bytes, "dirtree");
    w.publish_crafted_tree(&tree);
    w.refused(&[REF], &[&format!("dirtree {tree}"), "not in GVariant normal form"]);
}

#[test]
fn absurd_header_length_in_a_content_object() {
    let w = World::new(&[]);
    let mut bytes = file_header().to_archive_header(4);
    bytes[..4].copy_from_slice(&0xffff_fff0u32.to_be_bytes());
    bytes.extend(deflate(std::iter::once(b"tiny".to_vec())));
    let file = plant(&w.publ, &bytes, "filez");
    let tree = plant(&w.publ, &dirtree_bytes("absurd", &file), "dirtree");
    w.publish_crafted_tree(&tree);
    w.refused(&[REF], &[&format!("content object {file}"), "file header is 4294967280 bytes"]);
}

#[test]
fn absurd_gvariant_offsets_in_a_signed_commit() {
    let w = World::new(&[]);
    let mut bytes = fs::read(obj_path(&w.publ, &w.v1, "commit")).expect("read");
    let n = bytes.len();
    bytes[n - 2..].copy_from_slice(&[0xff, 0xff]);
    let c = w.plant_signed_commit(&bytes);
    let summary = w.summary_with(&c, |_| {});
    w.serve_summary(&summary, &w.key);
    w.refused(&[REF], &[&format!("commit {c}"), "not in GVariant normal form"]);
    assert!(w.tree_hits().is_empty(), "{:?}", w.tree_hits());
}

/// The server itself: it stops when dropped, with nothing left running,
/// even with a client stuck on a stalled body.
#[test]
fn server_stops_when_dropped() {
    let scratch = Scratch::new();
    fs::write(scratch.join("f"), vec![7u8; 10_000]).expect("write");
    let server = Hostile::serve(scratch.0.path());
    server.on("f", Act::Stall(10));
    let mut c = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    c.write_all(b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    let mut buf = [0u8; 256];
    let n = c.read(&mut buf).expect("headers");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let t = Instant::now();
    drop(server);
    assert!(t.elapsed() < Duration::from_secs(2), "drop took {:?}", t.elapsed());
    c.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(rest.len() < 10_000, "a stalled body was completed after drop");
}
