//! Reading objects back: metadata objects as verified bytes, content
//! objects as a header plus a reader, whatever the repository mode.

use std::fs::File;
use std::io::{self, BufReader, Read};

use anyhow::{Context, Result, anyhow, bail};
use flate2::bufread::DeflateDecoder;
use repo_format::file::{HEADER_PREFIX_LEN, header_len, parse_archive_header};
use repo_format::mode::{S_IFLNK, S_IFMT, S_IFREG, is_symlink};
use repo_format::{Checksum, Commit, DirMeta, DirTree, FileHeader, MAX_METADATA_SIZE, Metadata, ObjectType, Xattrs};

use super::{ObjectMissing, Repo, RepoMode};
use crate::fsutil::{self, is_not_found};

/// The xattr that holds real metadata in bare-user repositories.
pub const OSTREEMETA_XATTR: &str = "user.ostreemeta";

/// A content object opened for reading.
pub struct Content {
    /// Owner, mode, symlink target and xattrs.
    pub header: FileHeader,
    /// Uncompressed size of the content (0 for symlinks).
    pub size: u64,
    body: Body,
}

enum Body {
    Empty(io::Empty),
    File(SizedReader<File>),
    Archive(SizedReader<DeflateDecoder<BufReader<File>>>),
}

impl Content {
    /// A regular file's bytes (nothing for a symlink). Reading fails if the
    /// stored data is shorter or longer than the header says.
    pub fn reader(&mut self) -> &mut dyn Read {
        match &mut self.body {
            Body::Empty(r) => r,
            Body::File(r) => r,
            Body::Archive(r) => r,
        }
    }

    /// The underlying file, for bare repositories (hardlink and copy fast paths).
    pub fn bare_file(&self) -> Option<&File> {
        match &self.body {
            Body::File(r) => Some(&r.inner),
            _ => None,
        }
    }
}

/// Reads exactly `len` bytes from `inner`, failing on a short stream and on
/// any byte past `len` (a decompression bomb or a lying header).
pub struct SizedReader<R> {
    inner: R,
    remaining: u64,
    checked_end: bool,
}

impl<R: Read> SizedReader<R> {
    /// Wraps `inner`, which must yield exactly `len` bytes.
    pub fn new(inner: R, len: u64) -> Self {
        Self { inner, remaining: len, checked_end: false }
    }
    /// The wrapped reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: Read> Read for SizedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            if !self.checked_end {
                let mut probe = [0u8; 1];
                if self.inner.read(&mut probe)? != 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "content is longer than its header declares",
                    ));
                }
                self.checked_end = true;
            }
            return Ok(0);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "content is shorter than its header declares"));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

impl Repo {
    /// The bytes of a metadata object, checked against its name.
    pub fn read_metadata(&self, checksum: &Checksum, objtype: ObjectType) -> Result<Vec<u8>> {
        self.read_metadata_optional(checksum, objtype)?
            .ok_or_else(|| anyhow!(ObjectMissing { checksum: *checksum, objtype }))
    }

    /// As [`Repo::read_metadata`], `None` if absent.
    pub fn read_metadata_optional(&self, checksum: &Checksum, objtype: ObjectType) -> Result<Option<Vec<u8>>> {
        let path = self.loose_path(checksum, objtype);
        let Some(f) = self
            .objects_dir()
            .open_file_optional(&path)
            .with_context(|| self.display_object(checksum, objtype).display().to_string())?
        else {
            return Ok(None);
        };
        let mut data = Vec::new();
        f.take(MAX_METADATA_SIZE as u64 + 1)
            .read_to_end(&mut data)
            .with_context(|| format!("reading {}", self.display_object(checksum, objtype).display()))?;
        if data.len() > MAX_METADATA_SIZE {
            bail!(
                "{objtype} object {checksum} is larger than {MAX_METADATA_SIZE} bytes; the repository is damaged, run `repo fsck`"
            );
        }
        // Detached metadata is named after its commit, not its own hash.
        if objtype != ObjectType::CommitMeta {
            let actual = Checksum::of(&data);
            if actual != *checksum {
                bail!(
                    "{objtype} object {checksum} is corrupt (its content hashes to {actual}); run `repo fsck --delete-corrupt` and pull again"
                );
            }
        }
        Ok(Some(data))
    }

    /// Loads and parses a commit.
    pub fn load_commit(&self, checksum: &Checksum) -> Result<Commit> {
        let data = self.read_metadata(checksum, ObjectType::Commit)?;
        Commit::from_bytes(&data).with_context(|| format!("commit {checksum}"))
    }

    /// Loads and parses a dirtree.
    pub fn load_dirtree(&self, checksum: &Checksum) -> Result<DirTree> {
        let data = self.read_metadata(checksum, ObjectType::DirTree)?;
        DirTree::from_bytes(&data).with_context(|| format!("dirtree {checksum}"))
    }

    /// Loads and parses a dirmeta.
    pub fn load_dirmeta(&self, checksum: &Checksum) -> Result<DirMeta> {
        let data = self.read_metadata(checksum, ObjectType::DirMeta)?;
        DirMeta::from_bytes(&data).with_context(|| format!("dirmeta {checksum}"))
    }

    /// A commit's detached metadata (signatures), if any.
    pub fn load_detached_metadata(&self, commit: &Checksum) -> Result<Option<Metadata>> {
        match self.read_metadata_optional(commit, ObjectType::CommitMeta)? {
            Some(data) => Ok(Some(
                Metadata::from_bytes_as("commitmeta", &data)
                    .with_context(|| format!("detached metadata of {commit}"))?,
            )),
            None => Ok(None),
        }
    }

