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
use std::collections::HashSet;

use repo_format::sizes::{ObjectSize, SizeIndex};
use repo_format::{Checksum, Metadata, ObjectType, Summary, SummaryRef, Value};

use super::Repo;
use super::traverse::{Walk, commit_objects};
use crate::fsutil;

/// Options of a summary update.
#[derive(Default)]
pub struct SummaryOptions {
    /// Keys to sign `summary` with (writes `summary.sig`).
    pub sign_keys: Vec<SecretKey>,
    /// Seconds the summary stays valid (`ostree.summary.expires`).
    pub valid_for: Option<u64>,
}

/// Per-ref summary key: SHA-256 of the size index of the whole commit.
pub const SIZES_KEY: &str = "photon-upgrade.sizes";
/// Per-ref summary key: SHA-256 of the size index of the objects the
/// commit has and its parent has not.
pub const SIZES_NEW_KEY: &str = "photon-upgrade.sizes-new";
/// Where size indexes are published, below the repository.
pub const SIZES_DIR: &str = "extensions/photon-upgrade/sizes";

/// Every object of `commit` with its archived and unpacked sizes.
fn object_sizes(repo: &Repo, commit: &Checksum) -> Result<Vec<(Checksum, ObjectSize)>> {
    let mut objects = HashSet::new();
    commit_objects(repo, commit, &mut objects, Walk::SkipMissing)?;
    let mut out = Vec::with_capacity(objects.len());
    for (c, t) in objects {
        let Some(st) = repo.objects_dir().stat_optional(repo.loose_path(&c, t))? else { continue };
        let archived = st.st_size as u64;
        let unpacked = if t == ObjectType::File { repo.open_content(&c)?.size } else { archived };
        out.push((c, ObjectSize { kind: t, archived, unpacked }));
    }
    Ok(out)
}

/// Writes an index under its SHA-256 name; returns that id.
fn write_index(repo: &Repo, items: &[(Checksum, ObjectSize)]) -> Result<Checksum> {
    let bytes = SizeIndex::new(items.iter().copied()).to_bytes();
    let id = Checksum::of(&bytes);
    repo.dir().ensure_dir_all(SIZES_DIR, 0o755)?;
    let dir = repo.dir().open_dir(SIZES_DIR)?;
    let name = id.to_hex();
    if dir.stat_optional(&name)?.is_none() {
        dir.write_atomic(&name, &bytes, 0o644).with_context(|| format!("writing size index {name}"))?;
    }
    Ok(id)
}

/// What a summary update wrote.
pub struct Updated {
    /// The new summary.
    pub summary: Summary,
    /// Problems that did not stop the update (a size index left out).
    pub warnings: Vec<String>,
}

/// The size indexes of `commit` as summary metadata: the whole commit, and
/// what is new since its parent (an update), when the parent is here.
fn size_indexes(repo: &Repo, commit: &Checksum, parent: Option<Checksum>, meta: &mut Metadata) -> Result<()> {
    let all = object_sizes(repo, commit)?;
    let all_id = write_index(repo, &all)?;
    let mut new_id = None;
    if let Some(parent) = parent.filter(|p| repo.has_commit(p).unwrap_or(false)) {
        let old: HashSet<Checksum> = object_sizes(repo, &parent)?.into_iter().map(|(c, _)| c).collect();
        let new: Vec<_> = all.into_iter().filter(|(c, _)| !old.contains(c)).collect();
        new_id = Some(write_index(repo, &new)?);
    }
    meta.insert(SIZES_KEY, Value::new_bytes(all_id.as_bytes()));
    if let Some(id) = new_id {
        meta.insert(SIZES_NEW_KEY, Value::new_bytes(id.as_bytes()));
    }
    Ok(())
}

/// Regenerates the summary at time `now` (seconds since the epoch).
pub fn update(repo: &Repo, opts: &SummaryOptions, now: u64) -> Result<Updated> {
    let mut warnings = Vec::new();
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
        // Size indexes, for clients' progress totals and space checks. They
        // are advisory: a ref whose objects cannot all be read is listed
        // without one (clients then count objects, not bytes).
        if repo.mode().is_archive()
            && let Err(e) = size_indexes(repo, &commit, c.parent, &mut meta)
        {
            warnings.push(format!("ref {spec}: no size index published: {e:#}; run `repo fsck`"));
        }
        refs.push(SummaryRef { name: spec.name, commit_size: data.len() as u64, checksum: commit, metadata: meta });
    }
    let mut meta = Metadata::new();
    meta.insert(keys::LAST_MODIFIED, Value::new_u64(now.to_be()));
    meta.insert(keys::MODE, Value::new_str(repo.mode().config_name()));
    meta.insert(keys::TOMBSTONE_COMMITS, Value::new_bool(false));
    meta.insert(keys::INDEXED_DELTAS, Value::new_bool(true));
    // Our deltas, each named with the hash of its superblock body, so a
    // client that trusts this summary trusts the superblock it fetches.
    let deltas: Vec<(String, Checksum)> = super::delta::list(repo)
        .context("listing deltas (fix or delete the broken one under photon-deltas/)")?
        .into_iter()
        .map(|d| (d.id, d.superblock_checksum))
        .collect();
    if !deltas.is_empty() {
        meta.insert(repo_format::delta::SUMMARY_KEY, repo_format::delta::summary_value(&deltas));
    }
    if let Some(v) = opts.valid_for {
        meta.insert(keys::EXPIRES, Value::new_u64(now.saturating_add(v).to_be()));
    }
    let summary = Summary::new(refs, meta)?;
    // Indexes no ref names any more are dropped (after the new summary is
    // written, below, so a client never sees a summary naming a missing one).
    let live: HashSet<String> = summary
        .refs()
        .iter()
        .flat_map(|r| [SIZES_KEY, SIZES_NEW_KEY].map(|k| r.metadata.get_bytes(k).ok().flatten()))
        .flatten()
        .map(hex::encode)
        .collect();
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
    if let Some(dir) = dir.open_dir_optional(SIZES_DIR)? {
        for e in dir.entries()? {
            let e = e?;
            if e.name.to_str().is_some_and(|n| !live.contains(n) && !n.starts_with('.')) {
                dir.unlink(&e.name)?;
            }
        }
    }
    Ok(Updated { summary, warnings })
}
