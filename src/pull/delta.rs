//! Pulling through a delta: choose one from the summary, fetch its
//! superblock and parts, apply them.
//!
//! A delta is an accelerator, never the only way: when the summary lists
//! none for this step (or the server lacks the one it lists), the pull
//! fetches objects as usual, and after a delta the normal object walk still
//! runs, fetching anything the delta did not carry. What a delta does carry
//! is trusted only through signatures: the summary's (which names the
//! superblock's hash) and the superblock's own, then each part's hash,
//! then each object's.
//!
//! Parts download in parallel into `tmp/fetch/delta-SHA256.part`, where a
//! later run resumes them (HTTP Range) or reuses them whole, and are
//! applied one at a time as they complete, metadata first. The delta's
//! objects are published together at the end; the part files are deleted
//! only then.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use anyhow::{Result, anyhow, bail};
use repo_format::delta::{self as fmt, Superblock};
use repo_format::{Checksum, Summary};

use super::PlannedObject;
use super::fetch::{Fetcher, FileSink, Sink};
use crate::progress::{Progress, Unit};
use crate::repo::Repo;
pub use crate::repo::delta::apply::Applied;
use crate::repo::delta::apply::{Applier, part_label};
use crate::repo::delta::generate::part_file;
use crate::repo::delta::open_superblock;
use crate::sign::TrustStore;

/// A delta the summary offers for one step.
#[derive(Debug, Clone)]
pub struct Offer {
    /// Its id.
    pub id: String,
    /// SHA-256 of its superblock body.
    pub superblock: Checksum,
}

/// The delta to use to get `to`, having `from` (a complete local commit).
/// From nothing only when there is no `from`: a delta from an old commit
/// the server lacks is never guessed at.
pub fn choose(summary: &Summary, from: Option<&Checksum>, to: &Checksum) -> Option<Offer> {
    let offered = fmt::parse_summary_value(summary.metadata.get(fmt::SUMMARY_KEY)?)?;
    let want = fmt::delta_id(from, to);
    offered.into_iter().find(|(id, _)| *id == want).map(|(id, superblock)| Offer { id, superblock })
}

fn path(id: &str, file: &str) -> String {
    format!("{}/{id}/{file}", fmt::DELTAS_DIR)
}

/// Fetches and verifies a superblock; `None` if the server does not have it.
pub fn fetch_superblock(
    fetcher: &Fetcher,
    offer: &Offer,
    trust: Option<&TrustStore>,
    from: Option<&Checksum>,
    to: &Checksum,
) -> Result<Option<(Superblock, u64)>> {
    let Some(raw) = fetcher.get_optional(&path(&offer.id, fmt::SUPERBLOCK_FILE), fmt::MAX_SUPERBLOCK_SIZE as u64)?
    else {
        return Ok(None);
    };
    let what = format!("delta {} superblock", offer.id);
    let (_, sb) = open_superblock(&raw, trust, Some(&offer.superblock), &what)?;
    if sb.to != *to || sb.from.as_ref() != from {
        bail!("{what} is for {}, not for {}; refusing it", fmt::delta_id(sb.from.as_ref(), &sb.to), offer.id);
    }
    Ok(Some((sb, raw.len() as u64)))
}

/// What a dry run would fetch for this delta.
pub fn plan(offer: &Offer, sb: &Superblock, superblock_size: u64) -> Vec<PlannedObject> {
    let mut out =
        vec![PlannedObject { objtype: "delta-superblock", checksum: offer.superblock, bytes: superblock_size }];
    out.extend(sb.parts.iter().map(|p| PlannedObject { objtype: "delta-part", checksum: p.checksum, bytes: p.size }));
    out
}

/// Refuses a delta that would not fit: its parts while they download, and
/// what they unpack to.
pub fn check_space(repo: &Repo, sb: &Superblock) -> Result<()> {
    let unpacked: u64 = sb.parts.iter().map(|p| p.uncompressed).fold(0, u64::saturating_add);
    let need = sb.parts_size().saturating_add(unpacked);
    let space = repo.objects_dir().space()?;
    if space.available < need {
        bail!(
            "not enough space in {}: delta {} needs up to {} MiB, {} MiB are free; free space (`cleanup`, `repo prune --refs-only`) or pull with --disable-deltas",
            repo.path().display(),
            fmt::delta_id(sb.from.as_ref(), &sb.to),
            need.div_ceil(1 << 20),
            space.available >> 20
        );
    }
    Ok(())
}

/// How a delta pull ended.
pub enum Outcome {
    /// Every part applied; its objects are published.
    Applied(Applied),
    /// The server lacks one of its parts (a broken publish): nothing was
    /// published, and the pull goes on with objects.
    PartMissing(String),
}

