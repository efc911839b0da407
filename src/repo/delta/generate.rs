//! `repo delta generate`: write a delta's parts and signed superblock.
//!
//! The new metadata objects go into part 0. The content list
//! ([`repo_format::delta::file_list`]) is cut into files parts of about
//! [`PART_TARGET`] bytes; each part is one zstd frame, compressed on its own
//! thread. A changed file whose old version (same path, or the same path
//! with its digits ignored, e.g. under a new kernel version directory) is
//! small enough becomes a zstd `--patch-from` frame when that is much
//! smaller than the file. Everything is written to a temporary directory,
//! synced, and renamed into `photon-deltas/ID` at once.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufWriter, Write};

use anyhow::{Context, Result, anyhow, bail};
use rayon::prelude::*;
use repo_format::delta::{
    self as fmt, Body, FileEntry, ListedFile, MetaEntry, PartInfo, PartKind, SignedSuperblock, Superblock,
};
use repo_format::sign::{self as sigfmt, SecretKey};
use repo_format::{Checksum, Commit, FileHeader, Hasher, Metadata, ObjectType, Value};

use super::super::Repo;
use super::super::traverse::{ObjectName, Walk, commit_objects};
use crate::fsutil::{self, Dir};
use crate::progress::{Progress, Unit};

/// Uncompressed bytes of entries per files part: big enough for a good
/// ratio, small enough that a from-empty delta has parts to fetch and
/// compress in parallel.
pub const PART_TARGET: u64 = 48 << 20;
/// Parts smaller than this are compressed on one thread.
const MT_MIN_PART: u64 = 2 << 20;
/// Part size of `--max`.
pub const MAX_PART_TARGET: u64 = 256 << 20;
/// Files smaller than this are not worth a patch.
const MIN_PATCH_FILE: u64 = 512;
/// Patch candidates up to this many bytes in all are patched at level 19.
const PATCH_LEVEL_19_BYTES: u64 = 64 << 20;
/// Default zstd level of deltas between two commits.
pub const UPDATE_LEVEL: i32 = 19;
/// Nominal level of deltas from nothing (first installs). They do not use
/// a stock level but [`tuned_from_empty`]: zstd's optimal parser (what
/// levels 16+ use, worth 3 % over level 12 on an OS tree) with a small
/// search, at about 2.5 times level 12's cost instead of 5 times.
pub const FROM_EMPTY_LEVEL: i32 = 16;
/// Level of `--max`.
pub const MAX_LEVEL: i32 = 19;
/// Default window (log2 bytes) of parts: what a reader must hold.
pub const DEFAULT_WINDOW_LOG: u32 = 24;

/// What to generate.
pub struct GenerateOptions {
    /// The commit the delta applies to; `None` for a delta from nothing.
    pub from: Option<Checksum>,
    /// The commit it yields.
    pub to: Checksum,
    /// The ref `to` was named by, recorded in the superblock.
    pub ref_name: Option<String>,
    /// zstd level; default [`UPDATE_LEVEL`] or [`FROM_EMPTY_LEVEL`].
    pub level: Option<i32>,
    /// Maximum compression: [`MAX_LEVEL`] with long-distance matching.
    pub max: bool,
    /// zstd window log of parts, at most [`fmt::MAX_WINDOW_LOG`].
    pub window_log: Option<u32>,
    /// Uncompressed bytes per files part [default: [`PART_TARGET`]].
    pub part_size: Option<u64>,
    /// Keys to sign the superblock with.
    pub sign_keys: Vec<SecretKey>,
    /// Creation time, seconds since the epoch.
    pub now: u64,
}

/// What a generation produced.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Generated {
    /// Delta id (`FROM-TO` or `TO`).
    pub id: String,
    /// SHA-256 of the superblock body, as the summary lists it.
    pub superblock_checksum: Checksum,
    /// Bytes of the superblock file.
    pub superblock_size: u64,
    /// Bytes of all parts.
    pub parts_size: u64,
    /// Number of parts.
    pub parts: usize,
    /// Metadata objects carried.
    pub metadata_objects: u64,
    /// Content objects carried.
    pub content_objects: u64,
    /// ... of which as patches.
    pub patched: u64,
    /// Uncompressed content bytes carried.
    pub content_bytes: u64,
    /// zstd level used.
    pub level: i32,
}

