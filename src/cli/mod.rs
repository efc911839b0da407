//! Command-line parsing and output; no domain logic lives here.
//!
//! Exit status (CLI.md): 0 success, 1 failure with one `error: ...` line on
//! stderr, 2 usage error (clap), and a broken pipe on stdout exits 0.

mod boot_cmd;
mod delta_cmd;
mod host_cmd;
mod output;
mod pull_cmd;
mod repo_cmd;
mod serve;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use crate::progress::{Bar, JsonLines, NoProgress, Progress};

pub use output::API_VERSION;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, nothing otherwise.
    Auto,
    /// Always a bar.
    Bar,
    /// JSON Lines on stderr.
    Json,
    /// Nothing.
    None,
}

/// Image-based, immutable OS updates in the OSTree tradition.
#[derive(Debug, Parser)]
#[command(name = "photon-upgrade", version, about, max_term_width = 100)]
pub struct Cli {
    /// Repository to use [default: <sysroot>/ostree/repo].
    #[arg(long, global = true, value_name = "PATH", env = "PHOTON_UPGRADE_REPO")]
    pub repo: Option<PathBuf>,
    /// Root of the system to manage.
    #[arg(long, global = true, value_name = "PATH", default_value = "/")]
    pub sysroot: PathBuf,
    /// Print results as one JSON document (where a command prints a result).
    #[arg(long, global = true)]
    pub json: bool,
    /// More detail on stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Progress display.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    /// Where the running system is (hidden options for tests).
    #[command(flatten)]
    pub host: host_cmd::HostArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build-server and inspection commands on a repository.
    #[command(subcommand)]
    Repo(repo_cmd::RepoCommand),
    /// Configure where updates come from.
    #[command(subcommand)]
    Remote(pull_cmd::RemoteCommand),
    /// Fetch commits from a remote, verified.
    Pull(pull_cmd::PullArgs),
    /// Lay out a new sysroot and deploy a commit from --repo into it.
    Install(host_cmd::InstallArgs),
    /// Deploy a commit next to the current one and make it the default.
    Deploy(host_cmd::DeployArgs),
    /// Pull the booted deployment's origin and deploy it.
    Upgrade(host_cmd::UpgradeArgs),
    /// Show the deployments.
    Status,
    /// Make the previous deployment the default again.
    Rollback,
    /// Remove a deployment (never the booted one or the rollback target).
    Undeploy {
        /// Index, as `status` shows it.
        index: usize,
    },
    /// Remove what no deployment uses (old boot versions, kernels, objects).
    Cleanup,
    /// Keep a deployment whatever its place (or stop keeping it).
    Pin {
        /// Index, as `status` shows it.
        index: usize,
        /// Remove the pin.
        #[arg(long)]
        unpin: bool,
    },
    /// Show or edit the default deployment's kernel arguments.
    Kargs(host_cmd::KargsArgs),
    /// Preview what the /etc merge would keep, take and drop.
    EtcDiff {
        /// The commit to merge into [default: the current deployment's own defaults].
        rev: Option<String>,
    },
    /// Switch to the staged deployment (run at shutdown).
    FinalizeStaged,
    /// Boot counting: bless a good boot, record a failed one, show the state.
    #[command(subcommand)]
    Boot(boot_cmd::BootCommand),
    /// Generated files: man pages, shell completions.
    #[command(subcommand, hide = true)]
    Internals(Internals),
}

/// Generators for packaging.
#[derive(Debug, Subcommand)]
pub enum Internals {
    /// Write man pages into DIR.
    Man {
        /// Output directory.
        dir: PathBuf,
    },
    /// Print a shell completion script.
    Completions {
        /// Shell.
        shell: clap_complete::Shell,
    },
    /// Serve a directory over HTTP (demos, labs); prints the address.
    Serve {
        /// Directory to serve (a published archive repository).
        dir: PathBuf,
        /// Address to bind; port 0 picks a free one.
        #[arg(long, default_value = "127.0.0.1:0")]
        bind: String,
    },
}

impl Cli {
    /// The repository path: `--repo`, else `<sysroot>/ostree/repo`.
    pub fn repo_path(&self) -> PathBuf {
        self.repo.clone().unwrap_or_else(|| self.sysroot.join("ostree/repo"))
    }

    /// The progress sink the options ask for.
    pub fn progress(&self) -> Box<dyn Progress> {
        match self.progress {
            ProgressMode::Json => Box::new(JsonLines::new()),
            ProgressMode::Bar => Box::new(Bar::new()),
            ProgressMode::Auto if !self.quiet && std::io::stderr().is_terminal() => Box::new(Bar::new()),
            _ => Box::new(NoProgress),
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Repo(cmd) => repo_cmd::run(cli, cmd),
        Command::Remote(cmd) => pull_cmd::run_remote(cli, cmd),
        Command::Pull(a) => pull_cmd::run_pull(cli, a),
        Command::Install(a) => host_cmd::run_install(cli, a),
        Command::Deploy(a) => host_cmd::run_deploy(cli, a),
        Command::Upgrade(a) => host_cmd::run_upgrade(cli, a),
        Command::Status => host_cmd::run_status(cli),
        Command::Rollback => host_cmd::run_rollback(cli),
        Command::Undeploy { index } => host_cmd::run_undeploy(cli, *index),
        Command::Cleanup => host_cmd::run_cleanup(cli),
        Command::Pin { index, unpin } => host_cmd::run_pin(cli, *index, *unpin),
        Command::Kargs(a) => host_cmd::run_kargs(cli, a),
        Command::EtcDiff { rev } => host_cmd::run_etc_diff(cli, rev.as_deref()),
        Command::FinalizeStaged => host_cmd::run_finalize(cli),
        Command::Boot(cmd) => boot_cmd::run(cli, cmd),
        Command::Internals(Internals::Man { dir }) => {
            std::fs::create_dir_all(dir)?;
            clap_mangen::generate_to(Cli::command(), dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Internals(Internals::Serve { dir, bind }) => {
            serve::serve(dir, bind)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Internals(Internals::Completions { shell }) => {
            clap_complete::generate(*shell, &mut Cli::command(), "photon-upgrade", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Seconds since the epoch.
pub(crate) fn now() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or(0)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, the whole chain (ripgrep's `{:#}`).
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
