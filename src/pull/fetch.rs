//! HTTP(S) fetching that never hangs and resumes where it stopped.
//!
//! Every request has a connect timeout and a *zero-progress* timeout (no
//! byte for that long aborts the attempt), plus a low-speed guard (a server
//! that drips bytes just fast enough to dodge the zero-progress timeout is
//! cut off too). Failed attempts are retried with exponential backoff on
//! connection errors, timeouts and 5xx/429; partial bodies written to a file
//! resume with `Range: bytes=N-`. 404, oversize bodies and other 4xx are
//! final. Bodies are size-bounded before they are stored anywhere.
//!
//! The client is reqwest's blocking client driven from worker threads: one
//! client shares its connections (HTTP/2 multiplexes every worker's
//! requests over one connection when the server speaks it; HTTP/1.1 keeps
//! one persistent connection per worker).

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, HeaderMap, HeaderValue, RANGE};

/// Tunables, all settable per remote (see `remote.rs`).
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// Give up on a connection attempt after this long.
    pub connect_timeout: Duration,
    /// Abort an attempt when no byte arrives for this long.
    pub zero_progress: Duration,
    /// Abort an attempt slower than this many bytes per second ...
    pub low_speed_bytes: u64,
    /// ... measured over this window.
    pub low_speed_window: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// First backoff delay; doubles each retry.
    pub backoff: Duration,
    /// Longest backoff delay.
    pub max_backoff: Duration,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            connect_timeout: Duration::from_secs(15),
            zero_progress: Duration::from_secs(30),
            low_speed_bytes: 1024,
            low_speed_window: Duration::from_secs(60),
            retries: 5,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// How to reach a server.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// Base URL; object paths are appended.
    pub url: String,
    /// Bearer token sent as `Authorization: Bearer ...` (OAuth2 / OIDC access token).
    pub bearer_token: Option<String>,
    /// Extra CA certificates (PEM) to trust.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) ...
    pub tls_client_cert: Option<PathBuf>,
    /// ... and its key (PEM).
    pub tls_client_key: Option<PathBuf>,
}

/// A failed fetch.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// 404 / 410.
    #[error("{url}: not found on the server (HTTP {status})")]
    NotFound {
        /// Full URL.
        url: String,
        /// Status code.
        status: u16,
    },
    /// Any other unwanted status.
    #[error("{url}: server answered HTTP {status}")]
    Status {
        /// Full URL.
        url: String,
        /// Status code.
        status: u16,
    },
    /// The body was larger than anything legitimate could be.
    #[error("{url}: body is larger than {limit} bytes; refusing it")]
    TooLarge {
        /// Full URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// No byte for the zero-progress timeout.
    #[error("{url}: no data for {}s", .secs)]
    Stalled {
        /// Full URL.
        url: String,
        /// The timeout.
        secs: u64,
    },
    /// Bytes trickled in below the low-speed limit.
    #[error("{url}: slower than {bytes} bytes/s for {secs}s")]
    TooSlow {
        /// Full URL.
        url: String,
        /// The limit.
        bytes: u64,
        /// The window.
        secs: u64,
    },
    /// The server answered a Range request with the wrong range.
    #[error("{url}: server answered a Range request with an unexpected Content-Range {got:?}")]
    BadRange {
        /// Full URL.
        url: String,
        /// What it sent.
        got: String,
    },
    /// Connection, TLS, redirect or protocol failure.
    #[error("{url}: {message}")]
    Transport {
        /// Full URL.
        url: String,
        /// What went wrong (with reqwest's cause chain).
        message: String,
        /// Redirect loops and bad URLs are not worth retrying.
        retryable: bool,
    },
    /// Writing what was received failed (disk full, ...).
    #[error("{url}: storing the download")]
    Sink {
        /// Full URL.
        url: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Every attempt failed.
    #[error("giving up after {attempts} attempts: {last}")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: Box<FetchError>,
    },
}

