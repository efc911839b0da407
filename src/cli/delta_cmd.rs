//! `photon-upgrade repo delta ...`: generate, list, show, export and apply deltas.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use repo_format::Checksum;
use repo_format::delta as fmt;
use serde_json::json;

use super::output::{self, format_time};
use super::{Cli, now};
use crate::pull::remote::Remote;
use crate::repo::Repo;
use crate::repo::delta::bundle::{self, Bundle};
use crate::repo::delta::generate::{GenerateOptions, generate, generate_into};
use crate::repo::delta::{self, DeltaInfo};
use crate::repo::refs::RefSpec;
use crate::sign::{self, TrustStore};

/// Delta commands.
#[derive(Debug, Subcommand)]
pub enum DeltaCommand {
    /// Make a delta (stored under photon-deltas/; run `repo summary --update` to publish it).
    Generate(GenerateArgs),
    /// List the deltas in the repository.
    List,
    /// Show one delta.
    Show {
        /// Delta id (FROM-TO or TO), as `repo delta list` prints it.
        id: String,
    },
    /// Write a delta as one self-contained signed file (an offline bundle).
    Export {
        #[command(flatten)]
        range: RangeArgs,
        /// The bundle file to write.
        file: PathBuf,
    },
    /// Apply an offline bundle to this repository, with no network.
    Apply(ApplyArgs),
    /// Delete a delta (run `repo summary --update` afterwards).
    Delete {
        /// Delta id (FROM-TO or TO).
        id: String,
    },
}

/// Which delta.
#[derive(Debug, Args)]
pub struct RangeArgs {
    /// The commit the delta yields.
    #[arg(long, value_name = "REV")]
    to: String,
    /// The commit it applies to.
    #[arg(long, value_name = "REV", conflicts_with = "empty")]
    from: Option<String>,
    /// A delta from nothing (a whole commit, for first installs) [default when --from is absent].
    #[arg(long)]
    empty: bool,
    /// zstd level [default: 19 between commits; from nothing, a tuned level-16 profile].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    level: Option<i32>,
    /// Maximum compression (slower to make, same cost to apply).
    #[arg(long, conflicts_with = "level")]
    max: bool,
    /// zstd window of parts, log2 bytes (what a reader must hold) [default: 24, at most 25].
    #[arg(long, value_name = "N")]
    window_log: Option<u32>,
    /// Uncompressed MiB per part: bigger compresses a little better, smaller
    /// fetches and compresses in more parallel pieces [default: 48; 256 with --max].
    #[arg(long, value_name = "MIB")]
    part_size: Option<u64>,
    /// Sign the superblock with this secret key (repeatable).
    #[arg(long, value_name = "FILE")]
    sign_key: Vec<PathBuf>,
}

/// `repo delta generate` arguments.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    range: RangeArgs,
}

/// `repo delta apply` arguments.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The bundle file.
    file: PathBuf,
    /// File of trusted public keys (repeatable).
    #[arg(long, value_name = "FILE")]
    trusted_key: Vec<PathBuf>,
    /// Directory of trusted key files (repeatable).
    #[arg(long, value_name = "DIR")]
    trusted_keys_dir: Vec<PathBuf>,
    /// Trust what this remote trusts (its keys and settings).
    #[arg(long, value_name = "NAME")]
    remote: Option<String>,
    /// Apply an unsigned or untrusted bundle (checksums are still checked).
    #[arg(long)]
    no_sign_verify: bool,
    /// Point this ref (NAME or REMOTE:NAME) at the bundle's commit.
    #[arg(long = "ref", value_name = "REF")]
    ref_name: Option<String>,
}

impl RangeArgs {
    fn options(&self, repo: &Repo) -> Result<GenerateOptions> {
        let to = repo.resolve_rev(&self.to)?;
        let from = match &self.from {
            Some(f) => Some(repo.resolve_rev(f)?),
            None => None,
        };
        // A ref name (not a checksum) is recorded for bundle consumers.
        let ref_name = (Checksum::from_hex(&self.to).is_err() && !self.to.contains('^')).then(|| self.to.clone());
        Ok(GenerateOptions {
            from,
            to,
            ref_name,
            level: self.level,
            max: self.max,
            window_log: self.window_log,
            part_size: self.part_size.map(|m| m.saturating_mul(1 << 20)),
            sign_keys: self.sign_key.iter().map(|k| sign::load_secret_key(k)).collect::<Result<Vec<_>>>()?,
            now: now(),
        })
    }
}