/// One content entry, planned.
struct Planned {
    listed: ListedFile,
    header: FileHeader,
    size: u64,
    patch: Option<(Checksum, Vec<u8>)>,
}

impl Planned {
    fn entry(&self) -> FileEntry {
        let body = match &self.patch {
            Some((source, p)) => Body::Patch { source: *source, len: p.len() as u64 },
            None => Body::Whole,
        };
        FileEntry { header: self.header.clone(), size: self.size, body }
    }

    fn stream_len(&self) -> u64 {
        let body = match &self.patch {
            Some((_, p)) => p.len() as u64,
            None => self.size,
        };
        self.entry().encode().len() as u64 + body
    }
}

/// Generates the delta into `repo/photon-deltas/ID`, replacing one that
/// exists.
pub fn generate(repo: &Repo, opts: &GenerateOptions, progress: &dyn Progress) -> Result<Generated> {
    let id = fmt::delta_id(opts.from.as_ref(), &opts.to);
    repo.dir().ensure_dir(fmt::DELTAS_DIR, 0o755)?;
    let deltas = repo.dir().open_dir(fmt::DELTAS_DIR)?;
    let tmp = deltas.temp_name("new")?;
    deltas.create_dir(&tmp, 0o755)?;
    let out = deltas.open_dir(&tmp)?;
    let generated = match generate_into(repo, opts, &out, progress) {
        Ok(g) => g,
        Err(e) => {
            let _ = deltas.remove_all(&tmp);
            return Err(e);
        }
    };
    out.fsync()?;
    drop(out);
    // Replace an existing delta: swap it out, then remove it.
    if deltas.stat_optional(&id)?.is_some() {
        deltas.exchange(&tmp, &deltas, &id)?;
        deltas.fsync()?;
        deltas.remove_all(&tmp)?;
    } else {
        deltas.rename(&tmp, &deltas, &id)?;
    }
    deltas.fsync()?;
    Ok(generated)
}

