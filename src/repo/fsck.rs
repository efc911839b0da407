//! `repo fsck`: re-hash every object, check every reference.
//!
//! Each object is read back the way a reader would read it (decompressed,
//! bounded by its declared size), hashed, and parsed by kind; then every
//! commit's tree is walked to find missing objects. Commits marked partial
//! (`state/CSUM.commitpartial`, an interrupted pull) may lack objects.

use std::collections::HashSet;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use rayon::prelude::*;
use repo_format::{Checksum, Commit, DirMeta, DirTree, Metadata, ObjectType};

use super::Repo;
use super::commit::hash_reader;
use super::traverse::{ObjectName, Walk, commit_objects};
use crate::progress::{Progress, Unit};

/// One problem found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Problem {
    /// Object id.
    pub checksum: Checksum,
    /// Object kind.
    pub objtype: &'static str,
    /// `corrupt`, `missing` or `broken-ref`.
    pub kind: &'static str,
    /// What is wrong, in one line.
    pub reason: String,
}

/// What fsck found.
#[derive(Debug, Default, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FsckReport {
    /// Objects re-hashed.
    pub objects_checked: u64,
    /// Commits whose trees were walked.
    pub commits_checked: u64,
    /// Partial commits (objects may be missing by design).
    pub partial_commits: u64,
    /// Everything wrong.
    pub problems: Vec<Problem>,
    /// Objects deleted with `--delete-corrupt`.
    pub deleted: u64,
}

