//! `repo summary --update`: write `summary` (and `summary.sig`) listing
//! the local refs, so clients can resolve refs and verify them in one
//! signed download.
//!
//! Updates are serialized by an exclusive lock on `tmp/summary.lock`;
//! `summary` and then `summary.sig` are each replaced atomically. A client
//! that fetches between the two renames sees a signature that does not
//! match and retries (see `pull`).

use anyhow::{Context, Result};
use repo_format::commit::keys as commit_keys;
use repo_format::sign::{self as fmt, SecretKey};
use repo_format::summary::keys;
use repo_format::{Metadata, ObjectType, Summary, SummaryRef, Value};

use super::Repo;
use crate::fsutil;

/// Options of a summary update.
#[derive(Default)]
pub struct SummaryOptions {
    /// Keys to sign `summary` with (writes `summary.sig`).
    pub sign_keys: Vec<SecretKey>,
    /// Seconds the summary stays valid (`ostree.summary.expires`).
    pub valid_for: Option<u64>,
}

/// Regenerates the summary at time `now` (seconds since the epoch).
pub fn update(repo: &Repo, opts: &SummaryOptions, now: u64) -> Result<Summary> {
    let lock = repo.tmp_dir().create_file_or_open("summary.lock")?;
    fsutil::lock_file_exclusive(&lock).context("locking tmp/summary.lock")?;
    let mut refs = Vec::new();
    for (spec, commit) in repo.list_refs()? {
        if spec.remote.is_some() {
            continue;
        }
        let data = repo.read_metadata(&commit, ObjectType::Commit).with_context(|| format!("ref {spec}"))?;
        let c = repo_format::Commit::from_bytes(&data).with_context(|| format!("commit {commit} of ref {spec}"))?;
        let mut meta = Metadata::new();
        meta.insert(keys::COMMIT_TIMESTAMP, Value::new_u64(c.timestamp.to_be()));
        if let Ok(Some(v)) = c.metadata.get_str(commit_keys::VERSION) {
            meta.insert(keys::COMMIT_VERSION, Value::new_str(&v));
        }
        refs.push(SummaryRef { name: spec.name, commit_size: data.len() as u64, checksum: commit, metadata: meta });
    }
    let mut meta = Metadata::new();
    meta.insert(keys::LAST_MODIFIED, Value::new_u64(now.to_be()));
    meta.insert(keys::MODE, Value::new_str(repo.mode().config_name()));
    meta.insert(keys::TOMBSTONE_COMMITS, Value::new_bool(false));
    meta.insert(keys::INDEXED_DELTAS, Value::new_bool(true));
    if let Some(v) = opts.valid_for {
        meta.insert(keys::EXPIRES, Value::new_u64(now.saturating_add(v).to_be()));
    }
    let summary = Summary::new(refs, meta)?;
    let bytes = summary.to_bytes();
    let dir = repo.dir();
    if opts.sign_keys.is_empty() {
        // An old signature would not match the new summary.
        match dir.unlink("summary.sig") {
            Err(e) if !fsutil::is_not_found(&e) => return Err(e).context("removing stale summary.sig"),
            _ => {}
        }
        dir.write_atomic("summary", &bytes, 0o644).context("writing summary")?;
    } else {
        let mut sig = Metadata::new();
        for k in &opts.sign_keys {
            fmt::add_signature(&mut sig, &k.sign(&bytes))?;
        }
        dir.write_atomic("summary", &bytes, 0o644).context("writing summary")?;
        dir.write_atomic("summary.sig", &sig.to_bytes(), 0o644).context("writing summary.sig")?;
    }
    Ok(summary)
}