/// Writes the superblock (`superblock`) and parts (`part-N`) into `out`.
pub fn generate_into(repo: &Repo, opts: &GenerateOptions, out: &Dir, progress: &dyn Progress) -> Result<Generated> {
    let commit_bytes = repo.read_metadata(&opts.to, ObjectType::Commit)?;
    let commit = Commit::from_bytes(&commit_bytes).with_context(|| format!("commit {}", opts.to))?;
    if repo.is_commit_partial(&opts.to)? {
        bail!("commit {} is partial in this repository (an interrupted pull); pull it completely first", opts.to);
    }
    let commitmeta = repo.read_metadata_optional(&opts.to, ObjectType::CommitMeta)?.unwrap_or_default();

    // What `from` has.
    let mut have: HashSet<ObjectName> = HashSet::new();
    if let Some(from) = &opts.from {
        if *from == opts.to {
            bail!("--from and --to are the same commit {from}");
        }
        if repo.is_commit_partial(from)? {
            bail!("commit {from} is partial in this repository; pull it completely first");
        }
        commit_objects(repo, from, &mut have, Walk::Strict)
            .with_context(|| format!("the from commit {from} must be complete in this repository"))?;
    }
    let of_type = |t| have.iter().filter(|(_, ty)| *ty == t).map(|(c, _)| *c).collect::<HashSet<_>>();
    let (have_trees, have_metas, have_files) =
        (of_type(ObjectType::DirTree), of_type(ObjectType::DirMeta), of_type(ObjectType::File));

    progress.start("planning", Unit::Objects, None);
    let metas = new_metadata(repo, &commit, &have_trees, &have_metas)?;
    let list = fmt::file_list(&commit.root_tree, &have_trees, &have_files, |c| repo.load_dirtree(c))?;
    let headers: Vec<(FileHeader, u64)> =
        list.par_iter().map(|l| repo.open_content(&l.checksum).map(|c| (c.header, c.size))).collect::<Result<_>>()?;
    progress.finish();

    let max = opts.max;
    let level = match (opts.level, max) {
        (Some(l), _) => l,
        (None, true) => MAX_LEVEL,
        (None, false) if opts.from.is_some() => UPDATE_LEVEL,
        (None, false) => FROM_EMPTY_LEVEL,
    };
    let range = zstd::compression_level_range();
    let (lo, hi) = (*range.start(), *range.end());
    if !range.contains(&level) {
        bail!("--level {level} is out of zstd's range {lo}..={hi}");
    }
    let window_log = opts.window_log.unwrap_or(if max { fmt::MAX_WINDOW_LOG } else { DEFAULT_WINDOW_LOG });
    if !(10..=fmt::MAX_WINDOW_LOG).contains(&window_log) {
        bail!("--window-log {window_log} is out of range 10..={}", fmt::MAX_WINDOW_LOG);
    }

    // Patches, in parallel.
    let sources = match &opts.from {
        Some(from) => PatchSources::of(repo, from)?,
        None => PatchSources::default(),
    };
    let candidates: Vec<usize> = (0..list.len())
        .filter(|&i| {
            let (h, size) = &headers[i];
            !h.is_symlink()
                && (MIN_PATCH_FILE..=fmt::MAX_PATCH_FILE).contains(size)
                && sources.find(&list[i].path).is_some()
        })
        .collect();
    // Level 19 costs about 1 s per 4 MB of patched files on one core; a
    // big update (a kernel's modules) patches at level 12 instead, which
    // finds the same matches against the old version almost as well.
    let candidate_bytes: u64 = candidates.iter().map(|&i| headers[i].1).sum();
    let patch_level = if candidate_bytes <= PATCH_LEVEL_19_BYTES { level.min(UPDATE_LEVEL) } else { level.min(12) };
    progress.start("patching", Unit::Objects, Some(candidates.len() as u64));
    let patches: Vec<(usize, Checksum, Vec<u8>)> = candidates
        .par_iter()
        .map(|&i| {
            let r = sources.find(&list[i].path).map_or(Ok(None), |src| {
                make_patch(repo, src, &list[i].checksum, headers[i].1, patch_level).map(|p| p.map(|p| (i, *src, p)))
            });
            progress.inc(1);
            r
        })
        .filter_map(Result::transpose)
        .collect::<Result<_>>()?;
    progress.finish();
    let mut patch_of: HashMap<usize, (Checksum, Vec<u8>)> = patches.into_iter().map(|(i, s, p)| (i, (s, p))).collect();
    let planned: Vec<Planned> = list
        .into_iter()
        .zip(headers)
        .enumerate()
        .map(|(i, (listed, (header, size)))| Planned { listed, header, size, patch: patch_of.remove(&i) })
        .collect();

    // Cut into parts.
    // --max trades parallelism for ratio: few, long parts (measured: 48 MiB
    // parts cost 1 MB on a 165 MB delta at level 19).
    let part_target = opts.part_size.unwrap_or(if max { MAX_PART_TARGET } else { PART_TARGET }).max(1 << 20);
    let mut ranges: Vec<(usize, usize, u64)> = Vec::new();
    let (mut start, mut acc) = (0usize, 0u64);
    for (i, p) in planned.iter().enumerate() {
        let len = p.stream_len();
        if acc > 0 && acc + len > part_target {
            ranges.push((start, i, acc));
            (start, acc) = (i, 0);
        }
        acc += len;
    }
    if start < planned.len() {
        ranges.push((start, planned.len(), acc));
    }

    let total: u64 = ranges.iter().map(|r| r.2).sum::<u64>();
    progress.start("compressing", Unit::Bytes, Some(total));
    let tuned = opts.from.is_none() && opts.level.is_none() && !max;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = u32::try_from((cores / ranges.len().max(1)).clamp(1, 4)).unwrap_or(1);
    let settings = Compression { level, window_log, long: max, tuned, workers };
    let mut parts: Vec<PartInfo> = Vec::new();
    if !metas.is_empty() {
        parts.push(write_meta_part(repo, &metas, out, settings)?);
    }
    let first_files = parts.len();
    let files_parts: Vec<PartInfo> = ranges
        .par_iter()
        .enumerate()
        .map(|(n, &(a, b, len))| {
            write_files_part(repo, &planned[a..b], a as u64, len, out, first_files + n, settings, progress)
        })
        .collect::<Result<_>>()?;
    parts.extend(files_parts);
    progress.finish();

    let mut metadata = Metadata::new();
    if let Some(r) = &opts.ref_name {
        metadata.insert(fmt::META_REF, Value::new_str(r));
    }
    let superblock = Superblock {
        metadata,
        timestamp: opts.now,
        from: opts.from,
        to: opts.to,
        commit: commit_bytes,
        commitmeta,
        file_count: planned.len() as u64,
        file_list_digest: fmt::list_digest(planned.iter().map(|p| &p.listed.checksum)),
        parts,
    };
    let body = superblock.to_bytes();
    // What we wrote must read back: the same rules the reader applies.
    Superblock::from_bytes(&body).context("the generated superblock does not validate (a bug)")?;
    let mut signatures = Metadata::new();
    for k in &opts.sign_keys {
        sigfmt::add_signature(&mut signatures, &k.sign(&body))?;
    }
    let signed = SignedSuperblock { body, signatures };
    let file = signed.to_bytes();
    out.write_atomic(fmt::SUPERBLOCK_FILE, &file, 0o644)?;

    Ok(Generated {
        id: fmt::delta_id(opts.from.as_ref(), &opts.to),
        superblock_checksum: signed.body_checksum(),
        superblock_size: file.len() as u64,
        parts_size: superblock.parts_size(),
        parts: superblock.parts.len(),
        metadata_objects: metas.len() as u64,
        content_objects: planned.len() as u64,
        patched: planned.iter().filter(|p| p.patch.is_some()).count() as u64,
        content_bytes: planned.iter().map(|p| p.size).sum(),
        level,
    })
}