impl FetchError {
    fn retryable(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            FetchError::Stalled { .. } | FetchError::TooSlow { .. } => true,
            FetchError::Transport { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// True if the object is absent on the server (possibly after retries).
    pub fn is_not_found(&self) -> bool {
        match self {
            FetchError::NotFound { .. } => true,
            FetchError::GaveUp { last, .. } => last.is_not_found(),
            _ => false,
        }
    }
}

/// Counters for reports and tests.
#[derive(Debug, Default)]
pub struct FetchStats {
    /// HTTP requests sent (retries included).
    pub requests: AtomicU64,
    /// Body bytes received.
    pub bytes: AtomicU64,
}

/// A configured client for one remote.
pub struct Fetcher {
    client: reqwest::blocking::Client,
    base: String,
    /// The repository directory of a `file://` remote (no HTTP then).
    local: Option<PathBuf>,
    policy: FetchPolicy,
    /// Counters.
    pub stats: FetchStats,
    http2: std::sync::atomic::AtomicBool,
}

/// Where a body goes.
pub trait Sink {
    /// Bytes already held (a resumed download starts after them).
    fn held(&self) -> u64;
    /// Appends bytes.
    fn write(&mut self, data: &[u8]) -> std::io::Result<()>;
    /// Drops what was held (the server ignored Range).
    fn reset(&mut self) -> std::io::Result<()>;
}

impl Sink for Vec<u8> {
    fn held(&self) -> u64 {
        Vec::len(self) as u64
    }
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(data);
        Ok(())
    }
    fn reset(&mut self) -> std::io::Result<()> {
        self.clear();
        Ok(())
    }
}

/// A file being downloaded into (kept across runs for resume).
pub struct FileSink {
    /// The open file.
    pub file: std::fs::File,
    len: u64,
}

impl FileSink {
    /// Wraps `file`, positioned at its end.
    pub fn new(mut file: std::fs::File) -> std::io::Result<FileSink> {
        use std::io::Seek;
        let len = file.seek(std::io::SeekFrom::End(0))?;
        Ok(FileSink { file, len })
    }
}

impl Sink for FileSink {
    fn held(&self) -> u64 {
        self.len
    }
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.file.write_all(data)?;
        self.len += data.len() as u64;
        Ok(())
    }
    fn reset(&mut self) -> std::io::Result<()> {
        use std::io::Seek;
        self.file.set_len(0)?;
        self.file.seek(std::io::SeekFrom::Start(0))?;
        self.len = 0;
        Ok(())
    }
}

fn transport(url: &str, e: &reqwest::Error) -> FetchError {
    let mut message = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        message.push_str(": ");
        message.push_str(&s.to_string());
        src = s.source();
    }
    let retryable = !(e.is_redirect() || e.is_builder());
    if e.is_redirect() {
        message = "too many redirects (a redirect loop?)".into();
    }
    FetchError::Transport { url: url.to_owned(), message, retryable }
}

/// Largest number of redirects followed.
const MAX_REDIRECTS: usize = 10;
/// Read buffer.
const READ_BUF: usize = 64 * 1024;

/// Opens `path` below `root`; the path is ours (object names, `summary`,
/// validated ref names), and `..` is refused all the same.
fn open_local(root: &Path, path: &str, url: &str) -> Result<std::fs::File, FetchError> {
    let rel = Path::new(path.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return Err(FetchError::Transport {
            url: url.to_owned(),
            message: "path escapes the repository".into(),
            retryable: false,
        });
    }
    let f = std::fs::File::open(root.join(rel)).map_err(|e| local_error(url, &e))?;
    if !f.metadata().map_err(|e| local_error(url, &e))?.is_file() {
        return Err(FetchError::Transport {
            url: url.to_owned(),
            message: "not a regular file".into(),
            retryable: false,
        });
    }
    Ok(f)
}

fn local_error(url: &str, e: &std::io::Error) -> FetchError {
    if e.kind() == std::io::ErrorKind::NotFound {
        FetchError::NotFound { url: url.to_owned(), status: 404 }
    } else {
        FetchError::Transport { url: url.to_owned(), message: e.to_string(), retryable: false }
    }
}