/// Downloads and applies `sb`'s parts into a transaction of its own, which
/// is committed (with the commit marked partial) only if every part
/// applied. A download that fails is kept for the next run to resume; a
/// delta whose content is refused has its part files deleted.
pub fn apply(
    repo: &Repo,
    fetcher: &Fetcher,
    sb: &Superblock,
    max_object: u64,
    parallelism: usize,
    progress: &dyn Progress,
) -> Result<Outcome> {
    let id = fmt::delta_id(sb.from.as_ref(), &sb.to);
    let tmp = repo.tmp_dir();
    tmp.ensure_dir("fetch", 0o755)?;
    let dir = tmp.open_dir("fetch")?;
    let file_of = |n: usize| format!("delta-{}.part", sb.parts[n].checksum);
    let txn = repo.begin()?;
    let mut applier = Applier::new(&txn, sb, max_object)?;
    progress.start("delta", Unit::Bytes, Some(sb.parts_size()));

    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let workers = parallelism.clamp(1, sb.parts.len().max(1));
    let result = std::thread::scope(|s| -> Result<(), Failure> {
        let (tx, rx) = mpsc::channel::<(usize, Result<(), Failure>)>();
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, stop, dir, file_of, id) = (&next, &stop, &dir, &file_of, &id);
            s.spawn(move || {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= sb.parts.len() || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = (|| -> Result<(), Failure> {
                        let name = file_of(n);
                        let file = dir.create_file_or_open(&name).map_err(|e| Failure::Fetch(e.into()))?;
                        let mut sink = FileSink::new(file).map_err(|e| Failure::Fetch(e.into()))?;
                        let before = sink.held();
                        if before == sb.parts[n].size {
                            // Complete from an earlier run; its hash is checked before use.
                            progress.inc(before);
                            return Ok(());
                        }
                        fetcher.get(&path(id, &part_file(n)), sb.parts[n].size, &mut sink).map_err(|e| {
                            if e.is_not_found() {
                                let _ = dir.unlink(&name);
                                Failure::Missing(format!("{}: {e}", part_label(id, n)))
                            } else {
                                Failure::Fetch(
                                    anyhow::Error::from(e).context(format!("fetching {}", part_label(id, n))),
                                )
                            }
                        })?;
                        progress.inc(sink.held().saturating_sub(before));
                        Ok(())
                    })();
                    if tx.send((n, r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Apply as parts arrive: metadata parts in order, first; files
        // parts in arrival order once every metadata part is in.
        let mut pending_meta: BTreeSet<usize> = (0..sb.parts.len()).filter(|&n| applier.is_metadata(n)).collect();
        let mut arrived_meta: BTreeSet<usize> = BTreeSet::new();
        let mut arrived_files: Vec<usize> = Vec::new();
        let mut applied = 0usize;
        let fail = |e: Failure| {
            stop.store(true, Ordering::Relaxed);
            Err(e)
        };
        for (n, r) in rx {
            if let Err(e) = r {
                return fail(e);
            }
            if pending_meta.contains(&n) {
                arrived_meta.insert(n);
            } else {
                arrived_files.push(n);
            }
            while let Some(m) = pending_meta.first().copied().filter(|m| arrived_meta.contains(m)) {
                if let Err(e) = apply_one(&mut applier, &dir, &file_of(m), m) {
                    return fail(Failure::Refused(e));
                }
                pending_meta.remove(&m);
                applied += 1;
            }
            if pending_meta.is_empty() {
                for k in std::mem::take(&mut arrived_files) {
                    if let Err(e) = apply_one(&mut applier, &dir, &file_of(k), k) {
                        return fail(Failure::Refused(e));
                    }
                    applied += 1;
                }
            }
        }
        if applied != sb.parts.len() {
            return Err(Failure::Refused(anyhow!("only {applied} of its {} parts were applied", sb.parts.len())));
        }
        Ok(())
    });
    progress.finish();
    let remove_parts = || {
        for n in 0..sb.parts.len() {
            let _ = dir.unlink(file_of(n));
        }
    };
    match result {
        Ok(()) => {}
        Err(Failure::Missing(what)) => return Ok(Outcome::PartMissing(what)),
        Err(Failure::Fetch(e)) => {
            return Err(e.context(format!(
                "pulling through delta {id} (a rerun resumes the download; `pull --disable-deltas` fetches objects instead)"
            )));
        }
        Err(Failure::Refused(e)) => {
            // Refused content is not worth keeping for a rerun.
            remove_parts();
            return Err(e.context(format!(
                "refusing delta {id}; nothing from it was kept (`pull --disable-deltas` fetches objects instead)"
            )));
        }
    }
    let applied = applier.applied;
    repo.mark_commit_partial(&sb.to, true)?;
    txn.commit()?;
    // Only now: until the objects are published, an interrupted pull
    // re-applies the parts it has instead of fetching them again.
    remove_parts();
    Ok(Outcome::Applied(applied))
}

/// Why a delta pull stopped.
enum Failure {
    /// A part is not on the server.
    Missing(String),
    /// A download failed (network, server error): resumable.
    Fetch(anyhow::Error),
    /// Content was refused (hash, signature, format).
    Refused(anyhow::Error),
}

/// Removes part files left by delta pulls that did not finish, once the
/// commits they were for are complete (a successful pull calls this).
pub fn remove_stale_parts(repo: &Repo) -> Result<()> {
    let Some(dir) = repo.tmp_dir().open_dir_optional("fetch")? else { return Ok(()) };
    for e in dir.entries()? {
        let e = e?;
        if e.name.to_str().is_some_and(|n| n.starts_with("delta-") && n.ends_with(".part")) {
            let _ = dir.unlink(&e.name);
        }
    }
    Ok(())
}

/// Checks and applies one downloaded part (kept until the delta's
/// objects are published).
fn apply_one(applier: &mut Applier<'_, '_>, dir: &crate::fsutil::Dir, name: &str, n: usize) -> Result<()> {
    let open = || dir.open_file(name).map_err(|e| anyhow!("opening downloaded part {n}: {e}"));
    let checked = applier.check_part(n, &mut std::io::BufReader::new(open()?));
    if let Err(e) = checked {
        // A corrupt download is not resumed.
        let _ = dir.unlink(name);
        return Err(e);
    }
    applier.apply_part(n, &mut open()?)
}
