//! Copying commits between local repositories (`install` seeds a new
//! sysroot's repository from a build repository), re-verifying every
//! object on the way: nothing unverified enters the destination.

use std::collections::HashSet;

use anyhow::{Context, Result, bail};
use repo_format::{Checksum, ObjectType};

use super::Repo;
use super::traverse::{Walk, commit_objects};
use crate::progress::{Progress, Unit};

/// Room kept free in the destination beyond the objects themselves.
const REPO_MARGIN: u64 = 1 << 20;

/// Copies `commit` (its tree and detached metadata) from `src` into `dst`.
pub fn copy_commit(src: &Repo, dst: &Repo, commit: &Checksum, progress: &dyn Progress) -> Result<u64> {
    let mut objects = HashSet::new();
    commit_objects(src, commit, &mut objects, Walk::Strict)?;
    // Space before work: what the missing objects take, rounded to blocks.
    let mut need = 0u64;
    for (c, t) in &objects {
        if dst.has_object(c, *t)? {
            continue;
        }
        let size = if *t == ObjectType::File {
            src.open_content(c)?.size
        } else {
            src.read_metadata(c, *t).map(|d| d.len() as u64).unwrap_or(0)
        };
        need += size.div_ceil(4096) * 4096;
    }
    let space = dst.objects_dir().space()?;
    if space.available < need + REPO_MARGIN {
        bail!(
            "not enough space in {}: commit {commit} needs {} MiB, {} MiB are free; free space (e.g. `repo prune --refs-only`) and retry",
            dst.path().display(),
            (need + REPO_MARGIN).div_ceil(1 << 20),
            space.available / (1 << 20)
        );
    }
    let txn = dst.begin()?;
    progress.start("copying", Unit::Objects, Some(objects.len() as u64));
    let mut copied = 0;
    for (c, t) in &objects {
        progress.inc(1);
        if txn.has(c, *t)? && *t != ObjectType::CommitMeta {
            continue;
        }
        copied += 1;
        match t {
            ObjectType::File => {
                let mut content = src.open_content(c)?;
                let header = content.header.clone();
                let size = content.size;
                txn.write_content(&header, content.reader(), size, Some(c))
                    .with_context(|| format!("copying content object {c}"))?;
            }
            ObjectType::CommitMeta => {
                if let Some(m) = src.load_detached_metadata(c)? {
                    txn.write_detached_metadata(c, &m)?;
                }
            }
            _ => {
                let data = src.read_metadata(c, *t)?;
                txn.write_metadata_verified(*t, c, &data)?;
            }
        }
    }
    progress.finish();
    txn.commit()?;
    Ok(copied)
}