/// Runs a delta command.
pub fn run(cli: &Cli, repo: &Repo, cmd: &DeltaCommand) -> Result<ExitCode> {
    match cmd {
        DeltaCommand::Generate(a) => {
            let opts = a.range.options(repo)?;
            let progress = cli.progress();
            let g = generate(repo, &opts, progress.as_ref())?;
            if cli.json {
                output::json("Delta", &g)?;
            } else if !cli.quiet {
                output::lines([format!(
                    "delta {}: {} parts, {} bytes ({} content objects, {} as patches, {} bytes unpacked; zstd level {})",
                    g.id,
                    g.parts,
                    g.parts_size + g.superblock_size,
                    g.content_objects,
                    g.patched,
                    g.content_bytes,
                    g.level
                )])?;
            }
            Ok(ExitCode::SUCCESS)
        }
        DeltaCommand::List => {
            let all = delta::list(repo)?;
            if cli.json {
                output::json("Deltas", &json!({"deltas": all}))?;
            } else {
                output::lines(all.iter().map(|d| d.id.clone()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        DeltaCommand::Show { id } => {
            let (info, _, sb) = delta::load(repo, id)?;
            if cli.json {
                let parts: Vec<_> = sb
                    .parts
                    .iter()
                    .map(|p| {
                        json!({"kind": if p.kind == fmt::PartKind::Metadata { "metadata" } else { "files" },
                        "checksum": p.checksum, "size": p.size, "uncompressed": p.uncompressed,
                        "first": p.first, "count": p.count})
                    })
                    .collect();
                output::json("DeltaDetail", &json!({"delta": info, "partList": parts}))?;
            } else {
                output::lines(show_lines(&info, &sb))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        DeltaCommand::Export { range, file } => {
            let opts = range.options(repo)?;
            let id = fmt::delta_id(opts.from.as_ref(), &opts.to);
            let progress = cli.progress();
            let stored = repo.dir().open_dir_optional(format!("{}/{id}", fmt::DELTAS_DIR))?;
            let size = match stored {
                // Already generated (and maybe signed with other keys): use it as is.
                Some(dir) if opts.sign_keys.is_empty() && opts.level.is_none() && !opts.max => {
                    bundle::export(&dir, file)?
                }
                _ => {
                    let tmp = repo.tmp_dir();
                    let name = tmp.temp_name("bundle")?;
                    tmp.create_dir(&name, 0o700)?;
                    let r = (|| {
                        let dir = tmp.open_dir(&name)?;
                        generate_into(repo, &opts, &dir, progress.as_ref())?;
                        bundle::export(&dir, file)
                    })();
                    let _ = tmp.remove_all(&name);
                    r?
                }
            };
            if cli.json {
                output::json("Bundle", &json!({"id": id, "file": file, "size": size}))?;
            } else if !cli.quiet {
                output::lines([format!("wrote {} ({size} bytes): delta {id}", file.display())])?;
            }
            Ok(ExitCode::SUCCESS)
        }
        DeltaCommand::Apply(a) => cmd_apply(cli, repo, a),
        DeltaCommand::Delete { id } => {
            delta::delete(repo, id)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn show_lines(info: &DeltaInfo, sb: &fmt::Superblock) -> Vec<String> {
    let mut out = vec![
        format!("Delta:      {}", info.id),
        format!("From:       {}", info.from.map_or("(nothing)".to_owned(), |c| c.to_hex())),
        format!(
            "To:         {}{}",
            info.to,
            info.version.as_ref().map_or(String::new(), |v| format!(" (version {v})"))
        ),
        format!("Made:       {}", format_time(info.timestamp)),
        format!("Signatures: {}", info.signatures),
        format!("Objects:    {} content", info.content_objects),
        format!("Size:       {} bytes in {} parts", info.parts_size, info.parts),
    ];
    if let Some(r) = &info.ref_name {
        out.push(format!("Ref:        {r}"));
    }
    for (n, p) in sb.parts.iter().enumerate() {
        let kind = if p.kind == fmt::PartKind::Metadata { "metadata" } else { "files" };
        out.push(format!(
            "  part {n}: {kind}, {} entries, {} bytes ({} unpacked), sha256 {}",
            p.count, p.size, p.uncompressed, p.checksum
        ));
    }
    out
}

/// Trust from the command line: a remote's keys and the key files and
/// directories given, or the system's trusted keys when none is named;
/// the system's revoked keys always.
pub fn cli_trust(
    cli: &Cli,
    repo: &Repo,
    keys: &[PathBuf],
    dirs: &[PathBuf],
    remote: Option<&str>,
) -> Result<TrustStore> {
    let mut trust = TrustStore::default();
    if let Some(r) = remote {
        trust = Remote::load(repo, r)?.trust(&cli.sysroot)?;
    }
    for f in keys {
        trust.trusted.extend(sign::load_public_keys(f)?);
    }
    for d in dirs {
        trust.trusted.extend(sign::load_public_key_dir(d)?);
    }
    if remote.is_none() && keys.is_empty() && dirs.is_empty() {
        trust.add_system(&cli.sysroot, true)?;
    }
    trust.add_system(&cli.sysroot, false)?;
    Ok(trust)
}

fn cmd_apply(cli: &Cli, repo: &Repo, a: &ApplyArgs) -> Result<ExitCode> {
    let trust = if a.no_sign_verify {
        None
    } else {
        Some(cli_trust(cli, repo, &a.trusted_key, &a.trusted_keys_dir, a.remote.as_deref())?)
    };
    let spec = a.ref_name.as_deref().map(RefSpec::parse).transpose()?;
    let (to, applied) = apply_file(cli, repo, &a.file, trust.as_ref(), u64::MAX)?;
    if let Some(spec) = &spec {
        repo.set_ref(spec, Some(&to))?;
    }
    if cli.json {
        output::json(
            "BundleApplied",
            &json!({"commit": to, "ref": spec.map(|s| s.to_string()),
                "metadataObjects": applied.metadata_objects, "contentObjects": applied.content_objects}),
        )?;
    } else if !cli.quiet {
        output::lines([to.to_hex()])?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens, verifies and applies a bundle; returns the commit it yields.
pub fn apply_file(
    cli: &Cli,
    repo: &Repo,
    file: &Path,
    trust: Option<&TrustStore>,
    max_object: u64,
) -> Result<(Checksum, crate::repo::delta::apply::Applied)> {
    let b = Bundle::open(file, trust)?;
    let to = b.superblock.to;
    if repo.has_commit(&to)? && !repo.is_commit_partial(&to)? {
        // Verified above all the same; nothing to write.
        return Ok((to, crate::repo::delta::apply::Applied::default()));
    }
    let progress = cli.progress();
    let applied = b
        .apply(repo, trust, max_object, progress.as_ref())
        .with_context(|| format!("applying {}; the repository is unchanged", file.display()))?;
    Ok((to, applied))
}
