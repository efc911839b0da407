//! Remotes: where updates come from, kept in the repo `config` in OSTree's
//! `[remote "NAME"]` syntax so the real `ostree` reads them too.
//!
//! Keys OSTree knows: `url`, `gpg-verify`, `sign-verify`,
//! `sign-verify-summary`, `verification-ed25519-file`,
//! `verification-ed25519-key`, `branches`, `tls-ca-path`,
//! `tls-client-cert-path`, `tls-client-key-path`. Our own (OSTree ignores
//! unknown keys): `bearer-token-file`, `verification-ed25519-revoked-file`,
//! `fetch-parallelism`, `max-object-size`, `zero-progress-timeout`,
//! `low-speed-limit`, `low-speed-time`, `retries`, `retry-backoff-ms`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use repo_format::name::validate_remote_name;
use repo_format::sign::PublicKey;

use super::fetch::{Endpoint, FetchPolicy};
use crate::repo::Repo;
use crate::repo::keyfile::KeyFile;
use crate::sign::{self, TrustStore};

/// A remote as configured.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Remote {
    /// Name.
    pub name: String,
    /// Base URL of the published repository.
    pub url: String,
    /// Verify commit signatures.
    pub sign_verify: bool,
    /// Verify the summary signature.
    pub sign_verify_summary: bool,
    /// Trusted key file.
    pub key_file: Option<PathBuf>,
    /// Trusted key given inline.
    pub inline_key: Option<String>,
    /// Revoked key file.
    pub revoked_file: Option<PathBuf>,
    /// Branches to pull when none are named.
    pub branches: Vec<String>,
    /// Extra CA certificates.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate.
    pub tls_client_cert: Option<PathBuf>,
    /// Client key.
    pub tls_client_key: Option<PathBuf>,
    /// File holding a bearer token.
    pub bearer_token_file: Option<PathBuf>,
    /// Every key of the section, as written.
    #[serde(skip)]
    pub raw: Vec<(String, String)>,
}

/// The config group of a remote.
pub fn group(name: &str) -> String {
    format!("remote \"{name}\"")
}

fn path_opt(kf: &KeyFile, g: &str, k: &str) -> Option<PathBuf> {
    kf.get(g, k).filter(|v| !v.is_empty()).map(PathBuf::from)
}

impl Remote {
    /// Reads remote `name` from the repository config.
    pub fn load(repo: &Repo, name: &str) -> Result<Remote> {
        let kf = repo.config();
        let g = group(name);
        if !kf.has_group(&g) {
            bail!("no remote named {name:?}; add one with `remote add {name} URL --trusted-key FILE`");
        }
        let url = kf.get(&g, "url").ok_or_else(|| anyhow!("remote {name} has no url"))?.to_owned();
        let b = |k: &str| kf.get_bool(&g, k).map_err(|e| anyhow!("remote {name}: {e}"));
        Ok(Remote {
            name: name.to_owned(),
            url,
            sign_verify: b("sign-verify")?.unwrap_or(false) || kf.get(&g, "sign-verify") == Some("ed25519"),
            sign_verify_summary: b("sign-verify-summary")?.unwrap_or(false),
            key_file: path_opt(kf, &g, "verification-ed25519-file"),
            inline_key: kf.get(&g, "verification-ed25519-key").map(str::to_owned),
            revoked_file: path_opt(kf, &g, "verification-ed25519-revoked-file"),
            branches: kf.get_list(&g, "branches"),
            tls_ca: path_opt(kf, &g, "tls-ca-path"),
            tls_client_cert: path_opt(kf, &g, "tls-client-cert-path"),
            tls_client_key: path_opt(kf, &g, "tls-client-key-path"),
            bearer_token_file: path_opt(kf, &g, "bearer-token-file"),
            raw: kf.entries(&g).into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        })
    }

