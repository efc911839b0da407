//! `pull`: fetch commits from a remote into the local repository, verifying
//! every byte.
//!
//! Order of trust: the summary is fetched and its signature checked (and
//! its freshness: not expired, not older than the last one seen), refs are
//! resolved from it; each commit object is fetched, hashed, and its
//! signature checked *before* any tree object is requested. Tree objects are
//! then fetched by a pool of workers that walks dirtrees as they arrive;
//! each object is size-bounded, hashed while stored, and refused unless it
//! matches its name. Verified objects are published in batches as the pull
//! goes (so a rerun after a dead link fetches nothing twice), the commit
//! objects last, and refs only after every object is in.

pub mod delta;
pub mod fetch;
pub mod remote;

use std::collections::{HashSet, VecDeque};
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use repo_format::commit::keys as commit_keys;
use repo_format::sign as fmt;
use repo_format::sizes::{MAX_INDEX_SIZE, ObjectSize, SizeIndex};
use repo_format::{Checksum, Commit, DirMeta, DirTree, MAX_METADATA_SIZE, Metadata, ObjectType, Summary};

use crate::progress::{Progress, Unit};
use crate::repo::refs::RefSpec;
use crate::repo::write::{ChecksumMismatch, Transaction};
use crate::repo::{Repo, RepoMode, loose_path};
use crate::sign::TrustStore;
use fetch::{Fetcher, FileSink, Sink};
use remote::Remote;

/// Largest metadata object fetched (a dirtree of about half a million
/// entries); downloads past 1 MiB go to disk, so a server sending an
/// endless body costs no memory.
const MAX_FETCH_METADATA: u64 = 64 << 20;
/// Largest `summary.sig` accepted.
const MAX_SUMMARY_SIG: u64 = 1 << 20;
/// Content objects larger than this are downloaded to a file under
/// `tmp/fetch/`, which survives a restart so the download resumes.
const SPILL_BYTES: u64 = 1 << 20;
/// Publish verified objects at least this often during a pull.
const FLUSH_INTERVAL: Duration = Duration::from_secs(2);
/// ... or after this many new bytes, whichever comes first.
const FLUSH_BYTES: u64 = 64 << 20;

/// What to pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Ref names or commit checksums; empty means the remote's `branches`.
    pub refs: Vec<String>,
    /// Parent commits to fetch too (0: only the named commits).
    pub depth: usize,
    /// Only report what would be fetched.
    pub dry_run: bool,
    /// Accept a commit older than the one the ref has now.
    pub allow_downgrade: bool,
    /// Root whose `etc/ostree` trust directories apply.
    pub sysroot: PathBuf,
    /// Current time, seconds since the epoch.
    pub now: u64,
    /// Fetch objects even when the remote offers a delta.
    pub disable_deltas: bool,
}

/// A ref moved by a pull.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RefUpdate {
    /// `remote:ref`.
    #[serde(rename = "ref")]
    pub spec: String,
    /// Before.
    pub old: Option<Checksum>,
    /// After.
    pub new: Checksum,
}

/// One object a dry run would fetch.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlannedObject {
    /// Kind.
    #[serde(rename = "type")]
    pub objtype: &'static str,
    /// Id.
    pub checksum: Checksum,
    /// Bytes on the wire.
    pub bytes: u64,
}

/// What a pull did (or, dry, would do).
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PullOutcome {
    /// Refs moved.
    pub refs: Vec<RefUpdate>,
    /// Commits now complete locally.
    pub commits: Vec<Checksum>,
    /// Metadata objects fetched.
    pub metadata_objects: u64,
    /// Content objects fetched.
    pub content_objects: u64,
    /// HTTP requests made.
    pub requests: u64,
    /// Body bytes received.
    pub bytes: u64,
    /// Deltas used (ids).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<String>,
    /// Dry run: every object that would be fetched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Vec<PlannedObject>>,
}

/// Pull failures a caller branches on.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The pulled commit is older than the local one.
    #[error(
        "refusing to downgrade {spec} from {old} ({old_time}) to the older {new} ({new_time}); pass --allow-downgrade to do it anyway"
    )]
    Downgrade {
        /// The ref.
        spec: String,
        /// Current commit.
        old: Checksum,
        /// Offered commit.
        new: Checksum,
        /// Current commit time.
        old_time: String,
        /// Offered commit time.
        new_time: String,
    },
}

fn part_name(c: &Checksum, t: ObjectType) -> String {
    format!("{c}.{}.part", t.extension(true))
}

fn object_path(c: &Checksum, t: ObjectType) -> String {
    format!("objects/{}", loose_path(c, t, RepoMode::Archive).display())
}

fn time_str(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or(format!("@{secs}"), |t| t.to_string())
}

