//! Offline bundles: one file holding a signed delta, for update media.
//!
//! Layout (SPEC.md §11.5): the 8-byte magic `PUDELTA\x01`, the superblock
//! file's length as a little-endian u64, the superblock file, then every
//! part in superblock order, back to back. Nothing else: a file whose
//! length is not exactly that is refused. Applying goes through the same
//! [`Applier`] as a pull, after the superblock's signature is checked.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use repo_format::Metadata;
use repo_format::delta::{self as fmt, Superblock};
use repo_format::sign as sigfmt;

use super::super::Repo;
use super::apply::{Applied, Applier};
use super::generate::part_file;
use super::open_superblock;
use crate::fsutil::Dir;
use crate::progress::{Progress, Unit};
use crate::sign::TrustStore;

/// First bytes of a bundle.
pub const MAGIC: &[u8; 8] = b"PUDELTA\x01";

/// Writes the delta in `dir` (a `photon-deltas/ID` directory) as a bundle
/// at `dest` (written to a temporary name, synced, then renamed).
pub fn export(dir: &Dir, dest: &Path) -> Result<u64> {
    let mut raw = Vec::new();
    dir.open_file(fmt::SUPERBLOCK_FILE)?.take(fmt::MAX_SUPERBLOCK_SIZE as u64 + 1).read_to_end(&mut raw)?;
    let (_, sb) = open_superblock(&raw, None, None, "delta superblock")?;
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "bundle".into());
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let out_dir = Dir::open(parent).with_context(|| format!("opening {}", parent.display()))?;
    let (file, tmp) = out_dir.create_temp(&format!(".{name}"))?;
    crate::fsutil::fd_chmod(&file, 0o644)?;
    let r = (|| -> Result<u64> {
        let mut w = BufWriter::with_capacity(1 << 20, &file);
        w.write_all(MAGIC)?;
        w.write_all(&(raw.len() as u64).to_le_bytes())?;
        w.write_all(&raw)?;
        let mut total = (MAGIC.len() + 8 + raw.len()) as u64;
        for (n, p) in sb.parts.iter().enumerate() {
            let copied = io::copy(&mut dir.open_file(part_file(n))?, &mut w)?;
            if copied != p.size {
                bail!("part {n} is {copied} bytes, its superblock says {}; regenerate the delta", p.size);
            }
            total += copied;
        }
        w.flush()?;
        drop(w);
        file.sync_all()?;
        Ok(total)
    })();
    match r {
        Ok(total) => {
            out_dir.rename(&tmp, &out_dir, &name)?;
            out_dir.fsync()?;
            Ok(total)
        }
        Err(e) => {
            let _ = out_dir.unlink(&tmp);
            Err(e)
        }
    }
}

/// An opened bundle: its superblock, checked, and where its parts are.
pub struct Bundle {
    file: File,
    /// The superblock.
    pub superblock: Superblock,
    offsets: Vec<u64>,
}

impl Bundle {
    /// Opens `path`, checks its framing and (with `trust`) the superblock's
    /// signatures.
    pub fn open(path: &Path, trust: Option<&TrustStore>) -> Result<Bundle> {
        let shown = path.display();
        let mut file = File::open(path).with_context(|| format!("opening {shown}"))?;
        let len = file.metadata()?.len();
        let mut head = [0u8; 16];
        file.read_exact(&mut head).map_err(|_| anyhow!("{shown} is not a photon-upgrade bundle (too short)"))?;
        if &head[..8] != MAGIC {
            bail!("{shown} is not a photon-upgrade bundle (bad magic); make one with `repo delta export`");
        }
        let sb_len = u64::from_le_bytes(head[8..].try_into().unwrap_or_default());
        if sb_len > fmt::MAX_SUPERBLOCK_SIZE as u64 || sb_len > len - 16 {
            bail!("{shown}: its superblock length {sb_len} is impossible; the file is corrupt or truncated");
        }
        let mut raw = vec![0u8; sb_len as usize];
        file.read_exact(&mut raw)?;
        let (_, superblock) = open_superblock(&raw, trust, None, &format!("bundle {shown}"))?;
        let mut offsets = Vec::with_capacity(superblock.parts.len());
        let mut at = 16 + sb_len;
        for p in &superblock.parts {
            offsets.push(at);
            at = at.checked_add(p.size).ok_or_else(|| anyhow!("{shown}: part sizes overflow"))?;
        }
        if at != len {
            bail!("{shown} is {len} bytes but its superblock describes {at}; the file is truncated or has extra data");
        }
        Ok(Bundle { file, superblock, offsets })
    }

    fn part(&mut self, n: usize) -> Result<io::Take<BufReader<&mut File>>> {
        let (at, size) = (self.offsets[n], self.superblock.parts[n].size);
        self.file.seek(SeekFrom::Start(at))?;
        Ok(BufReader::with_capacity(256 << 10, &mut self.file).take(size))
    }

    /// Applies the bundle to `repo`: checks the commit's own signatures
    /// (with `trust`), every part's hash before reading it, and every
    /// object; commits only if the whole commit is then present.
    /// Returns what was written.
    pub fn apply(
        mut self,
        repo: &Repo,
        trust: Option<&TrustStore>,
        max_object: u64,
        progress: &dyn Progress,
    ) -> Result<Applied> {
        let sb = self.superblock.clone();
        if let Some(trust) = trust {
            let meta = if sb.commitmeta.is_empty() {
                Metadata::new()
            } else {
                Metadata::from_bytes_as("commitmeta", &sb.commitmeta)?
            };
            let sigs = sigfmt::signatures(&meta)?;
            trust.check(&format!("commit {}", sb.to), &sb.commit, &sigs)?;
        }
        let txn = repo.begin()?;
        let mut applier = Applier::new(&txn, &sb, max_object)?;
        progress.start("applying", Unit::Bytes, Some(sb.parts_size()));
        for n in 0..sb.parts.len() {
            applier.check_part(n, &mut self.part(n)?)?;
            applier.apply_part(n, &mut self.part(n)?)?;
            progress.inc(sb.parts[n].size);
        }
        progress.finish();
        let applied = applier.applied;
        // A bundle must yield the whole commit: check before anything is
        // published, so a bad bundle leaves the repository as it was.
        applier.check_complete().with_context(|| format!("bundle for commit {}", sb.to))?;
        txn.commit()?;
        Ok(applied)
    }
}