impl FsckReport {
    /// True if nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Every loose object in the repository, with files that are not objects
/// (left out).
pub fn list_objects(repo: &Repo) -> Result<Vec<ObjectName>> {
    let mut out = Vec::new();
    let objects = repo.objects_dir();
    for e in objects.sorted_entries()? {
        let Some(prefix) = e.name.to_str() else { continue };
        if prefix.len() != 2 || !prefix.bytes().all(repo_format::checksum::is_lower_hex) {
            continue;
        }
        let d = objects.open_dir(prefix)?;
        for f in d.sorted_entries()? {
            let Some(name) = f.name.to_str() else { continue };
            let Some((rest, ext)) = name.split_once('.') else { continue };
            let (Some(objtype), Ok(checksum)) =
                (ObjectType::from_extension(ext), Checksum::from_hex(&format!("{prefix}{rest}")))
            else {
                continue;
            };
            if ext == objtype.extension(repo.mode().is_archive()) {
                out.push((checksum, objtype));
            }
        }
    }
    Ok(out)
}

/// Checks one object; `Err` carries the reason it is corrupt.
fn check_object(repo: &Repo, checksum: &Checksum, objtype: ObjectType) -> Result<()> {
    if objtype == ObjectType::File {
        let mut content = repo.open_content(checksum)?;
        let header = content.header.clone();
        let actual = hash_reader(&header, &mut content.reader().take(u64::MAX))?;
        if actual != *checksum {
            anyhow::bail!("content hashes to {actual}");
        }
        return Ok(());
    }
    // read_metadata verifies the hash of every kind but detached metadata.
    let data = repo.read_metadata(checksum, objtype)?;
    match objtype {
        ObjectType::Commit => Commit::from_bytes(&data).map(drop)?,
        ObjectType::DirTree => DirTree::from_bytes(&data).map(drop)?,
        ObjectType::DirMeta => DirMeta::from_bytes(&data).map(drop)?,
        ObjectType::CommitMeta | ObjectType::TombstoneCommit => Metadata::from_bytes(&data).map(drop)?,
        ObjectType::File => {}
    }
    Ok(())
}

/// Runs fsck; with `delete_corrupt`, corrupt objects are removed and the
/// commits that needed them are marked partial so a pull fetches them again.
pub fn fsck(repo: &Repo, delete_corrupt: bool, progress: &dyn Progress) -> Result<FsckReport> {
    let objects = list_objects(repo)?;
    let mut report = FsckReport { objects_checked: objects.len() as u64, ..FsckReport::default() };
    progress.start("fsck", Unit::Objects, Some(objects.len() as u64));
    let done = AtomicU64::new(0);
    let mut corrupt: Vec<Problem> = objects
        .par_iter()
        .filter_map(|(c, t)| {
            let r = check_object(repo, c, *t);
            done.fetch_add(1, Ordering::Relaxed);
            progress.inc(1);
            r.err().map(|e| Problem { checksum: *c, objtype: t.name(), kind: "corrupt", reason: format!("{e:#}") })
        })
        .collect();
    progress.finish();
    corrupt.sort_by(|a, b| (a.objtype, a.checksum).cmp(&(b.objtype, b.checksum)));
    let bad: HashSet<ObjectName> =
        corrupt.iter().filter_map(|p| ObjectType::from_extension(p.objtype).map(|t| (p.checksum, t))).collect();

    // References: every commit's tree must be complete unless it is partial.
    let present: HashSet<ObjectName> = objects.iter().copied().collect();
    let mut missing = Vec::new();
    let mut damaged_commits = Vec::new();
    for (c, t) in &objects {
        if *t != ObjectType::Commit || bad.contains(&(*c, *t)) {
            continue;
        }
        report.commits_checked += 1;
        let partial = repo.is_commit_partial(c)?;
        if partial {
            report.partial_commits += 1;
        }
        let mut needed = HashSet::new();
        // Corrupt and missing dirtrees end their branch of the walk; both
        // are reported (corrupt above, missing below).
        commit_objects(repo, c, &mut needed, Walk::SkipUnreadable)?;
        let mut commit_damaged = false;
        for obj in &needed {
            if bad.contains(obj) {
                commit_damaged = true;
            } else if !present.contains(obj) && !partial {
                commit_damaged = true;
                missing.push(Problem {
                    checksum: obj.0,
                    objtype: obj.1.name(),
                    kind: "missing",
                    reason: format!("needed by commit {c}"),
                });
            }
        }
        if commit_damaged {
            damaged_commits.push(*c);
        }
    }
    missing.sort_by(|a, b| (a.objtype, a.checksum).cmp(&(b.objtype, b.checksum)));
    missing.dedup_by(|a, b| a.checksum == b.checksum && a.objtype == b.objtype);

    for (spec, c) in repo.list_refs()? {
        if !present.contains(&(c, ObjectType::Commit)) {
            report.problems.push(Problem {
                checksum: c,
                objtype: "commit",
                kind: "broken-ref",
                reason: format!("ref {spec} points at a missing commit"),
            });
        }
    }

    if delete_corrupt {
        for p in &corrupt {
            if let Some(t) = ObjectType::from_extension(p.objtype) {
                let path = repo.loose_path(&p.checksum, t);
                repo.objects_dir()
                    .unlink(&path)
                    .with_context(|| format!("deleting corrupt {}", repo.display_object(&p.checksum, t).display()))?;
                report.deleted += 1;
            }
        }
        for c in &damaged_commits {
            repo.mark_commit_partial(c, true)?;
        }
        repo.objects_dir().syncfs()?;
    }
    report.problems.extend(corrupt);
    report.problems.extend(missing);
    Ok(report)
}

impl Repo {
    /// True if `state/CSUM.commitpartial` exists (an unfinished pull).
    pub fn is_commit_partial(&self, c: &Checksum) -> Result<bool> {
        Ok(self.dir().stat_optional(format!("state/{c}.commitpartial"))?.is_some())
    }

    /// Sets or clears the partial marker of a commit.
    pub fn mark_commit_partial(&self, c: &Checksum, partial: bool) -> Result<()> {
        self.dir().ensure_dir("state", 0o755)?;
        let state = self.dir().open_dir("state")?;
        let name = format!("{c}.commitpartial");
        if partial {
            state.write_atomic(&name, b"", 0o644).with_context(|| format!("marking {c} partial"))
        } else {
            match state.unlink(&name) {
                Ok(()) => state.fsync().map_err(Into::into),
                Err(e) if crate::fsutil::is_not_found(&e) => Ok(()),
                Err(e) => Err(e).with_context(|| format!("clearing partial mark of {c}")),
            }
        }
    }
}
