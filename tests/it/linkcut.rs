//! The link dies mid-pull: the server runs in a network namespace behind a
//! veth pair; at about half of a pull the link goes down for longer than
//! the zero-progress timeout, then comes back. The pull (or its rerun)
//! completes, fsck is clean, and what the server sent twice is at most
//! 1 MiB (Range resume and early publishing of verified objects).
//!
//! nginx counts as sent whatever it handed to its socket, so bytes sitting
//! in socket buffers when the link died count as "sent twice" although the
//! client never saw them; the server's send buffer is kept small (32 KiB)
//! so the count measures the client's behaviour, not the kernel's buffers.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// A network namespace with a veth pair, removed on drop.
struct Netns {
    name: String,
    host_if: String,
    pub server_ip: String,
}

impl Netns {
    fn new() -> Netns {
        let id = std::process::id() % 200 + 20;
        let name = format!("pu-test-{id}");
        let (host_if, ns_if) = (format!("puh{id}"), format!("pun{id}"));
        let (host_ip, server_ip) = (format!("10.213.{id}.1"), format!("10.213.{id}.2"));
        let _ = Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
        let ip = |args: &[&str]| sh("ip", args).ok();
        ip(&["netns", "add", &name]);
        let n = Netns { name: name.clone(), host_if: host_if.clone(), server_ip: server_ip.clone() };
        ip(&["link", "add", &host_if, "type", "veth", "peer", "name", &ns_if]);
        ip(&["link", "set", &ns_if, "netns", &name]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&["netns", "exec", &name, "ip", "addr", "add", &format!("{server_ip}/30"), "dev", &ns_if]);
        ip(&["netns", "exec", &name, "ip", "link", "set", &ns_if, "up"]);
        ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]);
        n
    }

    fn exec(&self, prog: &str, args: &[&str]) -> Run {
        let mut all = vec!["netns", "exec", &self.name, prog];
        all.extend_from_slice(args);
        sh("ip", &all)
    }

    fn link(&self, up: bool) {
        sh("ip", &["link", "set", &self.host_if, if up { "up" } else { "down" }]).ok();
    }

    /// Bytes the host side has received from the server.
    fn rx_bytes(&self) -> u64 {
        fs::read_to_string(format!("/sys/class/net/{}/statistics/rx_bytes", self.host_if))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        let _ = Command::new("ip").args(["link", "del", &self.host_if]).stderr(Stdio::null()).status();
    }
}

fn nginx_conf(dir: &Path, root: &Path, ip: &str) -> std::path::PathBuf {
    fs::create_dir_all(dir.join("tmp")).expect("mkdir");
    let conf = dir.join("nginx.conf");
    fs::write(
        &conf,
        format!(
            "daemon on; user root; pid {d}/nginx.pid; error_log {d}/error.log; worker_processes 1;
events {{ worker_connections 256; }}
http {{
  log_format hit '$request_uri $status $body_bytes_sent';
  access_log {d}/access.log hit;
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  server {{ listen {ip}:8080 sndbuf=32k; root {r}; limit_rate 4m; }}
}}",
            d = dir.display(),
            r = root.display()
        ),
    )
    .expect("write conf");
    conf
}

#[test]
fn link_cut_mid_pull_resumes() {
    require_root();
    let s = Scratch::new();
    // Content: one big incompressible file and many small ones.
    let tree = s.join("tree");
    fs::create_dir_all(tree.join("usr/share/many")).expect("mkdir");
    fs::write(tree.join("usr/share/big.bin"), noise(1, 24 << 20)).expect("write");
    for i in 0..300 {
        fs::write(tree.join(format!("usr/share/many/f{i}")), noise(2 + i, 20_000)).expect("write");
    }
    let publ = s.join("pub");
    pur(&publ, ["repo", "init", "--mode", "archive"]).ok();
    pur(&publ, ["repo", "commit", "-b", "os", tree.to_str().expect("utf-8")]).ok();
    pur(&publ, ["repo", "summary", "--update"]).ok();
    let object_bytes: u64 = object_files(&publ).iter().map(|f| fs::metadata(f).map(|m| m.len()).unwrap_or(0)).sum();

    let ns = Netns::new();
    let conf = nginx_conf(&s.join("nginx"), &publ, &ns.server_ip);
    ns.exec("nginx", &["-c", conf.to_str().expect("utf-8"), "-e", "stderr"]).ok();
    let stop = || ns.exec("nginx", &["-c", conf.to_str().expect("utf-8"), "-e", "stderr", "-s", "stop"]);

    let client = s.join("client");
    pur(&client, ["repo", "init"]).ok();
    let url = format!("http://{}:8080", ns.server_ip);
    pur(
        &client,
        [
            "remote",
            "add",
            "origin",
            &url,
            "--no-sign-verify",
            "--set",
            "zero-progress-timeout=1.5",
            "--set",
            "retries=8",
            "--set",
            "retry-backoff-ms=200",
        ],
    )
    .ok();
    let start_rx = ns.rx_bytes();
    let mut child = Command::new(bin())
        .args(["--repo", client.to_str().expect("utf-8"), "--json", "pull", "origin", "os"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pull");
    // Cut the link at about half of the bytes, for 4 s (> 1.5 s zero-progress timeout).
    let deadline = Instant::now() + Duration::from_secs(60);
    while ns.rx_bytes() - start_rx < object_bytes / 2 {
        assert!(Instant::now() < deadline, "the pull made no progress");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the pull finished before the cut; the test needs more data"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    ns.link(false);
    std::thread::sleep(Duration::from_secs(4));
    ns.link(true);
    let out = child.wait_with_output().expect("wait pull");
    if !out.status.success() {
        // Gave up while the link was down: the rerun must finish the job.
        pur(&client, ["pull", "origin", "os"]).ok();
    }
    stop().ok();
    pur(&client, ["repo", "fsck"]).ok();
    ostree([&format!("--repo={}", client.display()), "fsck"]).ok();
    let log = fs::read_to_string(s.join("nginx/access.log")).expect("access log");
    let sent: u64 = log.lines().filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).sum();
    let summary_bytes = fs::metadata(publ.join("summary")).map(|m| m.len()).unwrap_or(0);
    let twice = sent.saturating_sub(object_bytes + 2 * summary_bytes);
    eprintln!(
        "link cut: server sent {sent} bytes for {object_bytes} bytes of objects; {twice} bytes twice; first run ok: {}",
        out.status.success()
    );
    assert!(
        twice <= 1 << 20,
        "the server sent {twice} bytes twice ({sent} in all for {object_bytes} bytes of objects)"
    );
    assert!(log.lines().any(|l| l.contains(" 206 ")), "no Range request after the cut:\n{log}");
}
