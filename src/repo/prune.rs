//! `repo prune`: delete what no kept commit needs.
//!
//! As `ostree prune`: by default every commit object in the repository is
//! kept (with its tree) and only objects no commit needs are deleted;
//! `--refs-only` keeps only what refs reach (to `--depth` parents), and
//! `--keep-younger-than` keeps, per ref, the history newer than a date.
//! Commits are deleted before the trees and files under them, so a crash
//! midway leaves only unreferenced objects, never a commit with holes.

use std::collections::HashSet;

use anyhow::{Context, Result};
use repo_format::{Checksum, ObjectType};

use super::Repo;
use super::fsck::list_objects;
use super::traverse::{ObjectName, Walk, commit_objects, history};

/// What to keep.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Keep only what refs reach.
    pub refs_only: bool,
    /// Parents to keep behind each ref (`None`: all).
    pub depth: Option<usize>,
    /// Keep, behind each ref, commits at or after this time (seconds since
    /// the epoch); implies `refs_only`, as in OSTree.
    pub keep_younger_than: Option<u64>,
    /// Report only.
    pub dry_run: bool,
}

/// What prune did (or would do).
#[derive(Debug, Default, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    /// Objects in the repository before.
    pub objects_total: u64,
    /// Objects deleted (or that would be).
    pub objects_pruned: u64,
    /// Bytes freed (or that would be), by file size.
    pub bytes_freed: u64,
    /// Commits deleted.
    pub commits_pruned: Vec<Checksum>,
    /// Deltas deleted because their `to` commit went (as `ostree prune` does).
    pub deltas_pruned: Vec<String>,
    /// True if nothing was deleted because of `--dry-run`.
    pub dry_run: bool,
}

/// Runs prune.
pub fn prune(repo: &Repo, opts: &PruneOptions) -> Result<PruneReport> {
    let objects = list_objects(repo)?;
    let mut keep: HashSet<ObjectName> = HashSet::new();
    let refs_only = opts.refs_only || opts.keep_younger_than.is_some();
    for (_spec, c) in repo.list_refs()? {
        if !repo.has_commit(&c)? {
            continue;
        }
        let commits = match opts.keep_younger_than {
            Some(cutoff) => {
                let mut kept = vec![c];
                for h in history(repo, &c, None)?.into_iter().skip(1) {
                    if repo.load_commit(&h)?.timestamp < cutoff {
                        break;
                    }
                    kept.push(h);
                }
                kept
            }
            None => history(repo, &c, opts.depth)?,
        };
        for h in commits {
            commit_objects(repo, &h, &mut keep, Walk::SkipMissing)?;
        }
    }
    if !refs_only {
        for (c, t) in &objects {
            if *t == ObjectType::Commit && !keep.contains(&(*c, *t)) {
                commit_objects(repo, c, &mut keep, Walk::SkipMissing)?;
            }
        }
    }
    // Detached metadata lives and dies with its commit.
    let kept_commits: Vec<Checksum> = keep.iter().filter(|(_, t)| *t == ObjectType::Commit).map(|(c, _)| *c).collect();
    for c in kept_commits {
        keep.insert((c, ObjectType::CommitMeta));
    }

    let mut doomed: Vec<ObjectName> = objects.iter().filter(|o| !keep.contains(o)).copied().collect();
    // Commits first, then what hangs below them (see the module comment).
    let order = |t: ObjectType| match t {
        ObjectType::Commit => 0,
        ObjectType::CommitMeta | ObjectType::TombstoneCommit => 1,
        ObjectType::DirTree | ObjectType::DirMeta => 2,
        ObjectType::File => 3,
    };
    doomed.sort_by_key(|(c, t)| (order(*t), *c));
    // Detached metadata is part of its commit, not an object of its own
    // (OSTree's counts leave it out too).
    let counted = |t: ObjectType| t != ObjectType::CommitMeta;
    let mut report = PruneReport {
        objects_total: objects.iter().filter(|(_, t)| counted(*t)).count() as u64,
        dry_run: opts.dry_run,
        ..PruneReport::default()
    };
    let dir = repo.objects_dir();
    for (c, t) in &doomed {
        let path = repo.loose_path(c, *t);
        report.bytes_freed += dir.stat_optional(&path)?.map_or(0, |st| st.st_size as u64);
        if counted(*t) {
            report.objects_pruned += 1;
        }
        if *t == ObjectType::Commit {
            report.commits_pruned.push(*c);
        }
        if !opts.dry_run {
            match dir.unlink(&path) {
                Ok(()) => {}
                Err(e) if crate::fsutil::is_not_found(&e) => {}
                Err(e) => return Err(e).with_context(|| format!("deleting {}", repo.display_object(c, *t).display())),
            }
            if *t == ObjectType::Commit {
                repo.mark_commit_partial(c, false)?;
            }
        }
    }
    if !opts.dry_run && !doomed.is_empty() {
        dir.syncfs().context("syncing after prune")?;
    }
    let gone: HashSet<&Checksum> = report.commits_pruned.iter().collect();
    for d in super::delta::list(repo)? {
        if gone.contains(&d.to) {
            if !opts.dry_run {
                super::delta::delete(repo, &d.id)?;
            }
            report.deltas_pruned.push(d.id);
        }
    }
    Ok(report)
}