/// Name of part `n` in a delta's directory.
pub fn part_file(n: usize) -> String {
    format!("part-{n}")
}

/// Dirtrees and dirmetas of `commit` that `from` lacks, depth first.
fn new_metadata(
    repo: &Repo,
    commit: &Commit,
    have_trees: &HashSet<Checksum>,
    have_metas: &HashSet<Checksum>,
) -> Result<Vec<(ObjectType, Checksum)>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![(commit.root_tree, commit.root_meta)];
    while let Some((tree, meta)) = stack.pop() {
        if !have_metas.contains(&meta) && seen.insert((meta, ObjectType::DirMeta)) {
            out.push((ObjectType::DirMeta, meta));
        }
        if have_trees.contains(&tree) || !seen.insert((tree, ObjectType::DirTree)) {
            continue;
        }
        out.push((ObjectType::DirTree, tree));
        let t = repo.load_dirtree(&tree)?;
        stack.extend(t.dirs().iter().rev().map(|d| (d.tree, d.meta)));
    }
    Ok(out)
}

/// Old versions of files, by path and by path with digits ignored.
#[derive(Default)]
struct PatchSources {
    by_path: HashMap<String, Checksum>,
    by_shape: HashMap<String, Checksum>,
}

/// `path` with every run of digits replaced by `#`: `modules/6.1.0-13/x`
/// and `modules/6.1.0-15/x` have the same shape.
fn shape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_digits = false;
    for ch in path.chars() {
        if ch.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(ch);
            in_digits = false;
        }
    }
    out
}

impl PatchSources {
    fn of(repo: &Repo, from: &Checksum) -> Result<PatchSources> {
        let commit = repo.load_commit(from)?;
        let mut s = PatchSources::default();
        // Every path of an object is a source (a content list has each once).
        let mut stack = vec![(commit.root_tree, String::new())];
        while let Some((tree, path)) = stack.pop() {
            let t = repo.load_dirtree(&tree)?;
            for f in t.files() {
                let p = format!("{path}/{}", f.name.as_str());
                s.by_shape.entry(shape(&p)).or_insert(f.checksum);
                s.by_path.insert(p, f.checksum);
            }
            stack.extend(t.dirs().iter().map(|d| (d.tree, format!("{path}/{}", d.name.as_str()))));
        }
        Ok(s)
    }

