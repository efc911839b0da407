//! `photon-upgrade repo ...`: arguments and output of the repository commands.

use std::io::Write;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use repo_format::mode::{is_dir, is_symlink};
use repo_format::variant::{Dyn, Type};
use repo_format::{Checksum, Commit, Metadata};
use serde::Serialize;
use serde_json::json;

use super::Cli;
use super::output::{self, format_time};
use crate::repo::checkout::{CheckoutOptions, checkout};
use crate::repo::commit::{CommitOptions, Parent, Source, commit};
use crate::repo::diff::diff;
use crate::repo::fsck::fsck;
use crate::repo::prune::{PruneOptions, prune};
use crate::repo::refs::RefSpec;
use crate::repo::summary::SummaryOptions;
use crate::repo::tree::PathEntry;
use crate::repo::{Repo, RepoMode};
use crate::sign;

/// Repository commands.
#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Create a repository.
    Init {
        /// Storage mode (`archive` is what a publisher serves).
        #[arg(long, value_enum, default_value = "bare-user")]
        mode: RepoMode,
    },
    /// Commit a directory or tar archive to a branch; prints the commit.
    Commit(CommitArgs),
    /// Show a commit and its ancestors.
    Log {
        /// Commit to start from.
        rev: String,
    },
    /// Show one commit.
    Show {
        /// Commit.
        rev: String,
    },
    /// List a tree.
    Ls {
        /// Commit.
        rev: String,
        /// Path inside the tree.
        #[arg(default_value = "/")]
        path: String,
        /// Recurse into directories.
        #[arg(short = 'R', long)]
        recursive: bool,
    },
    /// Print a file of a tree.
    Cat {
        /// Commit.
        rev: String,
        /// Path inside the tree.
        path: String,
    },
    /// List refs, or delete one.
    Refs {
        /// Delete this ref.
        #[arg(long, value_name = "REF")]
        delete: Option<String>,
    },
    /// Print the commit a REV names.
    RevParse {
        /// Ref, remote:ref, checksum or unique prefix, with optional ^.
        rev: String,
    },
    /// List paths that differ between two commits.
    Diff {
        /// Old commit.
        from: String,
        /// New commit.
        to: String,
    },
    /// Materialise a tree into a new directory.
    Checkout(CheckoutArgs),
    /// Re-hash every object and check every reference.
    Fsck {
        /// Delete corrupt objects (and mark the commits that need them partial).
        #[arg(long)]
        delete_corrupt: bool,
    },
    /// Delete unreachable objects.
    Prune(PruneArgs),
    /// Make an ed25519 key pair: FILE (secret, mode 0600) and FILE.pub.
    Keygen {
        /// Where to write the secret key.
        #[arg(long, short, value_name = "FILE")]
        output: PathBuf,
    },
    /// Sign a commit (appends to its detached metadata).
    Sign {
        /// Commit.
        rev: String,
        /// Secret key file.
        #[arg(long, value_name = "FILE", required = true)]
        key: Vec<PathBuf>,
    },
    /// Check a commit's signatures against trusted keys.
    Verify(VerifyArgs),
    /// Regenerate the summary (refs, commit sizes and dates, deltas) for publishing.
    Summary(SummaryArgs),
    /// Deltas and offline bundles.
    #[command(subcommand)]
    Delta(super::delta_cmd::DeltaCommand),
}

/// `repo verify` arguments.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Commit.
    rev: String,
    /// File of trusted public keys (one base64 key per line).
    #[arg(long, value_name = "FILE")]
    trusted_key: Vec<PathBuf>,
    /// Directory of trusted key files.
    #[arg(long, value_name = "DIR")]
    trusted_keys_dir: Vec<PathBuf>,
    /// File of revoked public keys.
    #[arg(long, value_name = "FILE")]
    revoked_key: Vec<PathBuf>,
}

/// `repo summary` arguments.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// Write the summary (required: this is the only action).
    #[arg(long, short, required = true)]
    update: bool,
    /// Sign `summary` with this secret key (writes `summary.sig`).
    #[arg(long, value_name = "FILE")]
    sign_key: Vec<PathBuf>,
    /// How long clients may trust this summary, e.g. `7d` [default: 30d when signing].
    #[arg(long, value_name = "DURATION")]
    expires_in: Option<String>,
}