/// Pulls from `remote_name` into `repo`.
pub fn pull(repo: &Repo, remote_name: &str, opts: &PullOptions, progress: &dyn Progress) -> Result<PullOutcome> {
    let remote = Remote::load(repo, remote_name)?;
    let trust = if remote.sign_verify || remote.sign_verify_summary {
        remote.trust(&opts.sysroot)?
    } else {
        TrustStore::default()
    };
    let fetcher = Fetcher::new(&remote.endpoint()?, remote.policy()?)?;
    let lock = repo.tmp_dir().create_file_or_open("pull.lock")?;
    crate::fsutil::lock_file_exclusive(&lock).context("waiting for another pull into this repository")?;

    progress.start("summary", Unit::Objects, None);
    let summary = fetch_summary(repo, &remote, &fetcher, &trust, opts.now)?;
    progress.finish();

    // Which commits, for which refs.
    let wanted: Vec<String> = if opts.refs.is_empty() { remote.branches.clone() } else { opts.refs.clone() };
    if wanted.is_empty() {
        bail!(
            "name the refs to pull (or set branches for remote {remote_name}); the remote offers: {}",
            offer(&summary)
        );
    }
    let mut targets: Vec<(Option<RefSpec>, Checksum)> = Vec::new();
    for w in &wanted {
        if let Ok(c) = Checksum::from_hex(w) {
            targets.push((None, c));
            continue;
        }
        let spec = RefSpec::parse(&format!("{remote_name}:{w}"))?;
        let commit = match &summary {
            Some((s, _)) => s
                .get(w)
                .map(|r| r.checksum)
                .ok_or_else(|| anyhow!("remote {remote_name} has no ref {w:?}; it offers: {}", offer(&summary)))?,
            None => {
                let data = fetcher
                    .get_optional(&format!("refs/heads/{w}"), 200)?
                    .ok_or_else(|| anyhow!("remote {remote_name} has no ref {w:?} (and no summary)"))?;
                let text = String::from_utf8_lossy(&data);
                Checksum::from_hex(text.trim())
                    .with_context(|| format!("remote {remote_name}: ref {w} is not a checksum"))?
            }
        };
        targets.push((Some(spec), commit));
    }

    // Commits: fetched, hashed and signature-checked before any tree object.
    progress.start("commits", Unit::Objects, None);
    let mut commits: Vec<FetchedCommit> = Vec::new();
    let mut seen_commits = HashSet::new();
    for (spec, c) in &targets {
        let mut cur = *c;
        for depth in 0..=opts.depth {
            if !seen_commits.insert(cur) {
                break;
            }
            let fetched = fetch_commit(repo, &remote, &fetcher, &trust, &cur);
            // Errors name the commit already; say which parent it was.
            let (data, detached) =
                if depth == 0 { fetched? } else { fetched.with_context(|| format!("parent {depth} of {c}"))? };
            let parsed = Commit::from_bytes(&data).with_context(|| format!("commit {cur}"))?;
            if depth == 0
                && let Some(spec) = spec
            {
                check_binding(&parsed, spec, &cur)?;
                check_downgrade(repo, spec, &parsed, &cur, opts.allow_downgrade)?;
            }
            progress.inc(1);
            commits.push((cur, data, detached));
            match parsed.parent {
                Some(p) if depth < opts.depth => cur = p,
                _ => break,
            }
        }
    }
    progress.finish();

    let roots: Vec<(Checksum, Checksum)> = commits
        .iter()
        .map(|(_, data, _)| Commit::from_bytes(data).map(|c| (c.root_tree, c.root_meta)))
        .collect::<Result<_, _>>()?;
    let max_object = remote.max_object_size()?;
    let (par1, par2) = remote.parallelism()?;
    let parallelism = if fetcher.is_http2() { par2 } else { par1 };

    // Deltas, where the summary offers one for the step from what the ref
    // has now (or from nothing) to the new commit.
    let mut deltas: Vec<(delta::Offer, repo_format::delta::Superblock, u64)> = Vec::new();
    if !opts.disable_deltas
        && let Some((s, _)) = &summary
    {
        let sb_trust = remote.sign_verify.then_some(&trust);
        for (spec, c) in &targets {
            if repo.has_commit(c)? && !repo.is_commit_partial(c)? {
                continue;
            }
            let complete = |f: &Checksum| -> Result<bool> { Ok(repo.has_commit(f)? && !repo.is_commit_partial(f)?) };
            // From what the ref has now, or from the new commit's parent;
            // from nothing only when neither is here.
            let current = match spec {
                Some(spec) => repo.resolve_ref(spec)?,
                None => None,
            };
            let parent =
                commits.iter().find(|(x, _, _)| x == c).and_then(|(_, d, _)| Commit::from_bytes(d).ok()?.parent);
            let mut froms = Vec::new();
            for f in [current, parent].into_iter().flatten() {
                if complete(&f)? && !froms.contains(&f) {
                    froms.push(f);
                }
            }
            let chosen = froms.iter().find_map(|f| delta::choose(s, Some(f), c).map(|o| (o, Some(*f))));
            let chosen = match chosen {
                Some(x) => Some(x),
                None if current.is_none() && froms.is_empty() => delta::choose(s, None, c).map(|o| (o, None)),
                None => None,
            };
            let Some((offer, from)) = chosen else { continue };
            progress.start("delta", Unit::Objects, None);
            let sb = delta::fetch_superblock(&fetcher, &offer, sb_trust, from.as_ref(), c)?;
            progress.finish();
            if let Some((sb, size)) = sb {
                deltas.push((offer, sb, size));
            }
        }
    }
    let by_delta: HashSet<Checksum> = deltas.iter().map(|(_, sb, _)| sb.to).collect();

    let root_jobs: Vec<Job> = commits
        .iter()
        .zip(&roots)
        .filter(|((c, _, _), _)| !(opts.dry_run && by_delta.contains(c)))
        .flat_map(|(_, (tree, meta))| [Job::DirMeta(*meta), Job::DirTree(*tree)])
        .collect();
    let params = WalkParams { repo, fetcher: &fetcher, max_object, parallelism, progress };

    if opts.dry_run {
        // Metadata is fetched (not stored) to learn which content is missing.
        progress.start("metadata", Unit::Objects, None);
        let (mut plan, missing) = walk(&params, None, root_jobs, Phase::Metadata, false)?;
        progress.finish();
        let sizes = size_index(&params, &summary, &targets, &commits, &missing)?;
        match &sizes {
            Some(idx) => plan.extend(missing.iter().map(|c| PlannedObject {
                objtype: "file",
                checksum: *c,
                bytes: idx.get(c).map_or(0, |s| s.archived),
            })),
            // No index from the publisher: ask the server for each size.
            None => {
                let jobs = missing.iter().map(|c| Job::File(*c)).collect();
                progress.start("sizes", Unit::Objects, Some(missing.len() as u64));
                plan.extend(walk(&params, None, jobs, Phase::Content, false)?.0);
                progress.finish();
            }
        }
        for (offer, sb, size) in &deltas {
            plan.extend(delta::plan(offer, sb, *size));
        }
        for (c, data, detached) in &commits {
            if !repo.has_commit(c)? {
                plan.push(PlannedObject { objtype: "commit", checksum: *c, bytes: data.len() as u64 });
            }
            if let Some(d) = detached {
                plan.push(PlannedObject { objtype: "commitmeta", checksum: *c, bytes: d.len() as u64 });
            }
        }
        // The refs a real pull would move (nothing moves now).
        let mut refs = Vec::new();
        for (spec, c) in &targets {
            if let Some(spec) = spec {
                refs.push(RefUpdate { spec: spec.to_string(), old: repo.resolve_ref(spec)?, new: *c });
            }
        }
        return Ok(PullOutcome {
            refs,
            requests: fetcher.stats.requests.load(Ordering::Relaxed),
            bytes: fetcher.stats.bytes.load(Ordering::Relaxed),
            deltas: deltas.iter().map(|(o, _, _)| o.id.clone()).collect(),
            plan: Some(plan),
            ..PullOutcome::default()
        });
    }

    // Deltas first, each in a transaction of its own; the object walk
    // below then finds their objects here and fetches only what is left.
    let mut from_deltas = delta::Applied::default();
    let mut used = Vec::new();
    for (offer, sb, _) in &deltas {
        delta::check_space(repo, sb)?;
        match delta::apply(repo, &fetcher, sb, max_object, parallelism, progress)? {
            delta::Outcome::Applied(a) => {
                from_deltas.metadata_objects += a.metadata_objects;
                from_deltas.content_objects += a.content_objects;
                used.push(offer.id.clone());
            }
            delta::Outcome::PartMissing(what) => {
                eprintln!(
                    "warning: remote {remote_name} lists delta {} but lacks {what}; fetching objects instead",
                    offer.id
                );
            }
        }
    }

    let txn = repo.begin()?;
    for (c, data, detached) in &commits {
        repo.mark_commit_partial(c, true)?;
        txn.write_metadata_verified(ObjectType::Commit, c, data)?;
        if let Some(d) = detached {
            let meta = Metadata::from_bytes_as("commitmeta", d).with_context(|| format!("detached metadata of {c}"))?;
            txn.write_detached_metadata(c, &meta)?;
        }
    }
    // Metadata first: then the content to fetch, and (with the publisher's
    // size index) its exact size, are known before any content download:
    // the progress total and the space check come from that.
    let walked = (|| -> Result<()> {
        progress.start("metadata", Unit::Objects, None);
        let (_, missing) = walk(&params, Some(&txn), root_jobs, Phase::Metadata, false)?;
        progress.finish();
        let sizes = size_index(&params, &summary, &targets, &commits, &missing)?;
        if let Some(idx) = &sizes {
            check_space(repo, idx, &missing)?;
        }
        let total = sizes.as_ref().map(|idx| missing.iter().map(|c| idx.get(c).map_or(0, |s| s.archived)).sum::<u64>());
        match total {
            Some(t) => progress.start("fetching", Unit::Bytes, Some(t)),
            None => progress.start("fetching", Unit::Objects, Some(missing.len() as u64)),
        }
        let jobs = missing.iter().map(|c| Job::File(*c)).collect();
        walk(&params, Some(&txn), jobs, Phase::Content, total.is_some())?;
        progress.finish();
        Ok(())
    })();
    if let Err(e) = walked {
        progress.finish();
        // Keep what was verified: a rerun then fetches only the rest.
        let _ = txn.flush();
        return Err(e);
    }
    let stats = txn.commit()?;
    let mut outcome = PullOutcome {
        metadata_objects: stats.metadata_objects + from_deltas.metadata_objects,
        content_objects: stats.content_objects + from_deltas.content_objects,
        deltas: used,
        ..PullOutcome::default()
    };
    for (c, _, _) in &commits {
        repo.mark_commit_partial(c, false)?;
        outcome.commits.push(*c);
    }
    for (spec, c) in &targets {
        if let Some(spec) = spec {
            let old = repo.resolve_ref(spec)?;
            if old != Some(*c) {
                repo.set_ref(spec, Some(c))?;
            }
            outcome.refs.push(RefUpdate { spec: spec.to_string(), old, new: *c });
        }
    }
    if let Some((_, raw)) = summary {
        save_summary(repo, remote_name, &raw)?;
    }
    // Every commit asked for is complete: parts of deltas that failed
    // earlier are of no more use.
    delta::remove_stale_parts(repo)?;
    outcome.requests = fetcher.stats.requests.load(Ordering::Relaxed);
    outcome.bytes = fetcher.stats.bytes.load(Ordering::Relaxed);
    Ok(outcome)
}