    fn find(&self, path: &str) -> Option<&Checksum> {
        self.by_path.get(path).or_else(|| self.by_shape.get(&shape(path)))
    }
}

fn read_all(repo: &Repo, c: &Checksum, limit: u64) -> Result<Option<Vec<u8>>> {
    let mut content = repo.open_content(c)?;
    if content.header.is_symlink() || content.size > limit {
        return Ok(None);
    }
    let mut buf = Vec::with_capacity(content.size as usize);
    content.reader().read_to_end(&mut buf).with_context(|| format!("reading content object {c}"))?;
    Ok(Some(buf))
}

/// A patch that rebuilds `target` from `source`, if much smaller than
/// `target` compressed alone.
fn make_patch(repo: &Repo, source: &Checksum, target: &Checksum, size: u64, level: i32) -> Result<Option<Vec<u8>>> {
    if source == target {
        return Ok(None);
    }
    let Some(old) = read_all(repo, source, fmt::MAX_PATCH_FILE)? else { return Ok(None) };
    let Some(new) = read_all(repo, target, fmt::MAX_PATCH_FILE)? else { return Ok(None) };
    if new.len() as u64 != size || old.is_empty() {
        return Ok(None);
    }
    let window_log = window_for(old.len() as u64 + new.len() as u64);
    let patch = {
        let mut enc = zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), level, &old)?;
        enc.window_log(window_log)?;
        enc.include_contentsize(true)?;
        enc.set_pledged_src_size(Some(size))?;
        enc.include_checksum(false)?;
        enc.write_all(&new)?;
        enc.finish()?
    };
    // Clearly similar: no need to compare.
    if patch.len() as u64 * 8 < size {
        return Ok(Some(patch));
    }
    let alone = zstd::bulk::compress(&new, level)?;
    Ok((patch.len() * 10 < alone.len() * 8).then_some(patch))
}

/// The smallest window covering `len` bytes (at least 2^10).
fn window_for(len: u64) -> u32 {
    (64 - len.max(1024).saturating_sub(1).leading_zeros()).min(fmt::MAX_WINDOW_LOG)
}

#[derive(Clone, Copy)]
struct Compression {
    level: i32,
    window_log: u32,
    long: bool,
    /// Use [`tuned_from_empty`] instead of the level's parameters.
    tuned: bool,
    /// zstd worker threads for one part (when parts are fewer than cores):
    /// jobs overlap by a whole window, so the frame is as small as with one.
    workers: u32,
}

/// The from-empty parameters: btopt with chain 2^21, hash 2^20, search
/// depth 2^2, matches from 3 bytes, target length 32. Measured on corpus
/// v2 (README, "Deltas"): within 1 % of level 16's size at half its time,
/// and 2.5 % smaller than level 12. Memory: window plus about 12 MiB.
fn tuned_from_empty(enc: &mut PartWriter) -> io::Result<()> {
    use zstd::zstd_safe::{CParameter, Strategy};
    for p in [
        CParameter::Strategy(Strategy::ZSTD_btopt),
        CParameter::ChainLog(21),
        CParameter::HashLog(20),
        CParameter::SearchLog(2),
        CParameter::MinMatch(3),
        CParameter::TargetLength(32),
    ] {
        enc.set_parameter(p)?;
    }
    Ok(())
}

/// Hashes and counts what passes through to a file.
struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    len: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type PartWriter = zstd::stream::write::Encoder<'static, HashingWriter<BufWriter<std::fs::File>>>;

