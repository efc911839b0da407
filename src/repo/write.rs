//! Writing objects: every object goes through a [`Transaction`].
//!
//! Objects are written into a private staging directory under `tmp/`,
//! hashed while they are written, and given their final name only if the
//! hash matches what the caller expected. [`Transaction::commit`] then makes
//! the whole batch durable with one `syncfs` and renames each object into
//! `objects/`; a crash before that leaves only a staging directory, which
//! the next transaction removes. Nothing unverified and nothing half-written
//! is ever visible under `objects/`.

use std::collections::HashSet;
use std::io::{self, BufRead, BufWriter, Read, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use flate2::Compression;
use flate2::write::DeflateEncoder;
use repo_format::mode::{S_IFREG, is_symlink};
use repo_format::{Checksum, ContentHasher, DirMeta, FileHeader, Metadata, ObjectType};

use repo_format::file::{HEADER_PREFIX_LEN, header_len, parse_archive_header};

use super::objects::{OSTREEMETA_XATTR, SizedReader};
use super::{Repo, RepoMode, loose_path};
use crate::fsutil::{self, Dir, is_exists};

/// Deflate level of `.filez` objects (OSTree's
/// `OSTREE_ARCHIVE_DEFAULT_COMPRESSION_LEVEL`).
const ARCHIVE_COMPRESSION_LEVEL: u32 = 6;
/// Prefix of staging directories under `tmp/`.
const STAGING_PREFIX: &str = "staging-";
/// Timestamp given to bare-mode objects (OSTree's `OSTREE_TIMESTAMP`): a
/// fixed mtime keeps checkouts reproducible for tools that compare mtimes.
const OBJECT_MTIME: i64 = 0;
/// Copy buffer size.
const COPY_BUF: usize = 128 * 1024;

/// An object did not hash to the id it was expected to have. Fatal for a
/// pull: the server sent wrong bytes.
#[derive(Debug, thiserror::Error)]
#[error("{} object {expected}: content hashes to {actual}; refusing to store it", objtype.noun())]
pub struct ChecksumMismatch {
    /// Object kind.
    pub objtype: ObjectType,
    /// The id it should have had.
    pub expected: Checksum,
    /// What the bytes hash to.
    pub actual: Checksum,
}

/// Counts of what a transaction wrote.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TxnStats {
    /// New metadata objects.
    pub metadata_objects: u64,
    /// New content objects.
    pub content_objects: u64,
    /// Content bytes (uncompressed) of new content objects.
    pub content_bytes: u64,
}

/// A batch of object writes that becomes visible all at once.
pub struct Transaction<'r> {
    repo: &'r Repo,
    staging: Dir,
    staging_name: String,
    staged: Mutex<HashSet<(Checksum, ObjectType)>>,
    metadata_objects: AtomicU64,
    content_objects: AtomicU64,
    content_bytes: AtomicU64,
    done: bool,
}

impl Repo {
    /// Starts a transaction, removing staging directories left by crashed
    /// or killed writers (those no process holds a lock on).
    pub fn begin(&self) -> Result<Transaction<'_>> {
        self.remove_stale_staging()?;
        let tmp = self.tmp_dir();
        let name = loop {
            let name = format!("{STAGING_PREFIX}{}", &tmp.temp_name("s")?[fsutil::TEMP_PREFIX.len() + 2..]);
            match tmp.create_dir(&name, 0o700) {
                Ok(()) => break name,
                Err(e) if is_exists(&e) => continue,
                Err(e) => return Err(e).with_context(|| format!("creating {}", tmp.display(&name).display())),
            }
        };
        let staging = tmp.open_dir(&name)?;
        if !staging.try_lock_exclusive()? {
            bail!("staging directory {} is locked by another process", staging.path().display());
        }
        Ok(Transaction {
            repo: self,
            staging,
            staging_name: name,
            staged: Mutex::new(HashSet::new()),
            metadata_objects: AtomicU64::new(0),
            content_objects: AtomicU64::new(0),
            content_bytes: AtomicU64::new(0),
            done: false,
        })
    }

    fn remove_stale_staging(&self) -> Result<()> {
        let tmp = self.tmp_dir();
        for e in tmp.entries()? {
            let e = e?;
            let Some(name) = e.name.to_str() else { continue };
            if !name.starts_with(STAGING_PREFIX) {
                continue;
            }
            let Ok(d) = tmp.open_dir(name) else { continue };
            if d.try_lock_exclusive()? {
                tmp.remove_all(name).with_context(|| format!("removing stale {}", tmp.display(name).display()))?;
            }
        }
        Ok(())
    }
}