fn offer(summary: &Option<(Summary, Vec<u8>)>) -> String {
    match summary {
        Some((s, _)) if !s.refs().is_empty() => s.refs().iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", "),
        Some(_) => "no refs".into(),
        None => "(no summary to list refs)".into(),
    }
}

/// The summary and its raw bytes, verified; `None` if the remote has none
/// and summary verification is off.
fn fetch_summary(
    repo: &Repo,
    remote: &Remote,
    fetcher: &Fetcher,
    trust: &TrustStore,
    now: u64,
) -> Result<Option<(Summary, Vec<u8>)>> {
    let name = &remote.name;
    // A publisher replaces summary and summary.sig one after the other; a
    // mismatch may be that race, so look once more before refusing.
    let mut tries = 0;
    loop {
        tries += 1;
        let Some(raw) = fetcher.get_optional("summary", MAX_METADATA_SIZE as u64)? else {
            if remote.sign_verify_summary {
                bail!(
                    "remote {name} publishes no summary, but its signature is required; the publisher must run `repo summary --update --sign-key KEY`"
                );
            }
            return Ok(None);
        };
        if remote.sign_verify_summary {
            let sig = fetcher.get_optional("summary.sig", MAX_SUMMARY_SIG)?;
            let sigs = match &sig {
                Some(s) => fmt::signatures(
                    &Metadata::from_bytes_as("summary.sig", s)
                        .with_context(|| format!("summary.sig of remote {name}"))?,
                )?,
                None => Vec::new(),
            };
            match trust.check(&format!("summary of remote {name}"), &raw, &sigs) {
                Ok(_) => {}
                Err(_) if tries < 2 && sig.is_some() => {
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Parsed only once its signature (when required) holds.
        let summary = Summary::from_bytes(&raw).with_context(|| format!("summary of remote {name}"))?;
        if let Some(exp) = summary.expires()
            && exp < now
        {
            bail!(
                "summary of remote {name} expired at {} (the publisher must re-sign it with `repo summary --update`; an expired summary may be an old one replayed)",
                time_str(exp)
            );
        }
        if let (Some(prev), Some(cur)) = (cached_last_modified(repo, name), summary.last_modified())
            && cur < prev
        {
            bail!(
                "summary of remote {name} was written at {}, before the one already seen ({}); refusing a replayed old summary",
                time_str(cur),
                time_str(prev)
            );
        }
        return Ok(Some((summary, raw)));
    }
}

fn summary_cache(name: &str) -> PathBuf {
    Path::new("state/remotes").join(name)
}

fn cached_last_modified(repo: &Repo, name: &str) -> Option<u64> {
    let d = repo.dir().open_dir_optional(summary_cache(name)).ok()??;
    let mut f = d.open_file_optional("summary").ok()??;
    let mut raw = Vec::new();
    f.read_to_end(&mut raw).ok()?;
    Summary::from_bytes(&raw).ok()?.last_modified()
}

fn save_summary(repo: &Repo, name: &str, raw: &[u8]) -> Result<()> {
    let rel = summary_cache(name);
    repo.dir().ensure_dir_all(&rel, 0o755)?;
    repo.dir().open_dir(&rel)?.write_atomic("summary", raw, 0o644).context("caching the remote's summary")
}

/// Fetches (or reads locally) a commit and its detached metadata, checking
/// the hash and, when the remote requires it, the signature.
fn fetch_commit(
    repo: &Repo,
    remote: &Remote,
    fetcher: &Fetcher,
    trust: &TrustStore,
    c: &Checksum,
) -> Result<(Vec<u8>, Option<Vec<u8>>)> {
    let data = match repo.read_metadata_optional(c, ObjectType::Commit)? {
        Some(d) => d,
        None => {
            let data = fetcher
                .get_optional(&object_path(c, ObjectType::Commit), MAX_METADATA_SIZE as u64)?
                .ok_or_else(|| anyhow!("commit {c} is missing on the server"))?;
            let actual = Checksum::of(&data);
            if actual != *c {
                bail!("server sent wrong bytes for commit {c} (they hash to {actual})");
            }
            data
        }
    };
    let detached = fetcher.get_optional(&object_path(c, ObjectType::CommitMeta), MAX_METADATA_SIZE as u64)?;
    if remote.sign_verify {
        let meta = match &detached {
            Some(d) => Metadata::from_bytes_as("commitmeta", d).with_context(|| format!("detached metadata of {c}"))?,
            None => Metadata::new(),
        };
        let sigs = fmt::signatures(&meta)?;
        trust.check(&format!("commit {c}"), &data, &sigs)?;
    }
    Ok((data, detached))
}

/// A signed commit names the refs it was made for; refusing others stops a
/// server from moving a ref to a validly signed commit of another branch.
pub(crate) fn check_binding(commit: &Commit, spec: &RefSpec, c: &Checksum) -> Result<()> {
    if let Some(bound) = commit.metadata.get_strs(commit_keys::REF_BINDING)?
        && !bound.contains(&spec.name)
    {
        bail!("commit {c} was made for {} and not for {}; refusing it", bound.join(", "), spec.name);
    }
    Ok(())
}

pub(crate) fn check_downgrade(repo: &Repo, spec: &RefSpec, new: &Commit, c: &Checksum, allow: bool) -> Result<()> {
    let Some(old) = repo.resolve_ref(spec)? else { return Ok(()) };
    if old == *c || allow || !repo.has_commit(&old)? {
        return Ok(());
    }
    let old_commit = repo.load_commit(&old)?;
    if new.timestamp < old_commit.timestamp {
        return Err(PullError::Downgrade {
            spec: spec.to_string(),
            old,
            new: *c,
            old_time: time_str(old_commit.timestamp),
            new_time: time_str(new.timestamp),
        }
        .into());
    }
    Ok(())
}

/// A commit fetched and verified: id, bytes, detached metadata.
type FetchedCommit = (Checksum, Vec<u8>, Option<Vec<u8>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Job {
    DirTree(Checksum),
    DirMeta(Checksum),
    File(Checksum),
}

struct Queue {
    jobs: VecDeque<Job>,
    active: usize,
    seen: HashSet<Job>,
    failed: Option<anyhow::Error>,
    plan: Vec<PlannedObject>,
    /// Content found missing during the metadata phase.
    missing: Vec<Checksum>,
}

struct Walker<'a> {
    repo: &'a Repo,
    txn: Option<&'a Transaction<'a>>,
    fetcher: &'a Fetcher,
    max_object: u64,
    phase: Phase,
    bytes_progress: bool,
    queue: Mutex<Queue>,
    cv: Condvar,
    progress: &'a dyn Progress,
    flushed_at: Mutex<(Instant, u64)>,
    new_bytes: AtomicU64,
}

/// What a walk fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Dirtrees and dirmetas; missing content is collected, not fetched.
    Metadata,
    /// Content objects.
    Content,
}

/// What every walk shares.
struct WalkParams<'a> {
    repo: &'a Repo,
    fetcher: &'a Fetcher,
    max_object: u64,
    parallelism: usize,
    progress: &'a dyn Progress,
}

/// Runs `jobs` (and the jobs they uncover) on a pool of workers, storing
/// into `txn`, or with no transaction, planning what would be fetched.
/// Returns the plan and, in the metadata phase, the content still missing.
/// `bytes_progress` reports bytes rather than objects.
fn walk(
    p: &WalkParams<'_>,
    txn: Option<&Transaction<'_>>,
    jobs: Vec<Job>,
    phase: Phase,
    bytes_progress: bool,
) -> Result<(Vec<PlannedObject>, Vec<Checksum>)> {
    let mut q = Queue {
        jobs: VecDeque::new(),
        active: 0,
        seen: HashSet::new(),
        failed: None,
        plan: Vec::new(),
        missing: Vec::new(),
    };
    for j in jobs {
        if q.seen.insert(j) {
            q.jobs.push_back(j);
        }
    }
    let w = Walker {
        repo: p.repo,
        txn,
        fetcher: p.fetcher,
        max_object: p.max_object,
        phase,
        bytes_progress,
        queue: Mutex::new(q),
        cv: Condvar::new(),
        progress: p.progress,
        flushed_at: Mutex::new((Instant::now(), 0)),
        new_bytes: AtomicU64::new(0),
    };
    std::thread::scope(|s| {
        for _ in 0..p.parallelism {
            s.spawn(|| w.work());
        }
    });
    let q = w.queue.into_inner().map_err(|_| anyhow!("pull queue poisoned"))?;
    if let Some(e) = q.failed {
        return Err(e);
    }
    Ok((q.plan, q.missing))
}

/// Where size indexes are published, below the remote's URL.
const SIZES_PATH: &str = "extensions/photon-upgrade/sizes";

/// Fetches and verifies the size index `id` names; `None` when the server
/// no longer has it (a summary update dropped it after we read the old
/// summary): sizes are advisory, so the pull goes on without them.
fn fetch_index(fetcher: &Fetcher, id: &[u8]) -> Result<Option<SizeIndex>> {
    let id = Checksum::from_bytes(id).context("size index id in the summary")?;
    let Some(data) = fetcher.get_optional(&format!("{SIZES_PATH}/{id}"), MAX_INDEX_SIZE as u64)? else {
        return Ok(None);
    };
    let actual = Checksum::of(&data);
    if actual != id {
        bail!("server sent wrong bytes for size index {id} (they hash to {actual})");
    }
    Ok(Some(SizeIndex::from_bytes(&data).with_context(|| format!("size index {id}"))?))
}

/// The publisher's sizes for `missing`: the small "new since the parent"
/// index when it covers them (an update), else the whole-commit one, else
/// OSTree's `ostree.sizes` commit metadata (`ostree commit
/// --generate-sizes`). `None` when they do not cover every object.
/// An entry larger than `max_object` is refused here, by name, before any
/// download (the object itself would be refused anyway).
fn size_index(
    p: &WalkParams<'_>,
    summary: &Option<(Summary, Vec<u8>)>,
    targets: &[(Option<RefSpec>, Checksum)],
    commits: &[FetchedCommit],
    missing: &[Checksum],
) -> Result<Option<SizeIndex>> {
    if missing.is_empty() {
        return Ok(Some(SizeIndex::new(Vec::new())));
    }
    let mut merged: Vec<(Checksum, ObjectSize)> = Vec::new();
    let covers = |merged: &[(Checksum, ObjectSize)]| {
        let have: HashSet<&Checksum> = merged.iter().map(|(c, _)| c).collect();
        missing.iter().all(|c| have.contains(c))
    };
    if let Some((s, _)) = summary {
        'refs: for (spec, _) in targets {
            let Some(r) = spec.as_ref().and_then(|spec| s.get(&spec.name)) else { continue };
            for key in [crate::repo::summary::SIZES_NEW_KEY, crate::repo::summary::SIZES_KEY] {
                let Some(id) = r.metadata.get_bytes(key)? else { continue };
                let Some(idx) = fetch_index(p.fetcher, &id)? else { continue };
                merged.extend(missing.iter().filter_map(|c| idx.get(c).map(|sz| (*c, sz))));
                if covers(&merged) {
                    break 'refs;
                }
            }
        }
    }
    if !covers(&merged) {
        // Signed with the commit; a malformed list only costs the total.
        for (_, data, _) in commits {
            let Ok(commit) = Commit::from_bytes(data) else { continue };
            let Ok(Some(entries)) = commit.metadata.get_byte_arrays("ostree.sizes") else { continue };
            let Ok(idx) = SizeIndex::from_ostree_sizes(&entries) else { continue };
            merged.extend(missing.iter().filter_map(|c| idx.get(c).map(|sz| (*c, sz))));
        }
    }
    let idx = SizeIndex::new(merged);
    for c in missing {
        match idx.get(c) {
            None => return Ok(None),
            Some(s) if s.unpacked > p.max_object || s.archived > p.max_object.saturating_add(1 << 20) => bail!(
                "content object {c} declares {} bytes of content (archived: {}) in the publisher's size index, \
                 more than the {}-byte limit (max-object-size)",
                s.unpacked,
                s.archived,
                p.max_object
            ),
            Some(_) => {}
        }
    }
    Ok(Some(idx))
}

