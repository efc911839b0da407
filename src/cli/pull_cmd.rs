//! `photon-upgrade remote ...` and `photon-upgrade pull`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};
use serde_json::json;

use super::Cli;
use super::output;
use crate::pull::remote::{self, AddOptions, Remote};
use crate::pull::{PullOptions, pull};
use crate::repo::Repo;

/// Remote commands.
// Parsed once per process: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Add a remote; signature verification is on unless --no-sign-verify.
    Add(AddArgs),
    /// List remotes.
    List,
    /// Show a remote's settings.
    Show {
        /// Remote name.
        name: String,
    },
    /// Delete a remote, its refs and its keys.
    Delete {
        /// Remote name.
        name: String,
    },
}

/// `remote add` arguments.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Remote name.
    name: String,
    /// Base URL of the published repository (http://, https://, or file:/// for a local
    /// directory such as a mounted update medium).
    url: String,
    /// Public key file of the publisher (repeatable).
    #[arg(long, value_name = "FILE")]
    trusted_key: Vec<PathBuf>,
    /// Public keys that must never verify (repeatable).
    #[arg(long, value_name = "FILE")]
    revoked_key: Vec<PathBuf>,
    /// Do not verify signatures (commits and summary).
    #[arg(long)]
    no_sign_verify: bool,
    /// Branch pulled when `pull` names none (repeatable).
    #[arg(long, value_name = "REF")]
    branch: Vec<String>,
    /// Extra CA certificates (PEM) for https.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// TLS client certificate (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_client_key")]
    tls_client_cert: Option<PathBuf>,
    /// TLS client key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_client_cert")]
    tls_client_key: Option<PathBuf>,
    /// File holding a bearer token (an OAuth2/OIDC access token), sent on every request.
    #[arg(long, value_name = "FILE")]
    bearer_token_file: Option<PathBuf>,
    /// Any other setting, as in the config file (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Replace an existing remote of that name.
    #[arg(long)]
    force: bool,
}

/// `pull` arguments.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Remote name.
    remote: String,
    /// Refs or commit checksums [default: the remote's branches].
    refs: Vec<String>,
    /// Fetch objects even when the remote offers a delta.
    #[arg(long)]
    disable_deltas: bool,
    /// Also fetch this many parent commits.
    #[arg(long, value_name = "N", default_value_t = 0)]
    depth: usize,
    /// Only print the objects and bytes that would be fetched.
    #[arg(long)]
    dry_run: bool,
    /// Accept a commit older than the one the ref has now.
    #[arg(long)]
    allow_downgrade: bool,
}

fn abs(p: &PathBuf) -> String {
    std::path::absolute(p).unwrap_or_else(|_| p.clone()).display().to_string()
}

/// Runs a remote command.
pub fn run_remote(cli: &Cli, cmd: &RemoteCommand) -> Result<ExitCode> {
    let mut repo = Repo::open(&cli.repo_path())?;
    match cmd {
        RemoteCommand::Add(a) => {
            let mut set = Vec::new();
            for (k, v) in [
                ("tls-ca-path", &a.tls_ca),
                ("tls-client-cert-path", &a.tls_client_cert),
                ("tls-client-key-path", &a.tls_client_key),
                ("bearer-token-file", &a.bearer_token_file),
            ] {
                if let Some(p) = v {
                    set.push((k.to_owned(), abs(p)));
                }
            }
            for kv in &a.set {
                let (k, v) = kv.split_once('=').ok_or_else(|| anyhow!("--set {kv:?}: expected KEY=VALUE"))?;
                set.push((k.to_owned(), v.to_owned()));
            }
            let opts = AddOptions {
                trusted_keys: a.trusted_key.clone(),
                revoked_keys: a.revoked_key.clone(),
                no_sign_verify: a.no_sign_verify,
                branches: a.branch.clone(),
                set,
                force: a.force,
            };
            remote::add(&mut repo, &a.name, &a.url, &opts)?;
        }
        RemoteCommand::List => {
            let names = Remote::names(&repo);
            if cli.json {
                let list = names.iter().map(|n| Remote::load(&repo, n)).collect::<Result<Vec<_>>>()?;
                output::json("RemoteList", &json!({"remotes": list}))?;
            } else {
                output::lines(names)?;
            }
        }
        RemoteCommand::Show { name } => {
            let r = Remote::load(&repo, name)?;
            if cli.json {
                output::json("Remote", &r)?;
            } else {
                output::lines(r.raw.iter().map(|(k, v)| format!("{k}={v}")))?;
            }
        }
        RemoteCommand::Delete { name } => remote::delete(&mut repo, name)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `pull`.
pub fn run_pull(cli: &Cli, a: &PullArgs) -> Result<ExitCode> {
    let repo = Repo::open(&cli.repo_path())?;
    let opts = PullOptions {
        refs: a.refs.clone(),
        depth: a.depth,
        dry_run: a.dry_run,
        allow_downgrade: a.allow_downgrade,
        sysroot: cli.sysroot.clone(),
        now: super::now(),
        disable_deltas: a.disable_deltas,
    };
    let progress = cli.progress();
    let out = pull(&repo, &a.remote, &opts, progress.as_ref())?;
    if cli.json {
        output::json("PullReport", &out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(plan) = &out.plan {
        let bytes: u64 = plan.iter().map(|p| p.bytes).sum();
        let mut lines: Vec<String> = plan.iter().map(|p| format!("{} {} {}", p.objtype, p.checksum, p.bytes)).collect();
        lines.push(format!("would fetch {} objects, {bytes} bytes", plan.len()));
        output::lines(lines)?;
    } else if !cli.quiet {
        let mut lines: Vec<String> = out
            .refs
            .iter()
            .map(|r| match r.old {
                Some(old) if old == r.new => format!("{}: {} (already up to date)", r.spec, r.new),
                Some(old) => format!("{}: {} -> {}", r.spec, old, r.new),
                None => format!("{}: {}", r.spec, r.new),
            })
            .collect();
        lines.push(format!(
            "fetched {} metadata and {} content objects, {} bytes in {} requests{}",
            out.metadata_objects,
            out.content_objects,
            out.bytes,
            out.requests,
            if out.deltas.is_empty() { String::new() } else { format!(" (through delta {})", out.deltas.join(", ")) }
        ));
        output::lines(lines)?;
    }
    Ok(ExitCode::SUCCESS)
}