fn staged_name(checksum: &Checksum, objtype: ObjectType, mode: RepoMode) -> String {
    format!("{checksum}.{}", objtype.extension(mode.is_archive()))
}

/// Copies `r` into `w` and returns the byte count.
fn copy(r: &mut dyn Read, w: &mut dyn Write) -> io::Result<u64> {
    let mut buf = vec![0u8; COPY_BUF];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Writes into two sinks: the object file and the hasher.
struct Tee<'a, W: Write> {
    out: W,
    hasher: &'a mut ContentHasher,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl<'r> Transaction<'r> {
    /// The repository this writes to.
    pub fn repo(&self) -> &'r Repo {
        self.repo
    }

    /// True if the object is stored or already staged here.
    pub fn has(&self, checksum: &Checksum, objtype: ObjectType) -> Result<bool> {
        if self.staged.lock().map_err(|_| anyhow!("staging set poisoned"))?.contains(&(*checksum, objtype)) {
            return Ok(true);
        }
        self.repo.has_object(checksum, objtype)
    }

    /// Gives a finished temp file its staged name, or drops it if the
    /// object exists already. Returns true if it was new.
    fn publish(&self, tmp: &str, checksum: Checksum, objtype: ObjectType) -> Result<bool> {
        if self.has(&checksum, objtype)? {
            self.staging.unlink(tmp)?;
            return Ok(false);
        }
        let name = staged_name(&checksum, objtype, self.repo.mode());
        match self.staging.rename_noreplace(tmp, &self.staging, &name) {
            Ok(()) => {}
            // Another thread staged the same object first.
            Err(e) if is_exists(&e) => {
                self.staging.unlink(tmp)?;
                return Ok(false);
            }
            Err(e) => return Err(e).with_context(|| format!("staging {objtype} {checksum}")),
        }
        let inserted = self.staged.lock().map_err(|_| anyhow!("staging set poisoned"))?.insert((checksum, objtype));
        Ok(inserted)
    }

    /// Writes a metadata object and returns its id.
    pub fn write_metadata(&self, objtype: ObjectType, data: &[u8]) -> Result<Checksum> {
        let checksum = Checksum::of(data);
        self.write_metadata_named(objtype, &checksum, data)?;
        Ok(checksum)
    }

    /// Writes a metadata object that must hash to `expected`.
    pub fn write_metadata_verified(&self, objtype: ObjectType, expected: &Checksum, data: &[u8]) -> Result<()> {
        let actual = Checksum::of(data);
        if actual != *expected {
            return Err(ChecksumMismatch { objtype, expected: *expected, actual }.into());
        }
        self.write_metadata_named(objtype, expected, data)
    }

    /// Writes (replacing) a commit's detached metadata, which is named after
    /// the commit rather than its own hash.
    pub fn write_detached_metadata(&self, commit: &Checksum, metadata: &Metadata) -> Result<()> {
        // Replacing is allowed: signatures get appended over time.
        let data = metadata.to_bytes();
        let (mut f, tmp) = self.staging.create_temp("m")?;
        f.write_all(&data)?;
        fsutil::fd_chmod(&f, 0o644)?;
        let name = staged_name(commit, ObjectType::CommitMeta, self.repo.mode());
        self.staging.rename(&tmp, &self.staging, &name)?;
        self.staged.lock().map_err(|_| anyhow!("staging set poisoned"))?.insert((*commit, ObjectType::CommitMeta));
        Ok(())
    }

    fn write_metadata_named(&self, objtype: ObjectType, checksum: &Checksum, data: &[u8]) -> Result<()> {
        if self.has(checksum, objtype)? {
            return Ok(());
        }
        let (mut f, tmp) = self.staging.create_temp("m")?;
        f.write_all(data).with_context(|| format!("writing {objtype} {checksum}"))?;
        fsutil::fd_chmod(&f, 0o644)?;
        drop(f);
        if self.publish(&tmp, *checksum, objtype)? {
            self.metadata_objects.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Writes a content object: `header` plus `size` bytes from `content`
    /// (nothing for a symlink), hashed while written. With `expected`, the
    /// object is refused unless it hashes to that id. Returns the id.
    pub fn write_content(
        &self,
        header: &FileHeader,
        content: &mut dyn Read,
        size: u64,
        expected: Option<&Checksum>,
    ) -> Result<Checksum> {
        header.validate()?;
        if self.repo.mode() == RepoMode::BareUserOnly
            && (header.uid != 0 || header.gid != 0 || !header.xattrs.is_empty())
        {
            // What is not stored cannot be verified later: refuse rather than
            // keep an object whose id fsck could never reproduce.
            bail!(
                "this object has an owner ({}:{}) or xattrs, which a bare-user-only repository cannot keep; use a bare-user repository",
                header.uid,
                header.gid
            );
        }
        if let Some(e) = expected
            && self.has(e, ObjectType::File)?
        {
            return Ok(*e);
        }
        let mode = self.repo.mode();
        let mut hasher = ContentHasher::new(header);
        let symlink = is_symlink(header.mode);
        // Bare and bare-user-only store symlinks as symlinks; everything else
        // is a regular file in staging.
        let tmp = if symlink && matches!(mode, RepoMode::Bare | RepoMode::BareUserOnly) {
            let tmp = self.staging.temp_name("l")?;
            self.staging.symlink(&header.symlink_target, &tmp).context("creating symlink object")?;
            if mode == RepoMode::Bare {
                self.staging.chown_nofollow(&tmp, header.uid, header.gid).map_err(bare_needs_root)?;
                for (k, v) in header.xattrs.iter() {
                    self.staging.set_xattr_nofollow(&tmp, k, v).context("setting xattr on symlink object")?;
                }
            }
            tmp
        } else {
            let (f, tmp) = self.staging.create_temp("c")?;
            let r = self.fill_content_file(f, header, content, size, &mut hasher);
            if let Err(e) = r {
                let _ = self.staging.unlink(&tmp);
                return Err(e);
            }
            tmp
        };
        let actual = hasher.finish();
        if let Some(e) = expected
            && *e != actual
        {
            let _ = self.staging.unlink(&tmp);
            return Err(ChecksumMismatch { objtype: ObjectType::File, expected: *e, actual }.into());
        }
        if self.publish(&tmp, actual, ObjectType::File)? {
            self.content_objects.fetch_add(1, Ordering::Relaxed);
            self.content_bytes.fetch_add(size, Ordering::Relaxed);
        }
        Ok(actual)
    }

    fn fill_content_file(
        &self,
        f: std::fs::File,
        header: &FileHeader,
        content: &mut dyn Read,
        size: u64,
        hasher: &mut ContentHasher,
    ) -> Result<()> {
        let mode = self.repo.mode();
        let symlink = is_symlink(header.mode);
        let copied = if symlink {
            if mode == RepoMode::Archive {
                let mut w = BufWriter::new(&f);
                w.write_all(&header.to_archive_header(0))?;
                w.flush()?;
            } else {
                // bare-user: the target is the file's content, NUL-terminated
                // as OSTree writes it.
                (&f).write_all(header.symlink_target.as_bytes())?;
                (&f).write_all(b"\0")?;
            }
            0
        } else if mode == RepoMode::Archive {
            let mut w = BufWriter::with_capacity(COPY_BUF, &f);
            w.write_all(&header.to_archive_header(size))?;
            let mut enc = DeflateEncoder::new(w, Compression::new(ARCHIVE_COMPRESSION_LEVEL));
            let n = copy(&mut content.take(size), &mut Tee { out: &mut enc, hasher })?;
            enc.finish()?.flush()?;
            n
        } else {
            let mut w = BufWriter::with_capacity(COPY_BUF, &f);
            let n = copy(&mut content.take(size), &mut Tee { out: &mut w, hasher })?;
            w.flush()?;
            n
        };
        if copied != size {
            bail!("content is {copied} bytes but {size} were expected (the source changed or was truncated)");
        }
        // More data than declared: a growing source file, or a stream that
        // inflates past its header's size (a decompression bomb).
        let mut probe = [0u8; 1];
        if content.read(&mut probe)? != 0 {
            bail!("content is longer than the {size} bytes its header declares");
        }
        match mode {
            RepoMode::Archive => fsutil::fd_chmod(&f, 0o644)?,
            RepoMode::Bare => {
                fsutil::fd_chown(&f, header.uid, header.gid).map_err(bare_needs_root)?;
                fsutil::fd_chmod(&f, header.mode)?;
                for (k, v) in header.xattrs.iter() {
                    fsutil::fd_set_xattr(&f, k, v)
                        .with_context(|| format!("setting xattr {}", String::from_utf8_lossy(k)))?;
                }
                fsutil::fd_set_times(&f, OBJECT_MTIME)?;
            }
            RepoMode::BareUser => {
                let meta =
                    DirMeta { uid: header.uid, gid: header.gid, mode: header.mode, xattrs: header.xattrs.clone() };
                fsutil::fd_set_xattr(&f, OSTREEMETA_XATTR.as_bytes(), &meta.to_bytes())
                    .context("setting user.ostreemeta (bare-user repositories need a filesystem with user xattrs)")?;
                // OSTree masks with 0775 and always keeps owner read
                // (ostreedev/ostree#907); symlink objects keep 0644.
                let perm = if symlink { 0o644 } else { (header.mode & 0o775) | 0o400 };
                fsutil::fd_chmod(&f, perm)?;
                fsutil::fd_set_times(&f, OBJECT_MTIME)?;
            }
            RepoMode::BareUserOnly => {
                if header.mode & !(S_IFREG | 0o775) & 0o7777 != 0 {
                    bail!(
                        "mode {:o} is not allowed in a bare-user-only repository (only bits in 0775); commit with canonical permissions",
                        header.mode
                    );
                }
                fsutil::fd_chmod(&f, header.mode)?;
                fsutil::fd_set_times(&f, OBJECT_MTIME)?;
            }
        }
        Ok(())
    }

    /// Makes staged objects durable and visible now, except commits, which
    /// wait for [`Transaction::commit`]. A long pull calls this now and then
    /// so that a rerun after a crash or a dead link does not fetch again what
    /// was already verified; what it publishes is unreferenced until the
    /// commit lands, so the repository stays consistent.
    pub fn flush(&self) -> Result<()> {
        let batch: Vec<(Checksum, ObjectType)> = {
            let mut set = self.staged.lock().map_err(|_| anyhow!("staging set poisoned"))?;
            let batch: Vec<_> = set.iter().filter(|(_, t)| *t != ObjectType::Commit).copied().collect();
            for o in &batch {
                set.remove(o);
            }
            batch
        };
        self.publish_batch(batch)
    }

    /// Moves `batch` into `objects/`: one `syncfs` so the data is durable,
    /// then renames, leaves before what refers to them: a crash between two
    /// renames can leave unreferenced objects, never a commit whose tree is
    /// not complete. Renames within one filesystem reach the journal in order.
    fn publish_batch(&self, mut batch: Vec<(Checksum, ObjectType)>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        batch.sort_by_key(|(c, t)| (rename_rank(*t), *c));
        self.staging.syncfs().context("syncing staged objects")?;
        let mode = self.repo.mode();
        let objects = self.repo.objects_dir();
        let mut made_dirs = HashSet::new();
        for (checksum, objtype) in &batch {
            let dest = loose_path(checksum, *objtype, mode);
            let prefix = &checksum.to_hex()[..2];
            if made_dirs.insert(prefix.to_owned()) {
                objects
                    .ensure_dir(prefix, 0o755)
                    .with_context(|| format!("creating {}", objects.display(prefix).display()))?;
            }
            let name = staged_name(checksum, *objtype, mode);
            let r = if *objtype == ObjectType::CommitMeta {
                self.staging.rename(&name, objects, &dest)
            } else {
                self.staging.rename_noreplace(&name, objects, &dest)
            };
            match r {
                Ok(()) => {}
                Err(e) if is_exists(&e) => {}
                Err(e) => return Err(e).with_context(|| format!("moving {objtype} {checksum} into place")),
            }
        }
        objects.syncfs().context("syncing object directories")?;
        Ok(())
    }

    /// Makes every staged object durable and visible, then removes the
    /// staging directory.
    pub fn commit(mut self) -> Result<TxnStats> {
        let staged: Vec<(Checksum, ObjectType)> = {
            let mut set = self.staged.lock().map_err(|_| anyhow!("staging set poisoned"))?;
            set.drain().collect()
        };
        self.publish_batch(staged)?;
        self.done = true;
        self.repo.tmp_dir().remove_all(&self.staging_name)?;
        Ok(TxnStats {
            metadata_objects: self.metadata_objects.load(Ordering::Relaxed),
            content_objects: self.content_objects.load(Ordering::Relaxed),
            content_bytes: self.content_bytes.load(Ordering::Relaxed),
        })
    }

    /// Stores a content object received in archive form (`.filez` bytes,
    /// as a server sends it) that must hash to `expected`. An archive
    /// repository keeps the received bytes; bare repositories store the
    /// inflated content. The declared size is checked against `max_size`
    /// and the free space before anything is written, and inflating stops
    /// at the declared size (no decompression bombs).
    pub fn write_content_from_archive(&self, expected: &Checksum, raw: &mut dyn Read, max_size: u64) -> Result<()> {
        let mut prefix = [0u8; HEADER_PREFIX_LEN];
        raw.read_exact(&mut prefix).context("archive object is shorter than its header")?;
        let len = header_len(&prefix)?;
        let mut head = prefix.to_vec();
        head.resize(HEADER_PREFIX_LEN + len, 0);
        raw.read_exact(&mut head[HEADER_PREFIX_LEN..]).context("archive object is shorter than its header")?;
        let (header, size, _) = parse_archive_header(&head)?;
        if size > max_size {
            bail!("object declares {size} bytes of content, more than the {max_size}-byte limit for this remote");
        }
        let space = self.repo.objects_dir().space()?;
        if size > space.available {
            bail!(
                "object needs {size} bytes but only {} are free on the repository's filesystem; free space (e.g. `repo prune`) and retry",
                space.available
            );
        }
        if self.has(expected, ObjectType::File)? {
            return Ok(());
        }
        if self.repo.mode() != RepoMode::Archive {
            let mut input = io::BufReader::with_capacity(COPY_BUF, raw);
            if is_symlink(header.mode) {
                ensure_consumed(&mut input)?;
                self.write_content(&header, &mut io::empty(), 0, Some(expected))?;
                return Ok(());
            }
            // bufread's decoder consumes exactly the deflate stream, so
            // anything after it is left in `input`; ArchiveBody fails at the
            // end of the content if so, before write_content publishes.
            let mut body = ArchiveBody(SizedReader::new(flate2::bufread::DeflateDecoder::new(&mut input), size));
            self.write_content(&header, &mut body, size, Some(expected))?;
            return Ok(());
        }
        // Archive: keep the server's compressed bytes, hash what they inflate to.
        let (f, tmp) = self.staging.create_temp("a")?;
        let r = (|| -> Result<Checksum> {
            let mut w = BufWriter::with_capacity(COPY_BUF, &f);
            w.write_all(&head)?;
            let mut input = io::BufReader::with_capacity(COPY_BUF, TeeReader { inner: raw, copy: &mut w });
            let mut hasher = ContentHasher::new(&header);
            if !is_symlink(header.mode) {
                let mut body = SizedReader::new(flate2::bufread::DeflateDecoder::new(&mut input), size);
                copy(&mut body, &mut hasher).context("inflating object content")?;
            }
            ensure_consumed(&mut input)?;
            drop(input);
            w.flush()?;
            drop(w);
            fsutil::fd_chmod(&f, 0o644)?;
            Ok(hasher.finish())
        })();
        let actual = match r {
            Ok(a) => a,
            Err(e) => {
                let _ = self.staging.unlink(&tmp);
                return Err(e);
            }
        };
        if actual != *expected {
            let _ = self.staging.unlink(&tmp);
            return Err(ChecksumMismatch { objtype: ObjectType::File, expected: *expected, actual }.into());
        }
        if self.publish(&tmp, actual, ObjectType::File)? {
            self.content_objects.fetch_add(1, Ordering::Relaxed);
            self.content_bytes.fetch_add(size, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Fails if `input` holds anything more: an archive object ends with its
/// deflate stream (or with its header, for a symlink). Trailing junk would
/// let a server make clients download and store garbage.
fn ensure_consumed(input: &mut impl BufRead) -> Result<()> {
    if !input.fill_buf()?.is_empty() {
        bail!("archive object has data after the end of its content");
    }
    Ok(())
}

/// The inflated content of an archive object; at its end, fails if the
/// object has bytes after its deflate stream.
struct ArchiveBody<'a, R: BufRead>(SizedReader<flate2::bufread::DeflateDecoder<&'a mut R>>);

impl<R: BufRead> Read for ArchiveBody<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.0.get_mut().get_mut().fill_buf()?.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "archive object has data after the end of its content",
            ));
        }
        Ok(n)
    }
}

/// A reader that copies everything it reads into `copy`.
struct TeeReader<'a, W: Write> {
    inner: &'a mut dyn Read,
    copy: &'a mut W,
}

impl<W: Write> Read for TeeReader<'_, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.done {
            // Abandoned: nothing was made visible; discard what was staged.
            let _ = self.repo.tmp_dir().remove_all(&self.staging_name);
        }
    }
}

/// Order of object kinds when they are moved into place. Dirtrees refer to
/// other dirtrees, so until the last of them is in place a tree may be
/// incomplete; only commits make a tree reachable, and they go last.
fn rename_rank(t: ObjectType) -> u8 {
    match t {
        ObjectType::File => 0,
        ObjectType::DirMeta => 1,
        ObjectType::DirTree => 2,
        ObjectType::CommitMeta => 3,
        ObjectType::Commit => 4,
        ObjectType::TombstoneCommit => 5,
    }
}

fn bare_needs_root(e: io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::PermissionDenied {
        anyhow!("cannot set file ownership: a bare repository needs root; use a bare-user repository instead")
    } else {
        anyhow::Error::from(e).context("setting file ownership")
    }
}
