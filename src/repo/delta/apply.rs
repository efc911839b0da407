//! Applying a delta: parts in, verified objects out.
//!
//! Used by `pull` (parts downloaded from a remote) and by bundles (parts
//! read from one file), so both go through the same checks: the
//! superblock's signature ([`super::open_superblock`]), each part's
//! SHA-256 and size before it is read, every metadata object's id, and for
//! every content object the id at its position in the content list, which
//! the reader computes itself from `from` and the new dirtrees. Memory is
//! bounded: parts are streamed, zstd windows are capped at
//! [`fmt::MAX_WINDOW_LOG`], and a patch holds at most two files of
//! [`fmt::MAX_PATCH_FILE`] bytes.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufReader, Read};

use anyhow::{Context, Result, anyhow, bail};
use repo_format::delta::{self as fmt, Body, EntryError, FileEntry, MetaEntry, PartInfo, PartKind, Superblock};
use repo_format::{Checksum, Commit, DirMeta, DirTree, ObjectType};

use super::super::Repo;
use super::super::traverse::{ObjectName, Walk, commit_objects};
use super::super::write::{ChecksumMismatch, Transaction};

/// Counts of what an apply wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct Applied {
    /// Metadata objects read.
    pub metadata_objects: u64,
    /// Content objects read.
    pub content_objects: u64,
}

/// Applies one delta's parts into a transaction.
pub struct Applier<'t, 'r> {
    txn: &'t Transaction<'r>,
    sb: &'t Superblock,
    id: String,
    /// Largest content object accepted.
    max_object: u64,
    /// Dirtrees from the metadata part (not readable from the repository
    /// until the transaction commits).
    trees: HashMap<Checksum, DirTree>,
    have_trees: HashSet<Checksum>,
    have_files: HashSet<Checksum>,
    list: Option<Vec<Checksum>>,
    /// Counts.
    pub applied: Applied,
}

/// The name a part is shown by in errors.
pub fn part_label(id: &str, n: usize) -> String {
    format!("part {n} of delta {id}")
}

impl<'t, 'r> Applier<'t, 'r> {
    /// Checks that the delta fits this repository: its `from` commit is
    /// here and complete. Writes the `to` commit and its detached metadata.
    pub fn new(txn: &'t Transaction<'r>, sb: &'t Superblock, max_object: u64) -> Result<Applier<'t, 'r>> {
        let repo: &Repo = txn.repo();
        let id = fmt::delta_id(sb.from.as_ref(), &sb.to);
        let mut have: HashSet<ObjectName> = HashSet::new();
        if let Some(from) = &sb.from {
            if !repo.has_commit(from)? || repo.is_commit_partial(from)? {
                bail!("delta {id} applies to commit {from}, which this repository does not have complete");
            }
            commit_objects(repo, from, &mut have, Walk::Strict)
                .with_context(|| format!("delta {id} needs commit {from} complete in this repository"))?;
        }
        let of_type = |t| have.iter().filter(|(_, ty)| *ty == t).map(|(c, _)| *c).collect::<HashSet<_>>();
        let (have_trees, have_files) = (of_type(ObjectType::DirTree), of_type(ObjectType::File));
        txn.write_metadata_verified(ObjectType::Commit, &sb.to, &sb.commit)?;
        if !sb.commitmeta.is_empty() {
            let meta = repo_format::Metadata::from_bytes_as("commitmeta", &sb.commitmeta)?;
            txn.write_detached_metadata(&sb.to, &meta)?;
        }
        Ok(Applier {
            txn,
            sb,
            id,
            max_object,
            trees: HashMap::new(),
            have_trees,
            have_files,
            list: None,
            applied: Applied::default(),
        })
    }

    /// Checks a part file's size and SHA-256 against the superblock.
    pub fn check_part(&self, n: usize, r: &mut dyn Read) -> Result<()> {
        let info = self.info(n)?;
        let mut hasher =
            HashReader { inner: r.take(info.size.saturating_add(1)), hasher: repo_format::Hasher::new(), len: 0 };
        io::copy(&mut hasher, &mut io::sink()).with_context(|| format!("reading {}", part_label(&self.id, n)))?;
        let (len, sum) = (hasher.len, hasher.hasher.finish());
        if len != info.size {
            bail!("{} is {len} bytes, the signed superblock says {}; refusing it", part_label(&self.id, n), info.size);
        }
        if sum != info.checksum {
            bail!(
                "{} is corrupt: its SHA-256 is {sum}, the signed superblock says {}; refusing it",
                part_label(&self.id, n),
                info.checksum
            );
        }
        Ok(())
    }

