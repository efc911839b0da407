//! A real static web server for tests: nginx on 127.0.0.1, serving a
//! directory, with an access log to count requests and bytes. Started on
//! a free port, stopped when dropped.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running nginx.
pub struct Nginx {
    dir: PathBuf,
    pub port: u16,
    pid: Option<u32>,
}

/// One access-log line: path, status, body bytes.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub status: u16,
    pub bytes: u64,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl Nginx {
    /// Serves `root` over plain HTTP/1.1.
    pub fn serve(root: &Path, scratch: &Path) -> Nginx {
        Self::start(root, scratch, None, "")
    }

    /// Serves `root` with each response limited to `rate` bytes/s (nginx syntax, e.g. `2m`).
    pub fn serve_limited(root: &Path, scratch: &Path, rate: &str) -> Nginx {
        Self::start(root, scratch, None, &format!("limit_rate {rate};"))
    }

    /// Serves `root` over HTTPS with HTTP/2, with a throwaway CA; returns
    /// the server and the CA certificate path for `--tls-ca`.
    pub fn serve_tls(root: &Path, scratch: &Path) -> (Nginx, PathBuf) {
        Self::serve_tls_with(root, scratch, "")
    }

    /// As [`Nginx::serve_tls`], requiring a client certificate signed by
    /// the same CA; returns the server, the CA, and a client cert and key.
    pub fn serve_tls_client_auth(root: &Path, scratch: &Path) -> (Nginx, PathBuf, PathBuf, PathBuf) {
        let dir = scratch.join("tls");
        let (n, ca) = Self::serve_tls_with(root, scratch, "ssl_verify_client on; ssl_client_certificate CA;");
        let run = |args: &[&str]| openssl(&dir, args);
        // Extensions make it X.509 v3 (webpki refuses v1).
        certificate(&dir, "client", "/CN=host-1", "keyUsage=digitalSignature\nextendedKeyUsage=clientAuth");
        // PKCS#8, as rustls wants.
        run(&["pkcs8", "-topk8", "-nocrypt", "-in", "client.key", "-out", "client.p8"]);
        (n, ca, dir.join("client.pem"), dir.join("client.p8"))
    }

    /// Serves `root` over plain HTTP, answering 401 unless the request
    /// carries `Authorization: Bearer TOKEN`.
    pub fn serve_bearer(root: &Path, scratch: &Path, token: &str) -> Nginx {
        Self::start(root, scratch, None, &format!("if ($http_authorization != \"Bearer {token}\") {{ return 401; }}"))
    }

    fn serve_tls_with(root: &Path, scratch: &Path, extra: &str) -> (Nginx, PathBuf) {
        let dir = scratch.join("tls");
        fs::create_dir_all(&dir).expect("mkdir");
        let ca = dir.join("ca.pem");
        let run = |args: &[&str]| openssl(&dir, args);
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=test CA",
        ]);
        certificate(&dir, "srv", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1");
        let extra = extra.replace("CA", &ca.display().to_string());
        (Self::start(root, scratch, Some(&dir), &extra), ca)
    }

    fn start(root: &Path, scratch: &Path, tls: Option<&Path>, extra: &str) -> Nginx {
        let dir = scratch.join(format!("nginx-{}", free_port()));
        fs::create_dir_all(dir.join("tmp")).expect("mkdir");
        let port = free_port();
        let listen = match tls {
            Some(t) => format!(
                "listen 127.0.0.1:{port} ssl http2; ssl_certificate {}/srv.pem; ssl_certificate_key {}/srv.key;",
                t.display(),
                t.display()
            ),
            None => format!("listen 127.0.0.1:{port};"),
        };
        let conf = format!(
            "daemon on; user root; pid {d}/nginx.pid; error_log {d}/error.log; worker_processes 1;
events {{ worker_connections 1024; }}
http {{
  log_format hit '$request_uri $status $body_bytes_sent';
  access_log {d}/access.log hit;
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  keepalive_requests 100000;
  http2_max_concurrent_streams 256;
  server {{ {listen} root {root}; autoindex off; {extra} }}
}}",
            d = dir.display(),
            root = root.display()
        );
        fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
        let out = Command::new("nginx")
            .args(["-c"])
            .arg(dir.join("nginx.conf"))
            .args(["-e", "stderr"])
            .output()
            .expect("nginx runs (CI installs it)");
        assert!(out.status.success(), "nginx failed: {}", String::from_utf8_lossy(&out.stderr));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The master's pid, read now: Drop must stop it even when the
        // scratch directory holding its pid file is already gone.
        let pid = fs::read_to_string(dir.join("nginx.pid")).ok().and_then(|p| p.trim().parse().ok());
        Nginx { dir, port, pid }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `https://127.0.0.1:PORT`.
    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Every request so far.
    pub fn hits(&self) -> Vec<Hit> {
        let text = fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let mut it = l.split(' ');
                Some(Hit {
                    path: it.next()?.to_owned(),
                    status: it.next()?.parse().ok()?,
                    bytes: it.next()?.parse().ok()?,
                })
            })
            .collect()
    }

    /// Forgets the requests so far.
    pub fn clear_log(&self) {
        let _ = fs::write(self.dir.join("access.log"), "");
        // nginx keeps appending to the same file descriptor: truncation is enough.
    }
}

/// Makes a P-256 key `NAME.key` and a certificate `NAME.pem` for `subject`
/// with X.509v3 `extensions`, signed by the CA in `dir` (`ca.pem`, `ca.key`).
fn certificate(dir: &Path, name: &str, subject: &str, extensions: &str) {
    let (key, csr, pem, ext) =
        (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"));
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    openssl(dir, &[&["req"][..], &ec, &["-keyout", &key, "-out", &csr, "-subj", subject]].concat());
    fs::write(dir.join(&ext), format!("basicConstraints=CA:FALSE\n{extensions}\n")).expect("writing extensions");
    let ca = ["-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2"];
    openssl(dir, &[&["x509", "-req", "-in", &csr, "-out", &pem, "-extfile", &ext][..], &ca].concat());
}

/// Runs `openssl ARGS` in `dir`; panics with its stderr if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let st = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(st.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&st.stderr));
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let stopped = Command::new("nginx")
            .args(["-c"])
            .arg(self.dir.join("nginx.conf"))
            .args(["-e", "stderr", "-s", "stop"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !stopped && let Some(pid) = self.pid {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).output();
        }
    }
}
