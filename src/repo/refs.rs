//! Refs: `refs/heads/NAME` for local branches, `refs/remotes/REMOTE/NAME`
//! for what was pulled. A ref file holds 64 hex digits and a newline and is
//! replaced atomically (temp, fsync, rename, fsync the directory).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use repo_format::Checksum;
use repo_format::name::{validate_ref, validate_remote_name};

use super::Repo;
use crate::fsutil::{Dir, FileType};

/// A ref name with an optional remote: `name` or `remote:name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RefSpec {
    /// The remote, for refs under `refs/remotes`.
    pub remote: Option<String>,
    /// The ref name, e.g. `os/x86_64/stable`.
    pub name: String,
}

impl RefSpec {
    /// Parses `name` or `remote:name`, validating both parts.
    pub fn parse(s: &str) -> Result<RefSpec> {
        let (remote, name) = match s.split_once(':') {
            Some((r, n)) => (Some(r), n),
            None => (None, s),
        };
        if let Some(r) = remote {
            validate_remote_name(r).map_err(|e| anyhow!("invalid remote name {r:?}: {e}"))?;
        }
        validate_ref(name).map_err(|e| anyhow!("invalid ref name {name:?}: {e}"))?;
        Ok(RefSpec { remote: remote.map(str::to_owned), name: name.to_owned() })
    }

    /// A local ref.
    pub fn local(name: &str) -> Result<RefSpec> {
        validate_ref(name).map_err(|e| anyhow!("invalid ref name {name:?}: {e}"))?;
        Ok(RefSpec { remote: None, name: name.to_owned() })
    }

    /// Path below the repository root.
    fn path(&self) -> PathBuf {
        match &self.remote {
            Some(r) => Path::new("refs/remotes").join(r).join(&self.name),
            None => Path::new("refs/heads").join(&self.name),
        }
    }
}

impl std::fmt::Display for RefSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.remote {
            Some(r) => write!(f, "{r}:{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

fn parse_ref_file(shown: &Path, data: &str) -> Result<Checksum> {
    let hex = data.strip_suffix('\n').unwrap_or(data);
    Checksum::from_hex(hex).with_context(|| format!("{}: not a ref file", shown.display()))
}

impl Repo {
    /// The commit a ref points at, `None` if the ref does not exist.
    pub fn resolve_ref(&self, spec: &RefSpec) -> Result<Option<Checksum>> {
        self.read_ref_path(&spec.path())
    }

    fn read_ref_path(&self, rel: &Path) -> Result<Option<Checksum>> {
        let shown = self.dir().display(rel);
        match self.dir().stat_optional(rel) {
            Ok(Some(st)) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {}
            Ok(Some(_)) => return Ok(None),
            Ok(None) => return Ok(None),
            // A missing or non-directory parent means no such ref.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", shown.display())),
        }
        let mut f = self.dir().open_file(rel).with_context(|| format!("opening {}", shown.display()))?;
        let mut data = String::new();
        // 64 hex digits and a newline; anything much longer is not a ref.
        (&mut f).take(128).read_to_string(&mut data).with_context(|| format!("reading {}", shown.display()))?;
        parse_ref_file(&shown, &data).map(Some)
    }

    /// Points a ref at `commit` (atomically), or deletes it with `None`.
    pub fn set_ref(&self, spec: &RefSpec, commit: Option<&Checksum>) -> Result<()> {
        let rel = spec.path();
        let parent = rel.parent().ok_or_else(|| anyhow!("bad ref path"))?;
        let name = rel.file_name().ok_or_else(|| anyhow!("bad ref path"))?;
        match commit {
            Some(c) => {
                self.dir()
                    .ensure_dir_all(parent, 0o755)
                    .with_context(|| format!("creating {}", self.dir().display(parent).display()))?;
                let d = self.dir().open_dir(parent)?;
                d.write_atomic(name, format!("{c}\n").as_bytes(), 0o644).with_context(|| format!("writing ref {spec}"))
            }
            None => {
                let Some(d) = self.dir().open_dir_optional(parent)? else { bail!("ref {spec} does not exist") };
                match d.unlink(name) {
                    Ok(()) => d.fsync().context("syncing refs directory"),
                    Err(e) if crate::fsutil::is_not_found(&e) => bail!("ref {spec} does not exist"),
                    Err(e) => Err(e).with_context(|| format!("deleting ref {spec}")),
                }
            }
        }
    }

    /// Every ref: local ones by name, remote ones as `remote:name`.
    pub fn list_refs(&self) -> Result<BTreeMap<RefSpec, Checksum>> {
        let mut out = BTreeMap::new();
        if let Some(heads) = self.dir().open_dir_optional("refs/heads")? {
            for (name, c) in walk_refs(&heads, "")? {
                out.insert(RefSpec { remote: None, name }, c);
            }
        }
        if let Some(remotes) = self.dir().open_dir_optional("refs/remotes")? {
            for e in remotes.sorted_entries()? {
                let Some(remote) = e.name.to_str().map(str::to_owned) else { continue };
                if validate_remote_name(&remote).is_err() {
                    continue;
                }
                let Some(d) = remotes.open_dir_optional(&remote)? else { continue };
                for (name, c) in walk_refs(&d, "")? {
                    out.insert(RefSpec { remote: Some(remote.clone()), name }, c);
                }
            }
        }
        Ok(out)
    }
}

fn walk_refs(dir: &Dir, prefix: &str) -> Result<Vec<(String, Checksum)>> {
    let mut out = Vec::new();
    for e in dir.sorted_entries()? {
        let Some(name) = e.name.to_str() else { continue };
        if name.starts_with('.') {
            continue; // temp files of an update in progress
        }
        let full = if prefix.is_empty() { name.to_owned() } else { format!("{prefix}/{name}") };
        let st = dir.stat(name)?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let sub = dir.open_dir(name)?;
                out.extend(walk_refs(&sub, &full)?);
            }
            FileType::RegularFile if validate_ref(&full).is_ok() => {
                let mut data = String::new();
                dir.open_file(name)?.take(128).read_to_string(&mut data)?;
                out.push((full.clone(), parse_ref_file(&dir.display(name), &data)?));
            }
            _ => {}
        }
    }
    Ok(out)
}