    /// Every configured remote name, in config order.
    pub fn names(repo: &Repo) -> Vec<String> {
        repo.config()
            .groups()
            .filter_map(|g| g.strip_prefix("remote \"").and_then(|r| r.strip_suffix('"')))
            .map(str::to_owned)
            .collect()
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.raw.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn number<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>> {
        self.get(key)
            .map(|v| v.parse::<T>().map_err(|_| anyhow!("remote {}: {key}={v} is not a number", self.name)))
            .transpose()
    }

    /// The keys that may sign for this remote (plus the system-wide ones OSTree reads).
    pub fn trust(&self, sysroot: &Path) -> Result<TrustStore> {
        let mut t = TrustStore::default();
        if let Some(f) = &self.key_file {
            t.trusted.extend(sign::load_public_keys(f).with_context(|| format!("remote {}", self.name))?);
        }
        if let Some(k) = &self.inline_key {
            t.trusted.extend(
                repo_format::sign::parse_public_keys(k)
                    .with_context(|| format!("remote {}: verification-ed25519-key", self.name))?,
            );
        }
        if t.trusted.is_empty() {
            t.add_system(sysroot, true)?;
        }
        if let Some(f) = &self.revoked_file {
            t.revoked.extend(sign::load_public_keys(f).with_context(|| format!("remote {}", self.name))?);
        }
        t.add_system(sysroot, false)?;
        Ok(t)
    }

    /// Where and how to connect.
    pub fn endpoint(&self) -> Result<Endpoint> {
        let bearer_token = match &self.bearer_token_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .with_context(|| format!("remote {}: reading bearer token {}", self.name, f.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        Ok(Endpoint {
            url: self.url.clone(),
            bearer_token,
            tls_ca: self.tls_ca.clone(),
            tls_client_cert: self.tls_client_cert.clone(),
            tls_client_key: self.tls_client_key.clone(),
        })
    }

    /// Timeouts and retries, defaults overridden by the config.
    pub fn policy(&self) -> Result<FetchPolicy> {
        let mut p = FetchPolicy::default();
        let secs = |v: f64| Duration::from_secs_f64(v.max(0.001));
        if let Some(v) = self.number::<f64>("zero-progress-timeout")? {
            p.zero_progress = secs(v);
        }
        if let Some(v) = self.number::<u64>("low-speed-limit")? {
            p.low_speed_bytes = v;
        }
        if let Some(v) = self.number::<f64>("low-speed-time")? {
            p.low_speed_window = secs(v);
        }
        if let Some(v) = self.number::<u32>("retries")? {
            p.retries = v;
        }
        if let Some(v) = self.number::<u64>("retry-backoff-ms")? {
            p.backoff = Duration::from_millis(v);
        }
        Ok(p)
    }

    /// Workers fetching at once (default 8 on HTTP/1.1, one persistent
    /// connection each; HTTP/2 multiplexes `h2` of them over one connection).
    pub fn parallelism(&self) -> Result<(usize, usize)> {
        let n = self.number::<usize>("fetch-parallelism")?.unwrap_or(DEFAULT_PARALLELISM).max(1);
        let h2 = self.number::<usize>("fetch-parallelism-http2")?.unwrap_or(DEFAULT_PARALLELISM_H2).max(1);
        Ok((n, h2))
    }

    /// Largest object accepted from this remote.
    pub fn max_object_size(&self) -> Result<u64> {
        Ok(self.number::<u64>("max-object-size")?.unwrap_or(DEFAULT_MAX_OBJECT_SIZE))
    }
}

/// Parallel requests over HTTP/1.1 (one persistent connection each).
pub const DEFAULT_PARALLELISM: usize = 8;
/// Parallel requests once the server speaks HTTP/2 (streams on one
/// connection): enough to fill a 50 ms round trip with small objects.
pub const DEFAULT_PARALLELISM_H2: usize = 64;
/// Largest content object accepted by default: bigger than any file an OS
/// image ships, small enough to stop an endless body early.
pub const DEFAULT_MAX_OBJECT_SIZE: u64 = 4 << 30;

/// What `remote add` sets.
#[derive(Debug, Default)]
pub struct AddOptions {
    /// Trusted key files to copy into the repository.
    pub trusted_keys: Vec<PathBuf>,
    /// Revoked key files to copy into the repository.
    pub revoked_keys: Vec<PathBuf>,
    /// Turn signature checks off (commits and summary).
    pub no_sign_verify: bool,
    /// Default branches.
    pub branches: Vec<String>,
    /// Extra `key=value` settings.
    pub set: Vec<(String, String)>,
    /// Replace an existing remote of that name.
    pub force: bool,
}

/// Adds a remote. Trusted keys are copied into the repository
/// (`NAME.trusted.ed25519`) so the config never points at a file that
/// may later change or vanish.
pub fn add(repo: &mut Repo, name: &str, url: &str, opts: &AddOptions) -> Result<()> {
    validate_remote_name(name).map_err(|e| anyhow!("invalid remote name {name:?}: {e}"))?;
    if !(url.starts_with("http://") || url.starts_with("https://") || url.starts_with("file:///")) {
        bail!("remote URL {url:?} must start with http://, https:// or file:///");
    }
    let g = group(name);
    let mut kf = repo.config().clone();
    if kf.has_group(&g) && !opts.force {
        bail!("remote {name} exists; delete it first or use --force");
    }
    kf.remove_group(&g);
    let mut keys: Vec<PublicKey> = Vec::new();
    for f in &opts.trusted_keys {
        keys.extend(sign::load_public_keys(f)?);
    }
    if keys.is_empty() && !opts.no_sign_verify {
        bail!(
            "signature verification is on by default: give --trusted-key FILE (the publisher's .pub key), or --no-sign-verify"
        );
    }
    kf.set(&g, "url", url);
    kf.set(&g, "gpg-verify", "false");
    let verify = if opts.no_sign_verify { "false" } else { "true" };
    kf.set(&g, "sign-verify", verify);
    kf.set(&g, "sign-verify-summary", verify);
    if !keys.is_empty() {
        let file = format!("{name}.trusted.ed25519");
        let text: String = keys.iter().map(|k| format!("{}\n", k.to_base64())).collect();
        repo.dir().write_atomic(&file, text.as_bytes(), 0o644).with_context(|| format!("writing {file}"))?;
        kf.set(&g, "verification-ed25519-file", &absolute(&repo.dir().display(&file)));
    }
    let mut revoked: Vec<PublicKey> = Vec::new();
    for f in &opts.revoked_keys {
        revoked.extend(sign::load_public_keys(f)?);
    }
    if !revoked.is_empty() {
        let file = format!("{name}.revoked.ed25519");
        let text: String = revoked.iter().map(|k| format!("{}\n", k.to_base64())).collect();
        repo.dir().write_atomic(&file, text.as_bytes(), 0o644).with_context(|| format!("writing {file}"))?;
        kf.set(&g, "verification-ed25519-revoked-file", &absolute(&repo.dir().display(&file)));
    }
    if !opts.branches.is_empty() {
        kf.set(&g, "branches", &format!("{};", opts.branches.join(";")));
    }
    for (k, v) in &opts.set {
        kf.set(&g, k, v);
    }
    repo.write_config(kf)
}

/// Deletes a remote and its refs and key files.
pub fn delete(repo: &mut Repo, name: &str) -> Result<()> {
    let g = group(name);
    let mut kf = repo.config().clone();
    if !kf.remove_group(&g) {
        bail!("no remote named {name:?}");
    }
    repo.write_config(kf)?;
    for suffix in ["trusted.ed25519", "revoked.ed25519"] {
        let _ = repo.dir().unlink(format!("{name}.{suffix}"));
    }
    repo.dir().remove_all(Path::new("refs/remotes").join(name)).context("removing the remote's refs")?;
    let _ = repo.dir().remove_all(Path::new("state/remotes").join(name));
    Ok(())
}

/// An absolute form of `p` for the config (OSTree resolves key files
/// relative to its own working directory otherwise).
fn absolute(p: &Path) -> String {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned()).display().to_string()
}
