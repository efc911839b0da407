//! Photon deltas in a repository: generating, listing, verifying and
//! applying them, and single-file bundles (format: `repo-format`'s
//! `delta` module, SPEC.md §11).
//!
//! A delta lives in `photon-deltas/ID/` as `superblock` and `part-N`
//! files; `repo summary --update` lists each with the SHA-256 of its
//! superblock body, so a client that trusts the summary trusts the
//! superblock by that hash, and the superblock's own signatures make it
//! trustworthy on its own (bundles, unsigned summaries).

pub mod apply;
pub mod bundle;
pub mod generate;

use std::io::Read;

use anyhow::{Context, Result, bail};
use repo_format::delta::{self as fmt, SignedSuperblock, Superblock};
use repo_format::sign as sigfmt;
use repo_format::{Checksum, Commit};

use super::Repo;
use crate::sign::TrustStore;

/// A delta stored in a repository.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaInfo {
    /// `FROM-TO` or `TO`.
    pub id: String,
    /// The commit it applies to.
    pub from: Option<Checksum>,
    /// The commit it yields.
    pub to: Checksum,
    /// SHA-256 of the superblock body.
    pub superblock_checksum: Checksum,
    /// Bytes of all parts.
    pub parts_size: u64,
    /// Number of parts.
    pub parts: usize,
    /// Content objects it carries.
    pub content_objects: u64,
    /// Signatures on the superblock.
    pub signatures: usize,
    /// When it was made.
    pub timestamp: u64,
    /// The ref it was made for, if recorded.
    #[serde(rename = "ref")]
    pub ref_name: Option<String>,
    /// `to`'s version string.
    pub version: Option<String>,
}

impl DeltaInfo {
    /// Summarizes a parsed superblock.
    pub fn of(signed: &SignedSuperblock, sb: &Superblock) -> DeltaInfo {
        DeltaInfo {
            id: fmt::delta_id(sb.from.as_ref(), &sb.to),
            from: sb.from,
            to: sb.to,
            superblock_checksum: signed.body_checksum(),
            parts_size: sb.parts_size(),
            parts: sb.parts.len(),
            content_objects: sb.file_count,
            signatures: sigfmt::signatures(&signed.signatures).map_or(0, |s| s.len()),
            timestamp: sb.timestamp,
            ref_name: sb.ref_name(),
            version: Commit::from_bytes(&sb.commit).ok().and_then(|c| c.version()),
        }
    }
}

/// Parses a superblock file and, with `trust`, checks its signatures; with
/// `expected`, checks its body against the hash a signed summary listed.
/// `what` names it in errors.
pub fn open_superblock(
    raw: &[u8],
    trust: Option<&TrustStore>,
    expected: Option<&Checksum>,
    what: &str,
) -> Result<(SignedSuperblock, Superblock)> {
    let signed = SignedSuperblock::from_bytes(raw).with_context(|| format!("{what} is malformed"))?;
    if let Some(e) = expected {
        let actual = signed.body_checksum();
        if actual != *e {
            bail!("{what} does not match the summary (SHA-256 {actual}, the summary says {e}); refusing it");
        }
    }
    if let Some(trust) = trust {
        let sigs = sigfmt::signatures(&signed.signatures).with_context(|| format!("{what} signatures"))?;
        trust.check(what, &signed.body, &sigs)?;
    }
    let sb = Superblock::from_bytes(&signed.body).with_context(|| format!("{what} is malformed"))?;
    Ok((signed, sb))
}

/// The deltas stored in `repo`, sorted by id. Unreadable ones are errors.
pub fn list(repo: &Repo) -> Result<Vec<DeltaInfo>> {
    let Some(dir) = repo.dir().open_dir_optional(fmt::DELTAS_DIR)? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for e in dir.sorted_entries()? {
        let Some(name) = e.name.to_str() else { continue };
        if fmt::parse_delta_id(name).is_none() {
            continue;
        }
        out.push(load(repo, name)?.0);
    }
    Ok(out)
}

/// Reads stored delta `id` (no signature check: it is our own).
pub fn load(repo: &Repo, id: &str) -> Result<(DeltaInfo, SignedSuperblock, Superblock)> {
    if fmt::parse_delta_id(id).is_none() {
        bail!("{id:?} is not a delta id (FROM-TO or TO, full checksums); see `repo delta list`");
    }
    let path = format!("{}/{id}/{}", fmt::DELTAS_DIR, fmt::SUPERBLOCK_FILE);
    let raw = match repo.dir().open_file_optional(&path)? {
        Some(mut f) => {
            let mut v = Vec::new();
            (&mut f).take(fmt::MAX_SUPERBLOCK_SIZE as u64 + 1).read_to_end(&mut v)?;
            v
        }
        None => bail!("no delta {id} in {}; see `repo delta list`", repo.path().display()),
    };
    let (signed, sb) = open_superblock(&raw, None, None, &format!("delta {id} superblock"))?;
    if fmt::delta_id(sb.from.as_ref(), &sb.to) != id {
        bail!("delta {id}: its superblock is for {}", fmt::delta_id(sb.from.as_ref(), &sb.to));
    }
    Ok((DeltaInfo::of(&signed, &sb), signed, sb))
}

/// Deletes stored delta `id` (renamed away first, so a reader never sees
/// half a delta). `repo summary --update` then stops listing it.
pub fn delete(repo: &Repo, id: &str) -> Result<()> {
    if fmt::parse_delta_id(id).is_none() {
        bail!("{id:?} is not a delta id (FROM-TO or TO, full checksums); see `repo delta list`");
    }
    let Some(dir) = repo.dir().open_dir_optional(fmt::DELTAS_DIR)? else {
        bail!("no delta {id} in {}; see `repo delta list`", repo.path().display());
    };
    if dir.stat_optional(id)?.is_none() {
        bail!("no delta {id} in {}; see `repo delta list`", repo.path().display());
    }
    let tmp = dir.temp_name("old")?;
    dir.rename(id, &dir, &tmp)?;
    dir.fsync()?;
    dir.remove_all(&tmp)?;
    Ok(())
}
