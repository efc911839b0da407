//! Signing and verifying commits with ed25519, byte-compatible with
//! `ostree sign` (formats in `repo-format/src/sign.rs`).
//!
//! Key files: `repo keygen --output FILE` writes FILE (the secret key,
//! mode 0600) and FILE.pub. Trust comes from key files and directories
//! given on the command line or in a remote's config, plus the system-wide
//! `/etc/ostree/trusted.ed25519{,.d/*}` that OSTree also reads; keys listed
//! in `revoked.ed25519{,.d/*}` never verify anything.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use repo_format::sign::{self as fmt, PublicKey, SecretKey, Verdict};
use repo_format::{Checksum, ObjectType};

use crate::fsutil::{self, Dir};
use crate::repo::Repo;

/// Creates a key pair: `output` (secret) and `output.pub`. Refuses to
/// overwrite either.
pub fn keygen(output: &Path) -> Result<PublicKey> {
    let mut seed = [0u8; 32];
    let mut filled = 0;
    while filled < seed.len() {
        filled += rustix::rand::getrandom(&mut seed[filled..], rustix::rand::GetRandomFlags::empty())
            .map_err(std::io::Error::from)
            .context("reading random bytes")?;
    }
    let sk = SecretKey::from_seed(&seed);
    let pub_path = pub_path(output);
    let (parent, name) = split(output)?;
    let dir = Dir::open(parent).with_context(|| format!("opening {}", parent.display()))?;
    for p in [output, pub_path.as_path()] {
        if std::fs::symlink_metadata(p).is_ok() {
            bail!("{} already exists; choose another --output", p.display());
        }
    }
    let pub_name = format!("{}.pub", name.display());
    dir.write_atomic(name, format!("{}\n", sk.to_base64()).as_bytes(), 0o600)
        .with_context(|| format!("writing {}", output.display()))?;
    dir.write_atomic(&pub_name, format!("{}\n", sk.public().to_base64()).as_bytes(), 0o644)
        .with_context(|| format!("writing {}", pub_path.display()))?;
    Ok(sk.public())
}

fn pub_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

fn split(p: &Path) -> Result<(&Path, &Path)> {
    let name = p.file_name().ok_or_else(|| anyhow!("{}: needs a file name", p.display()))?;
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok((parent, Path::new(name)))
}

/// Reads a secret key file.
pub fn load_secret_key(path: &Path) -> Result<SecretKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading secret key {}", path.display()))?;
    fmt::parse_secret_key(&text).with_context(|| format!("{}: not an ed25519 secret key", path.display()))
}

/// Reads every public key in a file.
pub fn load_public_keys(path: &Path) -> Result<Vec<PublicKey>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading public key file {}", path.display()))?;
    fmt::parse_public_keys(&text).with_context(|| format!("{}: not an ed25519 public key file", path.display()))
}

/// Reads every key file in a directory (sorted; missing directory = none).
pub fn load_public_key_dir(dir: &Path) -> Result<Vec<PublicKey>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if fsutil::is_not_found(&e) => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    paths.sort();
    for p in paths {
        out.extend(load_public_keys(&p)?);
    }
    Ok(out)
}

/// Keys that may verify, and keys that never may.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    /// Trusted keys.
    pub trusted: Vec<PublicKey>,
    /// Revoked keys (win over trusted).
    pub revoked: Vec<PublicKey>,
}

impl TrustStore {
    /// Adds the system-wide files OSTree reads below `sysroot`:
    /// `etc/ostree/{trusted,revoked}.ed25519` and their `.d` directories,
    /// and the same under `usr/share/ostree`.
    pub fn add_system(&mut self, sysroot: &Path, trusted: bool) -> Result<()> {
        let kind = if trusted { "trusted" } else { "revoked" };
        for base in ["etc/ostree", "usr/share/ostree"] {
            let file = sysroot.join(base).join(format!("{kind}.ed25519"));
            let keys = match std::fs::metadata(&file) {
                Ok(_) => load_public_keys(&file)?,
                Err(_) => Vec::new(),
            };
            let dir_keys = load_public_key_dir(&sysroot.join(base).join(format!("{kind}.ed25519.d")))?;
            let target = if trusted { &mut self.trusted } else { &mut self.revoked };
            target.extend(keys);
            target.extend(dir_keys);
        }
        Ok(())
    }

    /// Checks signatures of `msg`; `what` names the signed thing in errors.
    pub fn check(&self, what: &str, msg: &[u8], sigs: &[Vec<u8>]) -> Result<PublicKey, SignatureError> {
        if self.trusted.is_empty() {
            return Err(SignatureError::NoTrustedKeys { what: what.to_owned() });
        }
        match fmt::verify(msg, sigs, &self.trusted, &self.revoked) {
            Verdict::Valid(k) => Ok(k),
            Verdict::Unsigned => Err(SignatureError::Unsigned { what: what.to_owned() }),
            Verdict::Untrusted { revoked, .. } if !revoked.is_empty() => {
                Err(SignatureError::Revoked { what: what.to_owned(), key: revoked[0].to_base64() })
            }
            Verdict::Untrusted { signatures, .. } => {
                Err(SignatureError::Untrusted { what: what.to_owned(), signatures })
            }
        }
    }
}

/// Why a signature check failed. Always fatal: nothing signed by an
/// untrusted key is ever used.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// Nothing to check against.
    #[error(
        "{what}: no trusted ed25519 keys are configured; add one with --trusted-key (or disable verification explicitly)"
    )]
    NoTrustedKeys {
        /// What was being checked.
        what: String,
    },
    /// No signature at all.
    #[error("{what} is not signed (no ostree.sign.ed25519 signature); refusing it")]
    Unsigned {
        /// What was being checked.
        what: String,
    },
    /// Signed, but not by any trusted key.
    #[error("{what}: none of its {signatures} signature(s) is from a trusted key; refusing it")]
    Untrusted {
        /// What was being checked.
        what: String,
        /// How many signatures there were.
        signatures: usize,
    },
    /// Signed only by a revoked key.
    #[error("{what} is signed by revoked key {key}; refusing it")]
    Revoked {
        /// What was being checked.
        what: String,
        /// The revoked key (base64).
        key: String,
    },
}

/// Appends signatures by `keys` to a commit's detached metadata.
pub fn sign_commit(repo: &Repo, commit: &Checksum, keys: &[SecretKey]) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let data = repo.read_metadata(commit, ObjectType::Commit)?;
    let mut meta = repo.load_detached_metadata(commit)?.unwrap_or_default();
    for k in keys {
        fmt::add_signature(&mut meta, &k.sign(&data))?;
    }
    let txn = repo.begin()?;
    txn.write_detached_metadata(commit, &meta)?;
    txn.commit()?;
    Ok(())
}

/// Verifies a commit's signatures; returns the key that verified.
pub fn verify_commit(repo: &Repo, commit: &Checksum, trust: &TrustStore) -> Result<PublicKey> {
    let data = repo.read_metadata(commit, ObjectType::Commit)?;
    let meta = repo.load_detached_metadata(commit)?.unwrap_or_default();
    let sigs = fmt::signatures(&meta).with_context(|| format!("detached metadata of {commit}"))?;
    Ok(trust.check(&format!("commit {commit}"), &data, &sigs)?)
}