/// `repo commit` arguments.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Branch to commit to.
    #[arg(short, long, value_name = "REF")]
    branch: String,
    /// One-line subject.
    #[arg(short, long, default_value = "")]
    subject: String,
    /// Longer description.
    #[arg(long, default_value = "")]
    body: String,
    /// Version string (metadata key `version`).
    #[arg(long)]
    version: Option<String>,
    /// Extra string metadata.
    #[arg(long = "add-metadata", value_name = "K=V")]
    add_metadata: Vec<String>,
    /// Seconds since the epoch or RFC 3339 [default: SOURCE_DATE_EPOCH, else now].
    #[arg(long, value_name = "T")]
    timestamp: Option<String>,
    /// Parent commit, or `none` [default: the branch's current commit].
    #[arg(long, value_name = "REV|none")]
    parent: Option<String>,
    /// Sign the new commit with this secret key (repeatable).
    #[arg(long, value_name = "FILE")]
    sign_key: Vec<PathBuf>,
    /// Owner of every file and directory.
    #[arg(long, value_name = "N", requires = "owner_gid")]
    owner_uid: Option<u32>,
    /// Group of every file and directory.
    #[arg(long, value_name = "N", requires = "owner_uid")]
    owner_gid: Option<u32>,
    /// A directory, a tar archive (.tar, .tar.gz, .tar.zst) or `-` for a tar on stdin.
    source: String,
}

/// `repo checkout` arguments.
#[derive(Debug, Args)]
pub struct CheckoutArgs {
    /// Commit.
    rev: String,
    /// New directory to create.
    dest: PathBuf,
    /// Hardlink files from the repository (bare modes only).
    #[arg(long, short = 'H')]
    hardlink: bool,
    /// Only this path of the tree.
    #[arg(long, value_name = "P")]
    subpath: Option<String>,
    /// Do not set owners or xattrs; strip setuid/setgid.
    #[arg(long, short = 'U')]
    user_mode: bool,
}

/// `repo prune` arguments.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Keep only what refs reach.
    #[arg(long)]
    refs_only: bool,
    /// Keep commits newer than this, e.g. `30d`, `2w`, `12h`, or an RFC 3339 time.
    #[arg(long, value_name = "DURATION")]
    keep_younger_than: Option<String>,
    /// Parents to keep behind each ref (-1: all).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    depth: Option<i64>,
    /// Only report what would be deleted.
    #[arg(long)]
    dry_run: bool,
}