    /// Opens a content object.
    pub fn open_content(&self, checksum: &Checksum) -> Result<Content> {
        let path = self.loose_path(checksum, ObjectType::File);
        let shown = || self.display_object(checksum, ObjectType::File).display().to_string();
        let missing = || anyhow!(ObjectMissing { checksum: *checksum, objtype: ObjectType::File });
        let objects = self.objects_dir();
        match self.mode() {
            RepoMode::Archive => {
                let f = match objects.open_file(&path) {
                    Ok(f) => f,
                    Err(e) if is_not_found(&e) => return Err(missing()),
                    Err(e) => return Err(e).with_context(shown),
                };
                let mut r = BufReader::new(f);
                let mut prefix = [0u8; HEADER_PREFIX_LEN];
                r.read_exact(&mut prefix).with_context(|| format!("{}: truncated header", shown()))?;
                let len = header_len(&prefix).with_context(shown)?;
                let mut head = prefix.to_vec();
                head.resize(HEADER_PREFIX_LEN + len, 0);
                r.read_exact(&mut head[HEADER_PREFIX_LEN..])
                    .with_context(|| format!("{}: truncated header", shown()))?;
                let (header, size, _) = parse_archive_header(&head).with_context(shown)?;
                let body = if is_symlink(header.mode) {
                    Body::Empty(io::empty())
                } else {
                    Body::Archive(SizedReader::new(DeflateDecoder::new(r), size))
                };
                Ok(Content { header, size, body })
            }
            RepoMode::Bare | RepoMode::BareUserOnly => {
                let st = match objects.stat(&path) {
                    Ok(st) => st,
                    Err(e) if is_not_found(&e) => return Err(missing()),
                    Err(e) => return Err(e).with_context(shown),
                };
                let bare = self.mode() == RepoMode::Bare;
                let (uid, gid) = if bare { (st.st_uid, st.st_gid) } else { (0, 0) };
                if st.st_mode & S_IFMT == S_IFLNK {
                    let target = objects.read_link(&path).with_context(shown)?;
                    let xattrs = if bare { objects.xattrs_nofollow(&path).with_context(shown)? } else { Vec::new() };
                    let header = FileHeader {
                        uid,
                        gid,
                        mode: S_IFLNK | 0o777,
                        symlink_target: String::from_utf8(target)
                            .map_err(|_| anyhow!("{}: symlink target is not UTF-8", shown()))?,
                        xattrs: canonical_xattrs(xattrs).with_context(shown)?,
                    };
                    return Ok(Content { header, size: 0, body: Body::Empty(io::empty()) });
                }
                let f = objects.open_file(&path).with_context(shown)?;
                let xattrs = if bare {
                    canonical_xattrs(fsutil::fd_xattrs(&f).with_context(shown)?).with_context(shown)?
                } else {
                    Xattrs::new()
                };
                let header = FileHeader {
                    uid,
                    gid,
                    mode: S_IFREG | (st.st_mode & 0o7777),
                    symlink_target: String::new(),
                    xattrs,
                };
                let size = st.st_size as u64;
                Ok(Content { header, size, body: Body::File(SizedReader::new(f, size)) })
            }
            RepoMode::BareUser => {
                let f = match objects.open_file(&path) {
                    Ok(f) => f,
                    Err(e) if is_not_found(&e) => return Err(missing()),
                    Err(e) => return Err(e).with_context(shown),
                };
                let meta = fsutil::fd_get_xattr(&f, OSTREEMETA_XATTR).with_context(shown)?.ok_or_else(|| {
                    anyhow!("{}: no {OSTREEMETA_XATTR} xattr; the repository is damaged, run `repo fsck`", shown())
                })?;
                let meta = DirMeta::file_meta_from_bytes(&meta).with_context(shown)?;
                let st = fsutil::fd_stat(&f).with_context(shown)?;
                let size = st.st_size as u64;
                if is_symlink(meta.mode) {
                    if size > repo_format::file::MAX_SYMLINK_TARGET as u64 {
                        bail!("{}: symlink target too long", shown());
                    }
                    let mut raw = Vec::new();
                    (&f).read_to_end(&mut raw).with_context(|| format!("{}: symlink target", shown()))?;
                    // OSTree stores the target with its C terminator.
                    if raw.last() == Some(&0) {
                        raw.pop();
                    }
                    let target =
                        String::from_utf8(raw).map_err(|_| anyhow!("{}: symlink target is not UTF-8", shown()))?;
                    let header = FileHeader {
                        uid: meta.uid,
                        gid: meta.gid,
                        mode: meta.mode,
                        symlink_target: target,
                        xattrs: meta.xattrs,
                    };
                    return Ok(Content { header, size: 0, body: Body::Empty(io::empty()) });
                }
                let header = FileHeader {
                    uid: meta.uid,
                    gid: meta.gid,
                    mode: meta.mode,
                    symlink_target: String::new(),
                    xattrs: meta.xattrs,
                };
                Ok(Content { header, size, body: Body::File(SizedReader::new(f, size)) })
            }
        }
    }
}

/// Sorts xattrs read from disk into OSTree's canonical order.
pub fn canonical_xattrs(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Xattrs> {
    Xattrs::from_pairs(pairs).ok_or_else(|| anyhow!("extended attributes repeat a name or exceed Linux limits"))
}