    fn info(&self, n: usize) -> Result<&'t PartInfo> {
        self.sb.parts.get(n).ok_or_else(|| anyhow!("delta {} has no part {n}", self.id))
    }

    /// True if part `n` must be applied before the files parts.
    pub fn is_metadata(&self, n: usize) -> bool {
        self.sb.parts.get(n).is_some_and(|p| p.kind == PartKind::Metadata)
    }

    /// Applies part `n` from `r` (the part file's bytes, already checked
    /// with [`Self::check_part`]). Metadata parts must all come first.
    pub fn apply_part(&mut self, n: usize, r: &mut dyn Read) -> Result<()> {
        let info = self.info(n)?;
        let label = part_label(&self.id, n);
        // One frame (SPEC.md §11.4): the decoder stops after it, and the
        // part must end there.
        let mut dec = zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(128 << 10, r.take(info.size)))
            .with_context(|| format!("opening {label}"))?
            .single_frame();
        dec.window_log_max(fmt::MAX_WINDOW_LOG).with_context(|| format!("opening {label}"))?;
        // Exactly the declared bytes: more is refused, less is truncation.
        let mut stream = Exact { inner: dec.take(info.uncompressed.saturating_add(1)), left: info.uncompressed };
        let r = match info.kind {
            PartKind::Metadata => self.apply_meta(info, &mut stream),
            PartKind::Files => self.apply_files(info, &mut stream),
        };
        r.and_then(|()| {
            let mut probe = [0u8; 1];
            if stream.left != 0 {
                bail!("ends after {} of its {} bytes", info.uncompressed - stream.left, info.uncompressed);
            }
            if stream.inner.read(&mut probe)? != 0 {
                bail!("holds more than its {} declared bytes", info.uncompressed);
            }
            let mut rest = stream.inner.into_inner().finish();
            if !io::BufRead::fill_buf(&mut rest)?.is_empty() {
                bail!("has data after its zstd frame");
            }
            Ok(())
        })
        .with_context(|| label.clone())
    }

    fn apply_meta(&mut self, info: &PartInfo, r: &mut Exact<'_>) -> Result<()> {
        if self.list.is_some() {
            bail!("a metadata part came after files parts were applied");
        }
        for i in 0..info.count {
            let e = MetaEntry::read(r)?.ok_or_else(|| anyhow!("ends after {i} of its {} entries", info.count))?;
            let mut data = vec![0u8; e.len as usize];
            r.read_exact(&mut data).map_err(truncated)?;
            let actual = Checksum::of(&data);
            if actual != e.checksum {
                bail!("{} {} in the delta hashes to {actual}; refusing it", e.objtype.noun(), e.checksum);
            }
            match e.objtype {
                ObjectType::DirTree => {
                    let t = DirTree::from_bytes(&data).with_context(|| format!("dirtree {}", e.checksum))?;
                    self.trees.insert(e.checksum, t);
                }
                _ => {
                    DirMeta::from_bytes(&data).with_context(|| format!("dirmeta {}", e.checksum))?;
                }
            }
            self.txn.write_metadata_verified(e.objtype, &e.checksum, &data)?;
            self.applied.metadata_objects += 1;
        }
        Ok(())
    }

    /// The content list, computed once every metadata part is in.
    fn list(&mut self) -> Result<&[Checksum]> {
        if self.list.is_none() {
            let commit = Commit::from_bytes(&self.sb.commit)?;
            let repo = self.txn.repo();
            let trees = &self.trees;
            let list = fmt::file_list(&commit.root_tree, &self.have_trees, &self.have_files, |c| match trees.get(c) {
                Some(t) => Ok(t.clone()),
                None => repo
                    .load_dirtree(c)
                    .with_context(|| format!("dirtree {c} is neither in delta {} nor here", self.id)),
            })?;
            let ids: Vec<Checksum> = list.into_iter().map(|l| l.checksum).collect();
            if ids.len() as u64 != self.sb.file_count || fmt::list_digest(&ids) != self.sb.file_list_digest {
                if ids.len() as u64 != self.sb.file_count {
                    bail!(
                        "it carries {} content objects but this repository needs {} for this step; it was made for other objects",
                        self.sb.file_count,
                        ids.len()
                    );
                }
                bail!(
                    "it carries other content objects than this repository needs for this step; it was made for other objects"
                );
            }
            self.list = Some(ids);
        }
        Ok(self.list.as_deref().unwrap_or_default())
    }

    fn apply_files(&mut self, info: &PartInfo, r: &mut Exact<'_>) -> Result<()> {
        let max_object = self.max_object;
        let txn = self.txn;
        let repo = txn.repo();
        let list = self.list()?;
        let first = usize::try_from(info.first).map_err(|_| anyhow!("part offset out of range"))?;
        let count = usize::try_from(info.count).map_err(|_| anyhow!("part count out of range"))?;
        let ids = list
            .get(first..first.saturating_add(count))
            .ok_or_else(|| anyhow!("covers entries past the content list"))?;
        let mut done = 0u64;
        for (i, expected) in ids.iter().enumerate() {
            let e = FileEntry::read(r)?.ok_or_else(|| anyhow!("ends after {i} of its {count} entries"))?;
            if e.size > max_object {
                bail!("content object {expected} declares {} bytes, more than the {max_object}-byte limit", e.size);
            }
            match e.body {
                Body::Whole => {
                    let mut body = (&mut *r).take(e.size);
                    txn.write_content(&e.header, &mut body, e.size, Some(expected))
                        .map_err(|e| name_object(e, expected))?;
                    // The object may have been here already: skip its bytes.
                    io::copy(&mut body, &mut io::sink()).map_err(truncated)?;
                    if body.limit() != 0 {
                        return Err(truncated(io::ErrorKind::UnexpectedEof.into()));
                    }
                }
                Body::Patch { source, len } => {
                    if e.size > fmt::MAX_PATCH_FILE || len > fmt::MAX_PATCH_FILE.saturating_mul(2) {
                        bail!("patch for {expected} is larger than a patch may be ({} bytes, patch {len})", e.size);
                    }
                    let mut patch = vec![0u8; len as usize];
                    r.read_exact(&mut patch).map_err(truncated)?;
                    let new = rebuild(repo, &source, &patch, e.size)
                        .with_context(|| format!("patch for content object {expected} against {source}"))?;
                    txn.write_content(&e.header, &mut new.as_slice(), e.size, Some(expected))
                        .map_err(|e| name_object(e, expected))?;
                }
            }
            done += 1;
        }
        self.applied.content_objects += done;
        Ok(())
    }
}