/// Runs a repository command.
pub fn run(cli: &Cli, cmd: &RepoCommand) -> Result<ExitCode> {
    let path = cli.repo_path();
    if let RepoCommand::Keygen { output } = cmd {
        let key = sign::keygen(output)?;
        if cli.json {
            output::json("KeyPair", &json!({"secretKeyFile": output, "publicKey": key.to_base64()}))?;
        } else {
            output::lines([key.to_base64()])?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let RepoCommand::Init { mode } = cmd {
        let repo = Repo::init(&path, *mode)?;
        if cli.json {
            output::json("Repo", &json!({"path": repo.path(), "mode": repo.mode()}))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let repo = Repo::open(&path)?;
    match cmd {
        RepoCommand::Init { .. } => unreachable!("handled above"),
        RepoCommand::Commit(a) => cmd_commit(cli, &repo, a),
        RepoCommand::Log { rev } => cmd_log(cli, &repo, rev),
        RepoCommand::Show { rev } => {
            let c = repo.resolve_rev(rev)?;
            let info = CommitInfo::load(&repo, &c)?;
            if cli.json {
                output::json("Commit", &info)?;
            } else {
                output::lines(info.text_lines())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        RepoCommand::Ls { rev, path, recursive } => cmd_ls(cli, &repo, rev, path, *recursive),
        RepoCommand::Cat { rev, path } => cmd_cat(&repo, rev, path),
        RepoCommand::Refs { delete } => cmd_refs(cli, &repo, delete.as_deref()),
        RepoCommand::RevParse { rev } => {
            let c = repo.resolve_rev(rev)?;
            if cli.json {
                output::json("RevParse", &json!({"rev": rev, "commit": c.to_hex()}))?;
            } else {
                output::lines([c.to_hex()])?;
            }
            Ok(ExitCode::SUCCESS)
        }
        RepoCommand::Diff { from, to } => {
            let (a, b) = (repo.resolve_rev(from)?, repo.resolve_rev(to)?);
            let entries = diff(&repo, &a, &b)?;
            if cli.json {
                output::json("Diff", &json!({"from": a.to_hex(), "to": b.to_hex(), "changes": entries}))?;
            } else {
                output::lines(entries.iter().map(|e| format!("{}    {}", e.change.letter(), e.path)))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        RepoCommand::Checkout(a) => {
            let c = repo.resolve_rev(&a.rev)?;
            let opts = CheckoutOptions { hardlink: a.hardlink, user_mode: a.user_mode, subpath: a.subpath.clone() };
            let progress = cli.progress();
            let stats = checkout(&repo, &c, &a.dest, &opts, progress.as_ref())?;
            if cli.json {
                output::json("Checkout", &json!({"commit": c.to_hex(), "dest": a.dest, "stats": stats}))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        RepoCommand::Fsck { delete_corrupt } => {
            let progress = cli.progress();
            let report = fsck(&repo, *delete_corrupt, progress.as_ref())?;
            if cli.json {
                output::json("FsckReport", &report)?;
            } else {
                for p in &report.problems {
                    eprintln!("error: {} {} {}: {}", p.kind, p.objtype, p.checksum, p.reason);
                }
                if !cli.quiet {
                    eprintln!(
                        "checked {} objects, {} commits ({} partial): {} problems{}",
                        report.objects_checked,
                        report.commits_checked,
                        report.partial_commits,
                        report.problems.len(),
                        if report.deleted > 0 {
                            format!(", {} corrupt objects deleted", report.deleted)
                        } else {
                            String::new()
                        }
                    );
                }
            }
            Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        RepoCommand::Prune(a) => cmd_prune(cli, &repo, a),
        RepoCommand::Delta(d) => super::delta_cmd::run(cli, &repo, d),
        RepoCommand::Keygen { .. } => unreachable!("handled above"),
        RepoCommand::Sign { rev, key } => {
            let c = repo.resolve_rev(rev)?;
            let keys = key.iter().map(|k| sign::load_secret_key(k)).collect::<Result<Vec<_>>>()?;
            sign::sign_commit(&repo, &c, &keys)?;
            if cli.json {
                let pubs: Vec<String> = keys.iter().map(|k| k.public().to_base64()).collect();
                output::json("Signature", &json!({"commit": c.to_hex(), "keys": pubs}))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        RepoCommand::Verify(a) => {
            let c = repo.resolve_rev(&a.rev)?;
            let mut trust = super::delta_cmd::cli_trust(cli, &repo, &a.trusted_key, &a.trusted_keys_dir, None)?;
            for f in &a.revoked_key {
                trust.revoked.extend(sign::load_public_keys(f)?);
            }
            let key = sign::verify_commit(&repo, &c, &trust)?;
            if cli.json {
                output::json("Verification", &json!({"commit": c.to_hex(), "valid": true, "key": key.to_base64()}))?;
            } else if !cli.quiet {
                output::lines([format!("commit {c}: good ed25519 signature from key {}", key.to_base64())])?;
            }
            Ok(ExitCode::SUCCESS)
        }
        RepoCommand::Summary(a) => {
            debug_assert!(a.update);
            let keys = a.sign_key.iter().map(|k| sign::load_secret_key(k)).collect::<Result<Vec<_>>>()?;
            let valid_for = match (&a.expires_in, keys.is_empty()) {
                (Some(d), _) => Some(parse_duration(d)?),
                (None, false) => Some(DEFAULT_SUMMARY_VALIDITY),
                (None, true) => None,
            };
            let updated = crate::repo::summary::update(&repo, &SummaryOptions { sign_keys: keys, valid_for }, now())?;
            for w in &updated.warnings {
                eprintln!("warning: {w}");
            }
            let s = updated.summary;
            if cli.json {
                let refs: Vec<_> = s
                    .refs()
                    .iter()
                    .map(|r| json!({"ref": r.name, "commit": r.checksum.to_hex(), "timestamp": r.timestamp(), "version": r.version()}))
                    .collect();
                output::json(
                    "Summary",
                    &json!({"refs": refs, "lastModified": s.last_modified(), "expires": s.expires(), "signed": !a.sign_key.is_empty()}),
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// How long a signed summary stays valid unless `--expires-in` says
/// otherwise: publishers re-sign at least this often, and a client refuses
/// an older summary replayed at it after this (freeze attack).
const DEFAULT_SUMMARY_VALIDITY: u64 = 30 * 86_400;

fn parse_timestamp(s: &str) -> Result<u64> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let t: jiff::Timestamp =
        s.parse().with_context(|| format!("{s:?} is neither seconds since the epoch nor an RFC 3339 time"))?;
    u64::try_from(t.as_second()).map_err(|_| anyhow!("{s:?} is before 1970"))
}

use super::now;

fn cmd_commit(cli: &Cli, repo: &Repo, a: &CommitArgs) -> Result<ExitCode> {
    let branch = RefSpec::local(&a.branch)?;
    let timestamp = match (&a.timestamp, std::env::var("SOURCE_DATE_EPOCH")) {
        (Some(t), _) => parse_timestamp(t)?,
        (None, Ok(e)) if !e.is_empty() => {
            e.trim().parse().with_context(|| format!("SOURCE_DATE_EPOCH={e:?} is not a number of seconds"))?
        }
        _ => now(),
    };
    let parent = match a.parent.as_deref() {
        None => Parent::Branch,
        Some("none") => Parent::None,
        Some(rev) => Parent::Commit(repo.resolve_rev(rev)?),
    };
    let metadata = a
        .add_metadata
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow!("--add-metadata {kv:?}: expected KEY=VALUE"))
        })
        .collect::<Result<Vec<_>>>()?;
    let opts = CommitOptions {
        branch,
        subject: a.subject.clone(),
        body: a.body.clone(),
        version: a.version.clone(),
        metadata,
        timestamp,
        parent,
        owner: a.owner_uid.zip(a.owner_gid),
    };
    let source = Source::from_arg(&a.source);
    // Read keys before committing: a bad key file must not leave an unsigned commit on the branch.
    let keys = a.sign_key.iter().map(|k| sign::load_secret_key(k)).collect::<Result<Vec<_>>>()?;
    let progress = cli.progress();
    let out = commit(repo, &source, &opts, progress.as_ref(), |c| sign::sign_commit(repo, c, &keys))?;
    if cli.json {
        output::json(
            "Commit",
            &json!({"commit": out.commit.to_hex(), "parent": out.parent.map(|p| p.to_hex()), "branch": a.branch, "files": out.files, "dirs": out.dirs, "written": out.written}),
        )?;
    } else {
        output::lines([out.commit.to_hex()])?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A commit as shown by `show`, `log` and their JSON.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CommitInfo {
    commit: String,
    parent: Option<String>,
    subject: String,
    body: String,
    timestamp: u64,
    version: Option<String>,
    root_tree: String,
    root_meta: String,
    metadata: serde_json::Map<String, serde_json::Value>,
    detached_metadata: serde_json::Map<String, serde_json::Value>,
    partial: bool,
}

fn value_json(v: &repo_format::Value) -> serde_json::Value {
    match v.decode() {
        Some((ty, d)) => dyn_json(&ty, &d),
        None => json!({"type": v.type_str(), "hex": hex::encode(v.data())}),
    }
}

/// JSON for any GVariant value: byte arrays as hex, string-keyed
/// dictionaries as objects, tuples as arrays.
fn dyn_json(ty: &Type, v: &Dyn) -> serde_json::Value {
    match (ty, v) {
        (Type::Array(t), Dyn::Array(items)) if **t == Type::Byte => {
            json!(hex::encode(
                items.iter().filter_map(|b| if let Dyn::Byte(b) = b { Some(*b) } else { None }).collect::<Vec<u8>>()
            ))
        }
        (Type::Array(t), Dyn::Array(items)) => match t.as_ref() {
            Type::DictEntry(k, val) if **k == Type::Str => serde_json::Value::Object(
                items
                    .iter()
                    .filter_map(|e| match e {
                        Dyn::Tuple(kv) => match kv.as_slice() {
                            [Dyn::Str(key), value] => Some((key.clone(), dyn_json(val, value))),
                            _ => None,
                        },
                        _ => None,
                    })
                    .collect(),
            ),
            _ => json!(items.iter().map(|i| dyn_json(t, i)).collect::<Vec<_>>()),
        },
        (Type::Tuple(ts), Dyn::Tuple(items)) => {
            json!(ts.iter().zip(items).map(|(t, i)| dyn_json(t, i)).collect::<Vec<_>>())
        }
        (Type::DictEntry(k, val), Dyn::Tuple(items)) => match items.as_slice() {
            [a, b] => json!([dyn_json(k, a), dyn_json(val, b)]),
            _ => serde_json::Value::Null,
        },
        (Type::Variant, Dyn::Variant(t, c)) => dyn_json(t, c),
        (Type::Maybe(t), Dyn::Maybe(m)) => m.as_ref().map_or(serde_json::Value::Null, |c| dyn_json(t, c)),
        (_, Dyn::Bool(b)) => json!(b),
        (_, Dyn::Byte(n)) => json!(n),
        (_, Dyn::I16(n)) => json!(n),
        (_, Dyn::U16(n)) => json!(n),
        (_, Dyn::I32(n) | Dyn::Handle(n)) => json!(n),
        (_, Dyn::U32(n)) => json!(n),
        (_, Dyn::I64(n)) => json!(n),
        (_, Dyn::U64(n)) => json!(n),
        (_, Dyn::Double(n)) => json!(n),
        (_, Dyn::Str(s)) => json!(s),
        _ => serde_json::Value::Null,
    }
}

fn metadata_json(m: &Metadata) -> serde_json::Map<String, serde_json::Value> {
    m.iter().map(|(k, v)| (k.to_owned(), value_json(v))).collect()
}

impl CommitInfo {
    fn load(repo: &Repo, c: &Checksum) -> Result<Self> {
        let commit: Commit = repo.load_commit(c)?;
        let detached = repo.load_detached_metadata(c)?.unwrap_or_default();
        Ok(CommitInfo {
            commit: c.to_hex(),
            parent: commit.parent.map(|p| p.to_hex()),
            version: commit.version(),
            subject: commit.subject.clone(),
            body: commit.body.clone(),
            timestamp: commit.timestamp,
            root_tree: commit.root_tree.to_hex(),
            root_meta: commit.root_meta.to_hex(),
            metadata: metadata_json(&commit.metadata),
            detached_metadata: metadata_json(&detached),
            partial: repo.is_commit_partial(c)?,
        })
    }

    fn text_lines(&self) -> Vec<String> {
        let mut v = vec![format!("commit {}", self.commit)];
        if let Some(p) = &self.parent {
            v.push(format!("Parent:  {p}"));
        }
        v.push(format!("ContentChecksum:  {}", self.root_tree));
        v.push(format!("Date:  {}", format_time(self.timestamp)));
        if let Some(ver) = &self.version {
            v.push(format!("Version: {ver}"));
        }
        if self.partial {
            v.push("(partial)".into());
        }
        if !self.subject.is_empty() {
            v.push(String::new());
            v.push(format!("    {}", self.subject));
        }
        if !self.body.is_empty() {
            v.push(String::new());
            v.extend(self.body.lines().map(|l| format!("    {l}")));
        }
        v.push(String::new());
        v
    }
}

fn cmd_log(cli: &Cli, repo: &Repo, rev: &str) -> Result<ExitCode> {
    let start = repo.resolve_rev(rev)?;
    let mut commits = Vec::new();
    let mut cur = Some(start);
    while let Some(c) = cur {
        if !repo.has_commit(&c)? {
            break;
        }
        let info = CommitInfo::load(repo, &c)?;
        cur = info.parent.as_deref().and_then(|p| Checksum::from_hex(p).ok());
        commits.push(info);
        if commits.len() > 1_000_000 {
            bail!("history of {rev} loops");
        }
    }
    if cli.json {
        output::json("CommitLog", &json!({"commits": commits}))?;
    } else {
        output::lines(commits.iter().flat_map(CommitInfo::text_lines))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LsEntry {
    path: String,
    #[serde(rename = "type")]
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    checksum: String,
}

impl LsEntry {
    fn line(&self) -> String {
        let t = match self.kind {
            "dir" => 'd',
            "symlink" => 'l',
            _ => '-',
        };
        let mut s = format!("{t}0{:04o} {} {} {:>6} {}", self.mode & 0o7777, self.uid, self.gid, self.size, self.path);
        if let Some(target) = &self.target {
            s.push_str(" -> ");
            s.push_str(target);
        }
        s
    }
}

fn ls_file(repo: &Repo, path: String, c: &Checksum) -> Result<LsEntry> {
    let content = repo.open_content(c)?;
    let h = &content.header;
    Ok(LsEntry {
        path,
        kind: if is_symlink(h.mode) { "symlink" } else { "file" },
        mode: h.mode,
        uid: h.uid,
        gid: h.gid,
        size: content.size,
        target: is_symlink(h.mode).then(|| h.symlink_target.clone()),
        checksum: c.to_hex(),
    })
}

fn ls_dir(
    repo: &Repo,
    path: String,
    tree: &Checksum,
    meta: &Checksum,
    recursive: bool,
    list_children: bool,
    out: &mut Vec<LsEntry>,
) -> Result<()> {
    let dm = repo.load_dirmeta(meta)?;
    out.push(LsEntry {
        path: path.clone(),
        kind: "dir",
        mode: dm.mode,
        uid: dm.uid,
        gid: dm.gid,
        size: 0,
        target: None,
        checksum: tree.to_hex(),
    });
    if !list_children {
        return Ok(());
    }
    let dt = repo.load_dirtree(tree)?;
    let base = path.trim_end_matches('/');
    let mut names: Vec<&str> =
        dt.files().iter().map(|f| f.name.as_str()).chain(dt.dirs().iter().map(|d| d.name.as_str())).collect();
    names.sort_unstable();
    for name in names {
        let child = format!("{base}/{name}");
        match dt.lookup(name) {
            Some(repo_format::dirtree::Entry::File(f)) => out.push(ls_file(repo, child, &f.checksum)?),
            Some(repo_format::dirtree::Entry::Dir(d)) => {
                ls_dir(repo, child, &d.tree, &d.meta, recursive, recursive, out)?
            }
            None => {}
        }
    }
    Ok(())
}

fn lookup_path(repo: &Repo, commit: &Checksum, path: &str) -> Result<PathEntry> {
    repo.lookup_path(commit, path)?.ok_or_else(|| anyhow!("{path}: no such file or directory in commit {commit}"))
}

fn cmd_ls(cli: &Cli, repo: &Repo, rev: &str, path: &str, recursive: bool) -> Result<ExitCode> {
    let c = repo.resolve_rev(rev)?;
    let shown = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    let mut entries = Vec::new();
    match lookup_path(repo, &c, path)? {
        PathEntry::File(file) => entries.push(ls_file(repo, shown, &file)?),
        PathEntry::Dir { tree, meta } => ls_dir(repo, shown, &tree, &meta, recursive, true, &mut entries)?,
    }
    if cli.json {
        output::json("TreeListing", &json!({"commit": c.to_hex(), "entries": entries}))?;
    } else {
        output::lines(entries.iter().map(LsEntry::line))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_cat(repo: &Repo, rev: &str, path: &str) -> Result<ExitCode> {
    let c = repo.resolve_rev(rev)?;
    let PathEntry::File(file) = lookup_path(repo, &c, path)? else { bail!("{path} is a directory") };
    let mut content = repo.open_content(&file)?;
    if is_symlink(content.header.mode) {
        bail!("{path} is a symlink to {}", content.header.symlink_target);
    }
    debug_assert!(!is_dir(content.header.mode));
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = content.reader().read(&mut buf).with_context(|| format!("reading object {file}"))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_refs(cli: &Cli, repo: &Repo, delete: Option<&str>) -> Result<ExitCode> {
    if let Some(r) = delete {
        repo.set_ref(&RefSpec::parse(r)?, None)?;
        return Ok(ExitCode::SUCCESS);
    }
    let refs = repo.list_refs()?;
    if cli.json {
        let list: Vec<_> = refs
            .iter()
            .map(|(s, c)| json!({"ref": s.to_string(), "remote": s.remote, "name": s.name, "commit": c.to_hex()}))
            .collect();
        output::json("RefList", &json!({"refs": list}))?;
    } else {
        output::lines(refs.keys().map(ToString::to_string))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses `30d`, `2w`, `12h`, `90m`, `45s` (also `2 weeks`, `1 day`) or an RFC 3339 time into a cutoff.
fn parse_cutoff(s: &str, now: u64) -> Result<u64> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return u64::try_from(t.as_second()).map_err(|_| anyhow!("{s:?} is before 1970"));
    }
    Ok(now.saturating_sub(parse_duration(s)?))
}

/// Parses a duration: `30d`, `2w`, `12h`, `90m`, `45s`, `2 weeks`, `1 day ago`.
fn parse_duration(s: &str) -> Result<u64> {
    let trimmed = s.trim().trim_end_matches(" ago");
    let digits: String = trimmed.chars().take_while(char::is_ascii_digit).collect();
    let unit = trimmed[digits.len()..].trim();
    let n: u64 = digits.parse().map_err(|_| anyhow!("{s:?}: expected a duration such as 30d, 2w or 12h"))?;
    let secs = match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 7 * 86_400,
        _ => bail!("{s:?}: unknown unit {unit:?} (use s, m, h, d or w)"),
    };
    Ok(n.saturating_mul(secs))
}

fn cmd_prune(cli: &Cli, repo: &Repo, a: &PruneArgs) -> Result<ExitCode> {
    let depth = match a.depth {
        None | Some(-1) => None,
        Some(d) if d >= 0 => Some(usize::try_from(d)?),
        Some(d) => bail!("--depth {d}: use -1 for all history or a count of parents"),
    };
    let keep_younger_than = a.keep_younger_than.as_deref().map(|s| parse_cutoff(s, now())).transpose()?;
    let opts = PruneOptions { refs_only: a.refs_only, depth, keep_younger_than, dry_run: a.dry_run };
    let report = prune(repo, &opts)?;
    if cli.json {
        output::json("PruneReport", &report)?;
    } else {
        let verb = if a.dry_run { "would delete" } else { "deleted" };
        output::lines([format!(
            "Total objects: {}\n{} {} objects ({} commits), freeing {} bytes",
            report.objects_total,
            verb,
            report.objects_pruned,
            report.commits_pruned.len(),
            report.bytes_freed
        )])?;
        if !report.deltas_pruned.is_empty() {
            output::lines([format!("{verb} {} deltas to pruned commits", report.deltas_pruned.len())])?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs() -> Result<()> {
        let now = 100_000_000;
        assert_eq!(parse_cutoff("30d", now)?, now - 30 * 86_400);
        assert_eq!(parse_cutoff("2 weeks", now)?, now - 14 * 86_400);
        assert_eq!(parse_cutoff("12h", now)?, now - 12 * 3600);
        assert_eq!(parse_cutoff("1970-01-02T00:00:00Z", now)?, 86_400);
        assert!(parse_cutoff("soon", now).is_err());
        assert!(parse_cutoff("3 fortnights", now).is_err());
        Ok(())
    }

    #[test]
    fn timestamps() -> Result<()> {
        assert_eq!(parse_timestamp("1577836800")?, 1_577_836_800);
        assert_eq!(parse_timestamp("2020-01-01T00:00:00Z")?, 1_577_836_800);
        assert!(parse_timestamp("yesterday").is_err());
        Ok(())
    }
}