impl Fetcher {
    /// Builds a client for `endpoint`.
    pub fn new(endpoint: &Endpoint, policy: FetchPolicy) -> anyhow::Result<Fetcher> {
        use anyhow::Context as _;
        let mut headers = HeaderMap::new();
        if let Some(t) = &endpoint.bearer_token {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", t.trim()))
                .context("the bearer token has characters not allowed in an HTTP header")?;
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let mut b = reqwest::blocking::Client::builder()
            .user_agent(concat!("photon-upgrade/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .connect_timeout(policy.connect_timeout)
            // Applies to sending the request, waiting for headers, and each
            // body read: the zero-progress timeout.
            .timeout(policy.zero_progress)
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_keepalive(Duration::from_secs(30))
            .no_proxy();
        if let Some(ca) = &endpoint.tls_ca {
            let pem = std::fs::read(ca).with_context(|| format!("reading CA file {}", ca.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("{}: not PEM certificates", ca.display()))?
            {
                b = b.add_root_certificate(cert);
            }
        }
        match (&endpoint.tls_client_cert, &endpoint.tls_client_key) {
            (Some(cert), Some(key)) => {
                let mut pem = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
                pem.extend(std::fs::read(key).with_context(|| format!("reading {}", key.display()))?);
                b = b.identity(
                    reqwest::Identity::from_pem(&pem)
                        .context("client certificate and key do not form a PEM identity")?,
                );
            }
            (None, None) => {}
            _ => anyhow::bail!("a TLS client certificate needs both tls-client-cert-path and tls-client-key-path"),
        }
        if endpoint.url.starts_with("file:") {
            // No connection is ever made: do not load the system's CA
            // certificates, which an offline host may not have (the
            // platform verifier refuses to build a client without any).
            b = b.tls_certs_only(std::iter::empty());
        }
        let client = b.build().context("building the HTTP client")?;
        let base = endpoint.url.trim_end_matches('/').to_owned();
        let local = if base.starts_with("file:") {
            let u = reqwest::Url::parse(&endpoint.url).with_context(|| format!("remote URL {}", endpoint.url))?;
            let root = u.to_file_path().map_err(|()| anyhow::anyhow!("{}: not a local path", endpoint.url))?;
            // Every object would be "missing": say what is.
            if !root.join("config").is_file() {
                anyhow::bail!(
                    "{}: no repository there (no config file); is the update medium mounted?",
                    root.display()
                );
            }
            Some(root)
        } else {
            None
        };
        Ok(Fetcher { client, base, local, policy, stats: FetchStats::default(), http2: false.into() })
    }

    /// The full URL of `path` (relative to the remote's base).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// True once a response came over HTTP/2 (then many requests share one connection).
    pub fn is_http2(&self) -> bool {
        self.http2.load(Ordering::Relaxed)
    }

    /// Fetches a small file into memory; `Ok(None)` on 404.
    pub fn get_optional(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, FetchError> {
        let mut buf = Vec::new();
        match self.get(path, limit, &mut buf) {
            Ok(()) => Ok(Some(buf)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Fetches `path` into `sink`, resuming after what it already holds,
    /// retrying with backoff; at most `limit` bytes in all.
    pub fn get(&self, path: &str, limit: u64, sink: &mut dyn Sink) -> Result<(), FetchError> {
        let url = self.url(path);
        if let Some(root) = &self.local {
            return self.read_local(root, path, &url, limit, sink);
        }
        self.with_retries(|| self.attempt(&url, limit, sink))
    }

    /// A `file://` remote: the same limits and resume as over HTTP, read
    /// from the repository directory (a mounted update medium).
    fn read_local(
        &self,
        root: &Path,
        path: &str,
        url: &str,
        limit: u64,
        sink: &mut dyn Sink,
    ) -> Result<(), FetchError> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let mut f = open_local(root, path, url)?;
        let len = f.metadata().map_err(|e| local_error(url, &e))?.len();
        let offset = sink.held();
        if offset >= len {
            return Ok(()); // as a 416: the caller's checksum decides
        }
        if len > limit {
            return Err(FetchError::TooLarge { url: url.to_owned(), limit });
        }
        f.seek(std::io::SeekFrom::Start(offset)).map_err(|e| local_error(url, &e))?;
        let mut buf = vec![0u8; READ_BUF];
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(local_error(url, &e)),
            };
            self.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
            if sink.held() + n as u64 > limit {
                return Err(FetchError::TooLarge { url: url.to_owned(), limit });
            }
            sink.write(&buf[..n]).map_err(|source| FetchError::Sink { url: url.to_owned(), source })?;
        }
    }

    /// The size of `path` from a HEAD request; `None` on 404.
    pub fn head_length(&self, path: &str) -> Result<Option<u64>, FetchError> {
        let url = self.url(path);
        if let Some(root) = &self.local {
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            return match open_local(root, path, &url) {
                Ok(f) => Ok(Some(f.metadata().map_err(|e| local_error(&url, &e))?.len())),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            };
        }
        let r = self.with_retries(|| {
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let resp = self.client.head(&url).send().map_err(|e| self.classify(&url, &e))?;
            match resp.status() {
                StatusCode::OK => resp
                    .headers()
                    .get(reqwest::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| FetchError::Transport {
                        url: url.clone(),
                        message: "no Content-Length".into(),
                        retryable: false,
                    }),
                StatusCode::NOT_FOUND | StatusCode::GONE => {
                    Err(FetchError::NotFound { url: url.clone(), status: resp.status().as_u16() })
                }
                s => Err(FetchError::Status { url: url.clone(), status: s.as_u16() }),
            }
        });
        match r {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn with_retries<T>(&self, mut f: impl FnMut() -> Result<T, FetchError>) -> Result<T, FetchError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match f() {
                Ok(v) => return Ok(v),
                Err(e) if e.retryable() && attempt <= self.policy.retries => {
                    let exp = self.policy.backoff.saturating_mul(1u32 << (attempt - 1).min(16));
                    std::thread::sleep(exp.min(self.policy.max_backoff));
                }
                Err(e) if attempt > 1 => return Err(FetchError::GaveUp { attempts: attempt, last: Box::new(e) }),
                Err(e) => return Err(e),
            }
        }
    }

    fn attempt(&self, url: &str, limit: u64, sink: &mut dyn Sink) -> Result<(), FetchError> {
        let offset = sink.held();
        let mut req = self.client.get(url);
        if offset > 0 {
            req = req.header(RANGE, format!("bytes={offset}-"));
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let mut resp = req.send().map_err(|e| self.classify(url, &e))?;
        if resp.version() == reqwest::Version::HTTP_2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        let status = resp.status();
        match status {
            StatusCode::OK if offset > 0 => {
                // Range ignored: start over.
                sink.reset().map_err(|source| FetchError::Sink { url: url.to_owned(), source })?;
            }
            StatusCode::OK => {}
            StatusCode::PARTIAL_CONTENT if offset > 0 => {
                let got = resp.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                if !got.starts_with(&format!("bytes {offset}-")) {
                    return Err(FetchError::BadRange { url: url.to_owned(), got });
                }
            }
            StatusCode::RANGE_NOT_SATISFIABLE if offset > 0 => {
                // What we hold is all there is (or more): let the caller's
                // checksum decide; a wrong object is refused there.
                return Ok(());
            }
            StatusCode::NOT_FOUND | StatusCode::GONE => {
                return Err(FetchError::NotFound { url: url.to_owned(), status: status.as_u16() });
            }
            s => return Err(FetchError::Status { url: url.to_owned(), status: s.as_u16() }),
        }
        if let Some(len) = resp.content_length()
            && sink.held().saturating_add(len) > limit
        {
            return Err(FetchError::TooLarge { url: url.to_owned(), limit });
        }
        let mut buf = vec![0u8; READ_BUF];
        let mut window_start = Instant::now();
        let mut window_bytes = 0u64;
        loop {
            let n = match resp.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.classify_io(url, e)),
            };
            self.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
            if sink.held() + n as u64 > limit {
                return Err(FetchError::TooLarge { url: url.to_owned(), limit });
            }
            sink.write(&buf[..n]).map_err(|source| FetchError::Sink { url: url.to_owned(), source })?;
            window_bytes += n as u64;
            let elapsed = window_start.elapsed();
            if elapsed >= self.policy.low_speed_window {
                let rate = window_bytes as f64 / elapsed.as_secs_f64();
                if rate < self.policy.low_speed_bytes as f64 {
                    return Err(FetchError::TooSlow {
                        url: url.to_owned(),
                        bytes: self.policy.low_speed_bytes,
                        secs: self.policy.low_speed_window.as_secs(),
                    });
                }
                window_start = Instant::now();
                window_bytes = 0;
            }
        }
    }

    fn classify(&self, url: &str, e: &reqwest::Error) -> FetchError {
        if e.is_timeout() {
            FetchError::Stalled { url: url.to_owned(), secs: self.policy.zero_progress.as_secs() }
        } else {
            transport(url, e)
        }
    }

    fn classify_io(&self, url: &str, e: std::io::Error) -> FetchError {
        let is_timeout = e.kind() == std::io::ErrorKind::TimedOut
            || e.get_ref().and_then(|i| i.downcast_ref::<reqwest::Error>()).is_some_and(reqwest::Error::is_timeout);
        if is_timeout {
            FetchError::Stalled { url: url.to_owned(), secs: self.policy.zero_progress.as_secs() }
        } else {
            let mut message = format!("reading the body: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                message.push_str(": ");
                message.push_str(&s.to_string());
                src = s.source();
            }
            FetchError::Transport { url: url.to_owned(), message, retryable: true }
        }
    }
}