impl Applier<'_, '_> {
    /// Fails unless every object of the `to` commit is now stored or
    /// staged (a delta that left something out).
    pub fn check_complete(&mut self) -> Result<()> {
        let commit = Commit::from_bytes(&self.sb.commit)?;
        let txn = self.txn;
        let repo = txn.repo();
        let missing = |t: ObjectType, c: &Checksum| anyhow!("the delta does not provide {} {c}", t.noun());
        if !txn.has(&commit.root_meta, ObjectType::DirMeta)? {
            return Err(missing(ObjectType::DirMeta, &commit.root_meta));
        }
        let mut seen = HashSet::new();
        let mut stack = vec![commit.root_tree];
        while let Some(t) = stack.pop() {
            if !seen.insert(t) || self.have_trees.contains(&t) {
                continue;
            }
            let tree = match self.trees.get(&t) {
                Some(tree) => tree.clone(),
                None if txn.has(&t, ObjectType::DirTree)? => repo.load_dirtree(&t)?,
                None => return Err(missing(ObjectType::DirTree, &t)),
            };
            for f in tree.files() {
                if !self.have_files.contains(&f.checksum) && !txn.has(&f.checksum, ObjectType::File)? {
                    return Err(missing(ObjectType::File, &f.checksum));
                }
            }
            for d in tree.dirs() {
                if !txn.has(&d.meta, ObjectType::DirMeta)? {
                    return Err(missing(ObjectType::DirMeta, &d.meta));
                }
                stack.push(d.tree);
            }
        }
        Ok(())
    }
}

/// Runs a patch: the old object's content as the prefix, at most `size`
/// bytes out (a patch that would grow past its declared size is refused).
fn rebuild(repo: &Repo, source: &Checksum, patch: &[u8], size: u64) -> Result<Vec<u8>> {
    let mut content = repo.open_content(source).context("the patch's source object is not here")?;
    if content.header.is_symlink() || content.size > fmt::MAX_PATCH_FILE {
        bail!("the patch's source is a symlink or larger than a patch source may be");
    }
    let mut old = Vec::with_capacity(content.size as usize);
    content.reader().read_to_end(&mut old)?;
    let mut dec = zstd::stream::read::Decoder::with_ref_prefix(patch, &old)?;
    dec.window_log_max(fmt::MAX_WINDOW_LOG)?;
    let mut out = Vec::with_capacity(size as usize);
    (&mut dec).take(size.saturating_add(1)).read_to_end(&mut out).context("decompressing the patch")?;
    if out.len() as u64 > size {
        bail!("the patch grows past its declared {size} bytes; refusing it");
    }
    if (out.len() as u64) < size {
        bail!("the patch yields {} bytes, not the declared {size}", out.len());
    }
    Ok(out)
}

/// Names the object in an error, unless it does already (a checksum
/// mismatch does).
fn name_object(e: anyhow::Error, id: &Checksum) -> anyhow::Error {
    if e.is::<ChecksumMismatch>() { e } else { e.context(format!("content object {id}")) }
}

fn truncated(e: io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof { anyhow::Error::from(EntryError::Truncated) } else { e.into() }
}

/// A decompressed part stream that counts down its declared length.
struct Exact<'a> {
    inner: io::Take<zstd::stream::read::Decoder<'static, BufReader<io::Take<&'a mut dyn Read>>>>,
    left: u64,
}

impl Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let max = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if max == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

struct HashReader<R> {
    inner: R,
    hasher: repo_format::Hasher,
    len: u64,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}