/// Refuses a pull that would not fit, before any content is downloaded.
fn check_space(repo: &Repo, idx: &SizeIndex, missing: &[Checksum]) -> Result<()> {
    let archive = repo.mode().is_archive();
    let need: u64 = missing
        .iter()
        .filter_map(|c| idx.get(c))
        .map(|s| if archive { s.archived } else { s.unpacked })
        .map(|b| b.div_ceil(4096) * 4096)
        .sum::<u64>()
        + SPACE_MARGIN;
    let space = repo.objects_dir().space()?;
    if space.available < need {
        bail!(
            "not enough space in {}: the pull needs {} MiB, {} MiB are free; free space (`cleanup`, `repo prune --refs-only`) and retry",
            repo.path().display(),
            need.div_ceil(1 << 20),
            space.available / (1 << 20)
        );
    }
    Ok(())
}

/// Room kept free beyond what a pull's objects take.
const SPACE_MARGIN: u64 = 4 << 20;

impl Walker<'_> {
    fn work(&self) {
        loop {
            let job = {
                let Ok(mut q) = self.queue.lock() else { return };
                loop {
                    if q.failed.is_some() {
                        return;
                    }
                    if let Some(j) = q.jobs.pop_front() {
                        q.active += 1;
                        break j;
                    }
                    if q.active == 0 {
                        self.cv.notify_all();
                        return;
                    }
                    q = match self.cv.wait(q) {
                        Ok(q) => q,
                        Err(_) => return,
                    };
                }
            };
            let result = self.process(job);
            let Ok(mut q) = self.queue.lock() else { return };
            q.active -= 1;
            match result {
                Ok((children, planned)) => {
                    if let Some(p) = planned {
                        q.plan.push(p);
                    }
                    for c in children {
                        if q.seen.insert(c) {
                            match (self.phase, c) {
                                (Phase::Metadata, Job::File(f)) => q.missing.push(f),
                                _ => q.jobs.push_back(c),
                            }
                        }
                    }
                }
                Err(e) => {
                    q.failed.get_or_insert(e);
                }
            }
            self.cv.notify_all();
            drop(q);
            if let Err(e) = self.maybe_flush() {
                if let Ok(mut q) = self.queue.lock() {
                    q.failed.get_or_insert(e);
                }
                self.cv.notify_all();
            }
        }
    }

    fn maybe_flush(&self) -> Result<()> {
        let Some(txn) = self.txn else { return Ok(()) };
        let mut last = self.flushed_at.lock().map_err(|_| anyhow!("poisoned"))?;
        let bytes = self.new_bytes.load(Ordering::Relaxed);
        if last.0.elapsed() >= FLUSH_INTERVAL || bytes - last.1 >= FLUSH_BYTES {
            txn.flush()?;
            *last = (Instant::now(), bytes);
        }
        Ok(())
    }

    fn has(&self, c: &Checksum, t: ObjectType) -> Result<bool> {
        match self.txn {
            Some(txn) => txn.has(c, t),
            None => self.repo.has_object(c, t),
        }
    }

    /// Does one job: returns the jobs it uncovered and, when planning, the
    /// object it would fetch.
    fn process(&self, job: Job) -> Result<(Vec<Job>, Option<PlannedObject>)> {
        match job {
            Job::DirTree(c) => {
                let (tree, planned) = if self.has(&c, ObjectType::DirTree)? {
                    (self.repo.load_dirtree(&c)?, None)
                } else {
                    let data = self.fetch_meta(&c, ObjectType::DirTree)?;
                    let tree = DirTree::from_bytes(&data).with_context(|| format!("dirtree {c} from the server"))?;
                    let planned = self.store_meta(&c, ObjectType::DirTree, &data)?;
                    (tree, planned)
                };
                self.progress.inc(1);
                let mut jobs = Vec::with_capacity(tree.files().len() + 2 * tree.dirs().len());
                for f in tree.files() {
                    if !self.has(&f.checksum, ObjectType::File)? {
                        jobs.push(Job::File(f.checksum));
                    }
                }
                for d in tree.dirs() {
                    jobs.push(Job::DirMeta(d.meta));
                    jobs.push(Job::DirTree(d.tree));
                }
                Ok((jobs, planned))
            }
            Job::DirMeta(c) => {
                if self.has(&c, ObjectType::DirMeta)? {
                    return Ok((Vec::new(), None));
                }
                let data = self.fetch_meta(&c, ObjectType::DirMeta)?;
                DirMeta::from_bytes(&data).with_context(|| format!("dirmeta {c} from the server"))?;
                self.progress.inc(1);
                Ok((Vec::new(), self.store_meta(&c, ObjectType::DirMeta, &data)?))
            }
            Job::File(c) => {
                let (planned, received) = self.fetch_content(&c)?;
                self.progress.inc(if self.bytes_progress { received } else { 1 });
                Ok((Vec::new(), planned))
            }
        }
    }

    fn fetch_meta(&self, c: &Checksum, t: ObjectType) -> Result<Vec<u8>> {
        let spill = self.download(c, t, MAX_FETCH_METADATA)?;
        let data = match spill {
            Spill::Memory(v) => v,
            Spill::File(mut f) => {
                let mut v = Vec::new();
                f.file.rewind()?;
                f.file.read_to_end(&mut v)?;
                let _ = self.parts()?.unlink(part_name(c, t));
                v
            }
        };
        let actual = Checksum::of(&data);
        if actual != *c {
            bail!("server sent wrong bytes for {} object {c} (they hash to {actual})", t.noun());
        }
        Ok(data)
    }

    fn parts(&self) -> Result<crate::fsutil::Dir> {
        let tmp = self.repo.tmp_dir();
        tmp.ensure_dir("fetch", 0o755)?;
        Ok(tmp.open_dir("fetch")?)
    }

    /// Downloads an object: in memory while small, then into
    /// `tmp/fetch/NAME.part` (where a later run resumes it).
    fn download(&self, c: &Checksum, t: ObjectType, limit: u64) -> Result<Spill> {
        let parts = self.parts()?;
        let name = part_name(c, t);
        let mut sink = match parts.open_file_optional(&name)? {
            // A download a previous run left unfinished: resume it.
            Some(_) => Spill::File(FileSink::new(parts.open_file_rw(&name)?)?),
            None => Spill::Memory(Vec::new()),
        };
        let got =
            self.fetcher.get(&object_path(c, t), limit, &mut SpillSink { sink: &mut sink, dir: &parts, name: &name });
        match got {
            Ok(()) => Ok(sink),
            Err(e) => {
                // Keep a partial file for resuming, unless the server has no such object.
                if e.is_not_found() {
                    let _ = parts.unlink(&name);
                    bail!("{} object {c} is missing on the server ({e})", t.noun());
                }
                Err(anyhow::Error::from(e).context(format!("fetching {} object {c}", t.noun())))
            }
        }
    }

    fn store_meta(&self, c: &Checksum, t: ObjectType, data: &[u8]) -> Result<Option<PlannedObject>> {
        match self.txn {
            Some(txn) => {
                txn.write_metadata_verified(t, c, data)?;
                self.new_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                Ok(None)
            }
            None => Ok(Some(PlannedObject { objtype: t.name(), checksum: *c, bytes: data.len() as u64 })),
        }
    }

    /// Fetches content object `c` into the transaction (or, planning, asks
    /// its size). Returns the plan entry and the bytes received.
    fn fetch_content(&self, c: &Checksum) -> Result<(Option<PlannedObject>, u64)> {
        let path = object_path(c, ObjectType::File);
        let Some(txn) = self.txn else {
            let bytes = self
                .fetcher
                .head_length(&path)?
                .ok_or_else(|| anyhow!("content object {c} is missing on the server"))?;
            return Ok((Some(PlannedObject { objtype: "file", checksum: *c, bytes }), 0));
        };
        if txn.has(c, ObjectType::File)? {
            return Ok((None, 0));
        }
        // Compressed data can exceed the content by deflate's worst case
        // (5 bytes per 16 KiB block) plus the header.
        let limit = self.max_object.saturating_add(self.max_object / 1000).saturating_add(1 << 20);
        let mut sink = self.download(c, ObjectType::File, limit)?;
        let received = match &sink {
            Spill::Memory(v) => v.len() as u64,
            Spill::File(f) => f.held(),
        };
        let stored = match &mut sink {
            Spill::Memory(v) => txn.write_content_from_archive(c, &mut v.as_slice(), self.max_object),
            Spill::File(f) => {
                f.file.rewind()?;
                let mut r = std::io::BufReader::new(&f.file);
                txn.write_content_from_archive(c, &mut r, self.max_object)
            }
        };
        if matches!(sink, Spill::File(_)) {
            let _ = self.parts()?.unlink(part_name(c, ObjectType::File));
        }
        // A checksum mismatch names the object already.
        stored.map_err(|e| if e.is::<ChecksumMismatch>() { e } else { e.context(format!("content object {c}")) })?;
        self.new_bytes.fetch_add(received, Ordering::Relaxed);
        Ok((None, received))
    }
}

/// A download held in memory until it grows past [`SPILL_BYTES`].
enum Spill {
    Memory(Vec<u8>),
    File(FileSink),
}

struct SpillSink<'a> {
    sink: &'a mut Spill,
    dir: &'a crate::fsutil::Dir,
    name: &'a str,
}

impl Sink for SpillSink<'_> {
    fn held(&self) -> u64 {
        match &*self.sink {
            Spill::Memory(v) => v.len() as u64,
            Spill::File(f) => f.held(),
        }
    }
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        if let Spill::Memory(v) = &*self.sink
            && v.len() as u64 + data.len() as u64 > SPILL_BYTES
        {
            let f = self.dir.create_file_or_open(self.name)?;
            f.set_len(0)?;
            let mut fs = FileSink::new(f)?;
            fs.write(v)?;
            *self.sink = Spill::File(fs);
        }
        match self.sink {
            Spill::Memory(v) => Sink::write(v, data),
            Spill::File(f) => f.write(data),
        }
    }
    fn reset(&mut self) -> std::io::Result<()> {
        match self.sink {
            Spill::Memory(v) => Sink::reset(v),
            Spill::File(f) => f.reset(),
        }
    }
}
