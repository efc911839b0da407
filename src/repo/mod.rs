//! The object store: an OSTree-compatible repository on disk.
//!
//! Layout and modes follow OSTree exactly (`config`, `objects/XX/…`,
//! `refs/heads`, `refs/remotes`, `state/`, `tmp/`), so the real `ostree`
//! reads what we write and we read what it writes.

pub mod checkout;
pub mod commit;
pub mod copy;
pub mod delta;
pub mod diff;
pub mod fsck;
pub mod keyfile;
pub mod objects;
pub mod prune;
pub mod refs;
pub mod rev;
pub mod summary;
pub mod traverse;
pub mod tree;
pub mod write;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use repo_format::{Checksum, ObjectType};

use crate::fsutil::{self, Dir};
use keyfile::KeyFile;

/// How content objects are stored (OSTree's repo modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RepoMode {
    /// Files as themselves, with real owner, mode and xattrs (needs root).
    Bare,
    /// Files owned by the current user; real metadata in `user.ostreemeta`.
    BareUser,
    /// Files owned by the current user; owner and xattrs are not kept.
    BareUserOnly,
    /// Compressed `.filez` objects, for serving over HTTP.
    Archive,
}

impl RepoMode {
    /// The `mode=` value in `config` (OSTree writes `archive-z2` for archive).
    pub fn config_name(self) -> &'static str {
        match self {
            RepoMode::Bare => "bare",
            RepoMode::BareUser => "bare-user",
            RepoMode::BareUserOnly => "bare-user-only",
            RepoMode::Archive => "archive-z2",
        }
    }

    /// Parses a `mode=` value.
    pub fn from_config_name(s: &str) -> Option<Self> {
        Some(match s {
            "bare" => RepoMode::Bare,
            "bare-user" => RepoMode::BareUser,
            "bare-user-only" => RepoMode::BareUserOnly,
            "archive" | "archive-z2" => RepoMode::Archive,
            _ => return None,
        })
    }

    /// True for archive mode.
    pub fn is_archive(self) -> bool {
        self == RepoMode::Archive
    }
}

/// Repository format version we write and accept (`[core] repo_version`).
const REPO_VERSION: &str = "1";

/// Directories every repository has (what `ostree init` creates).
const REPO_DIRS: &[&str] =
    &["objects", "refs", "refs/heads", "refs/remotes", "refs/mirrors", "state", "tmp", "tmp/cache", "extensions"];

/// An open repository.
#[derive(Debug)]
pub struct Repo {
    dir: Dir,
    objects: Dir,
    tmp: Dir,
    mode: RepoMode,
    config: KeyFile,
}

/// A missing object: callers branch on it (fsck reports it, pull fetches it).
#[derive(Debug, thiserror::Error)]
#[error("{objtype} object {checksum} is missing from the repository; run `repo fsck`, or pull the commit again")]
pub struct ObjectMissing {
    /// Object id.
    pub checksum: Checksum,
    /// Object kind.
    pub objtype: ObjectType,
}

impl Repo {
    /// Creates a repository at `path` (the directory may exist if empty).
    pub fn init(path: &Path, mode: RepoMode) -> Result<Repo> {
        match std::fs::create_dir(path) {
            Ok(()) => {}
            Err(e) if fsutil::is_exists(&e) => {
                if path.join("config").exists() {
                    bail!("{} is already a repository", path.display());
                }
                let mut it = std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))?;
                if it.next().is_some() {
                    bail!("{} exists and is not empty; choose an empty or new directory", path.display());
                }
            }
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
        let dir = Dir::open(path).with_context(|| format!("opening {}", path.display()))?;
        for d in REPO_DIRS {
            dir.ensure_dir(d, 0o755).with_context(|| format!("creating {}", dir.display(d).display()))?;
        }
        let mut config = KeyFile::new();
        config.set("core", "repo_version", REPO_VERSION);
        config.set("core", "mode", mode.config_name());
        dir.write_atomic("config", config.to_text().as_bytes(), 0o644)
            .with_context(|| format!("writing {}/config", path.display()))?;
        dir.fsync()?;
        Self::open(path)
    }

    /// Opens an existing repository.
    pub fn open(path: &Path) -> Result<Repo> {
        let dir = Dir::open(path)
            .with_context(|| format!("opening repository {}; create one with `repo init`", path.display()))?;
        let text = match dir.open_file_optional("config")? {
            Some(f) => std::io::read_to_string(f).with_context(|| format!("reading {}/config", path.display()))?,
            None => bail!("{} is not a repository (no config file); create one with `repo init`", path.display()),
        };
        let config = KeyFile::parse(&text).with_context(|| format!("parsing {}/config", path.display()))?;
        match config.get("core", "repo_version") {
            Some(REPO_VERSION) => {}
            other => bail!("{}/config: unsupported repo_version {:?}", path.display(), other),
        }
        let mode_name = config.get("core", "mode").unwrap_or("bare");
        let Some(mode) = RepoMode::from_config_name(mode_name) else {
            bail!("{}/config: unsupported repository mode {mode_name:?}", path.display());
        };
        let objects = dir.open_dir("objects").with_context(|| format!("opening {}/objects", path.display()))?;
        dir.ensure_dir("tmp", 0o755)?;
        let tmp = dir.open_dir("tmp")?;
        Ok(Repo { dir, objects, tmp, mode, config })
    }

    /// The repository's mode.
    pub fn mode(&self) -> RepoMode {
        self.mode
    }

    /// The path it was opened as.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The top directory handle.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// The `objects/` handle.
    pub fn objects_dir(&self) -> &Dir {
        &self.objects
    }

    /// The `tmp/` handle.
    pub fn tmp_dir(&self) -> &Dir {
        &self.tmp
    }

    /// The parsed `config`.
    pub fn config(&self) -> &KeyFile {
        &self.config
    }

    /// Replaces `config` atomically.
    pub fn write_config(&mut self, config: KeyFile) -> Result<()> {
        self.dir.write_atomic("config", config.to_text().as_bytes(), 0o644).context("writing repository config")?;
        self.config = config;
        Ok(())
    }

    /// `XX/REST.ext`, relative to `objects/`.
    pub fn loose_path(&self, checksum: &Checksum, objtype: ObjectType) -> PathBuf {
        loose_path(checksum, objtype, self.mode)
    }

    /// Path for messages: `<repo>/objects/XX/REST.ext`.
    pub fn display_object(&self, checksum: &Checksum, objtype: ObjectType) -> PathBuf {
        self.objects.display(self.loose_path(checksum, objtype))
    }

    /// True if the object is stored.
    pub fn has_object(&self, checksum: &Checksum, objtype: ObjectType) -> Result<bool> {
        Ok(self.objects.stat_optional(self.loose_path(checksum, objtype))?.is_some())
    }
}

/// `XX/REST.ext` for an object in a repository of `mode`.
pub fn loose_path(checksum: &Checksum, objtype: ObjectType, mode: RepoMode) -> PathBuf {
    let hex = checksum.to_hex();
    PathBuf::from(format!("{}/{}.{}", &hex[..2], &hex[2..], objtype.extension(mode.is_archive())))
}