fn open_part(out: &Dir, n: usize, uncompressed: u64, c: Compression) -> Result<(PartWriter, String)> {
    let (file, tmp) = out.create_temp(&format!("p{n}"))?;
    let w = HashingWriter { inner: BufWriter::with_capacity(1 << 20, file), hasher: Hasher::new(), len: 0 };
    let mut enc = zstd::stream::write::Encoder::new(w, c.level)?;
    enc.window_log(c.window_log.min(window_for(uncompressed)))?;
    enc.include_contentsize(true)?;
    enc.set_pledged_src_size(Some(uncompressed))?;
    enc.include_checksum(false)?;
    if c.tuned {
        tuned_from_empty(&mut enc)?;
    }
    if c.long {
        enc.long_distance_matching(true)?;
    }
    if c.workers > 1 && uncompressed >= MT_MIN_PART {
        use zstd::zstd_safe::CParameter;
        enc.multithread(c.workers)?;
        let job = uncompressed.div_ceil(u64::from(c.workers)).max(MT_MIN_PART / 2);
        enc.set_parameter(CParameter::JobSize(u32::try_from(job).unwrap_or(u32::MAX)))?;
        enc.set_parameter(CParameter::OverlapSizeLog(9))?;
    }
    Ok((enc, tmp))
}

#[allow(clippy::too_many_arguments)]
fn close_part(
    enc: PartWriter,
    tmp: &str,
    out: &Dir,
    n: usize,
    kind: PartKind,
    uncompressed: u64,
    first: u64,
    count: u64,
) -> Result<PartInfo> {
    let w = enc.finish()?;
    let HashingWriter { inner, hasher, len } = w;
    let file = inner.into_inner().map_err(|e| e.into_error())?;
    fsutil::fd_chmod(&file, 0o644)?;
    file.sync_all()?;
    out.rename(tmp, out, part_file(n))?;
    Ok(PartInfo { kind, checksum: hasher.finish(), size: len, uncompressed, first, count })
}

fn write_meta_part(repo: &Repo, metas: &[(ObjectType, Checksum)], out: &Dir, c: Compression) -> Result<PartInfo> {
    let objects: Vec<Vec<u8>> = metas.iter().map(|(t, id)| repo.read_metadata(id, *t)).collect::<Result<_>>()?;
    let uncompressed: u64 = objects.iter().map(|o| fmt::MIN_ENTRY_BYTES + o.len() as u64).sum();
    let (mut enc, tmp) = open_part(out, 0, uncompressed, c)?;
    for ((t, id), data) in metas.iter().zip(&objects) {
        let len = u32::try_from(data.len()).map_err(|_| anyhow!("{t} {id} is too large for a delta"))?;
        enc.write_all(&MetaEntry { objtype: *t, checksum: *id, len }.encode())?;
        enc.write_all(data)?;
    }
    close_part(enc, &tmp, out, 0, PartKind::Metadata, uncompressed, 0, metas.len() as u64)
}

#[allow(clippy::too_many_arguments)]
fn write_files_part(
    repo: &Repo,
    planned: &[Planned],
    first: u64,
    uncompressed: u64,
    out: &Dir,
    n: usize,
    c: Compression,
    progress: &dyn Progress,
) -> Result<PartInfo> {
    let (mut enc, tmp) = open_part(out, n, uncompressed, c)?;
    let mut written = 0u64;
    for p in planned {
        let head = p.entry().encode();
        enc.write_all(&head)?;
        written += head.len() as u64;
        match &p.patch {
            Some((_, patch)) => {
                enc.write_all(patch)?;
                written += patch.len() as u64;
            }
            None => {
                let mut content = repo.open_content(&p.listed.checksum)?;
                let copied = io::copy(content.reader(), &mut enc)
                    .with_context(|| format!("reading content object {}", p.listed.checksum))?;
                if copied != p.size {
                    bail!("content object {} changed while the delta was made", p.listed.checksum);
                }
                written += copied;
            }
        }
        progress.inc(p.stream_len());
    }
    if written != uncompressed {
        bail!("part {n} came out at {written} bytes, not the {uncompressed} planned (a bug)");
    }
    close_part(enc, &tmp, out, n, PartKind::Files, uncompressed, first, planned.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_windows() {
        assert_eq!(
            shape("/usr/lib/modules/6.1.0-13-amd64/kernel/ext4.ko"),
            "/usr/lib/modules/#.#.#-#-amd#/kernel/ext#.ko"
        );
        assert_eq!(window_for(1), 10);
        assert_eq!(window_for(1 << 20), 20);
        assert_eq!(window_for((1 << 20) + 1), 21);
        assert_eq!(window_for(u64::MAX), fmt::MAX_WINDOW_LOG);
    }
}
