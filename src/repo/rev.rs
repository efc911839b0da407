//! REV syntax (CLI.md): a ref, `remote:ref`, a 64-hex checksum, a unique
//! checksum prefix, each optionally followed by `^` (parent), repeatable.

use anyhow::{Context, Result, anyhow, bail};
use repo_format::checksum::is_lower_hex;
use repo_format::{Checksum, ObjectType};

use super::Repo;
use super::refs::RefSpec;

/// Shortest checksum prefix we resolve (shorter ones match too much).
const MIN_PREFIX_LEN: usize = 4;

impl Repo {
    /// Resolves a REV to a commit id. Refs win over prefixes, as in OSTree.
    pub fn resolve_rev(&self, rev: &str) -> Result<Checksum> {
        let base = rev.trim_end_matches('^');
        let parents = rev.len() - base.len();
        let mut c = self.resolve_base(base)?;
        for i in 0..parents {
            let commit = self.load_commit(&c).with_context(|| format!("resolving {rev}"))?;
            c = commit.parent.ok_or_else(|| anyhow!("{}{} has no parent", base, "^".repeat(i)))?;
        }
        Ok(c)
    }

    fn resolve_base(&self, rev: &str) -> Result<Checksum> {
        if rev.is_empty() {
            bail!("empty REV");
        }
        if let Ok(c) = Checksum::from_hex(rev) {
            return Ok(c);
        }
        if let Ok(spec) = RefSpec::parse(rev) {
            if let Some(c) = self.resolve_ref(&spec)? {
                return Ok(c);
            }
            // `remote/name` written without the colon.
            if spec.remote.is_none()
                && let Some((remote, name)) = rev.split_once('/')
                && let Ok(spec) = RefSpec::parse(&format!("{remote}:{name}"))
                && let Some(c) = self.resolve_ref(&spec)?
            {
                return Ok(c);
            }
        }
        if rev.len() >= MIN_PREFIX_LEN && rev.len() < 64 && rev.bytes().all(is_lower_hex) {
            return self.resolve_prefix(rev);
        }
        bail!(
            "{rev:?} is not a ref, a commit checksum or a checksum prefix in {}; see `repo refs`",
            self.path().display()
        )
    }

    fn resolve_prefix(&self, prefix: &str) -> Result<Checksum> {
        let (dir, rest) = prefix.split_at(2);
        let mut found = Vec::new();
        if let Some(d) = self.objects_dir().open_dir_optional(dir)? {
            for e in d.entries()? {
                let e = e?;
                let Some(name) = e.name.to_str() else { continue };
                let Some(stem) = name.strip_suffix(".commit") else { continue };
                if stem.starts_with(rest)
                    && let Ok(c) = Checksum::from_hex(&format!("{dir}{stem}"))
                {
                    found.push(c);
                }
            }
        }
        match found.len() {
            0 => bail!("no commit matches {prefix:?}"),
            1 => Ok(found[0]),
            n => bail!("{prefix:?} is ambiguous: {n} commits match; give more digits"),
        }
    }

    /// True if the commit object is present.
    pub fn has_commit(&self, c: &Checksum) -> Result<bool> {
        self.has_object(c, ObjectType::Commit)
    }
}
