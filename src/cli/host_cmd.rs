//! Host commands: install, deploy, upgrade, status, rollback, undeploy,
//! cleanup, pin, kargs, etc-diff, finalize-staged.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use repo_format::Checksum;
use serde_json::json;

use super::Cli;
use super::output;
use crate::pull::{PullOptions, pull};
use crate::repo::copy::copy_commit;
use crate::repo::diff::diff;
use crate::repo::refs::RefSpec;
use crate::repo::{Repo, RepoMode};
use crate::sysroot::boot::{self, Backend, BootConfig};
use crate::sysroot::deploy::{DeployOptions, deploy, init_stateroot, resolve};
use crate::sysroot::deployment::Deployment;
use crate::sysroot::{HostEnv, Sysroot, bootswap, etcmerge, packages, staged, status};

/// Exit status of `upgrade --check` when there is nothing new (CLI.md).
pub const EXIT_NO_UPDATE: u8 = 77;

/// Options that locate the running system (hidden; tests point them at a
/// deployment directory and files).
#[derive(Debug, Args, Clone)]
pub struct HostArgs {
    /// The running system's root [default: /].
    #[arg(long, global = true, hide = true, value_name = "PATH", default_value = "/")]
    pub booted_root: PathBuf,
    /// The kernel command line [default: /proc/cmdline].
    #[arg(long, global = true, hide = true, value_name = "FILE", default_value = "/proc/cmdline")]
    pub cmdline: PathBuf,
    /// The run directory [default: /run].
    #[arg(long, global = true, hide = true, value_name = "PATH", default_value = "/run")]
    pub run_dir: PathBuf,
}

impl HostArgs {
    pub(super) fn env(&self) -> HostEnv {
        HostEnv { booted_root: self.booted_root.clone(), cmdline: self.cmdline.clone(), run: self.run_dir.clone() }
    }
}

/// `install` arguments.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Stateroot name.
    #[arg(long, value_name = "NAME")]
    os: String,
    /// Commit to deploy, from the build repository given with --repo.
    rev: String,
    /// Kernel arguments (repeatable).
    #[arg(long = "karg", value_name = "K=V")]
    kargs: Vec<String>,
    /// Origin to record, e.g. `origin:os/x86_64/stable` [default: REV].
    #[arg(long, value_name = "REFSPEC")]
    origin: Option<String>,
    /// The bootloader that follows the boot configuration, with boot
    /// counting and automatic rollback [default: none, or as installed before].
    #[arg(long, value_enum)]
    bootloader: Option<Backend>,
    /// Where the boot partition (ESP or XBOOTLDR) is mounted, below the
    /// sysroot [default: /boot/efi].
    #[arg(long, value_name = "PATH")]
    esp: Option<String>,
    /// Boots a new deployment gets to reach boot-complete.target before the
    /// previous one is booted again (1-9) [default: 3].
    #[arg(long, value_name = "N")]
    boot_tries: Option<String>,
    /// GRUB: how it finds the ESP, `label:LABEL` or `uuid:UUID` [default: label:ESP].
    #[arg(long, value_name = "HOW")]
    grub_search: Option<String>,
    /// GRUB: menu timeout in seconds [default: 5].
    #[arg(long, value_name = "SECS")]
    menu_timeout: Option<u32>,
}

/// `deploy` arguments.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Commit or ref in the sysroot's repository.
    rev: String,
    /// Stateroot [default: the booted one].
    #[arg(long, value_name = "NAME")]
    os: Option<String>,
    /// Add or replace a kernel argument (repeatable).
    #[arg(long = "karg", value_name = "K=V")]
    karg: Vec<String>,
    /// Remove a kernel argument (repeatable).
    #[arg(long = "karg-delete", value_name = "K")]
    karg_delete: Vec<String>,
    /// Do all the work now and switch at shutdown (finalize-staged).
    #[arg(long)]
    stage: bool,
    /// Start from the new tree's default /etc.
    #[arg(long)]
    no_merge_etc: bool,
    /// Deployments of this stateroot to keep, the new one included [default: 2].
    #[arg(long, value_name = "N")]
    retain: Option<usize>,
}

/// `upgrade` arguments.
#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Only look: exit 77 when there is nothing new.
    #[arg(long)]
    check: bool,
    /// Pull and list what would change (files, packages), without deploying.
    #[arg(long)]
    preview: bool,
    /// Switch at shutdown instead of now.
    #[arg(long)]
    stage: bool,
    /// Reboot into the new deployment.
    #[arg(long)]
    reboot: bool,
    /// Accept an older commit than the booted one.
    #[arg(long)]
    allow_downgrade: bool,
    /// Take the update from an offline bundle (`repo delta export`) instead of the network;
    /// verified with the origin remote's keys.
    #[arg(long, value_name = "FILE")]
    from_file: Option<std::path::PathBuf>,
}

/// `kargs` arguments.
#[derive(Debug, Args)]
pub struct KargsArgs {
    /// Add an argument (repeatable).
    #[arg(long, value_name = "K=V")]
    append: Vec<String>,
    /// Remove an argument (repeatable).
    #[arg(long, value_name = "K")]
    delete: Vec<String>,
    /// Replace every value of K (repeatable).
    #[arg(long, value_name = "K=V")]
    replace: Vec<String>,
}

fn open(cli: &Cli) -> Result<Sysroot> {
    Sysroot::open(&cli.sysroot, cli.host.env())
}

fn print_status(cli: &Cli, sysroot: &Sysroot) -> Result<()> {
    let s = status::status(sysroot)?;
    if cli.json { output::json("SysrootStatus", &s) } else { output::lines(status::text(&s)) }
}

/// `install`.
pub fn run_install(cli: &Cli, a: &InstallArgs) -> Result<ExitCode> {
    let src = Repo::open(&cli.repo_path()).context("the build repository (--repo)")?;
    let commit = src.resolve_rev(&a.rev)?;
    let root = &cli.sysroot;
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let dir = crate::fsutil::Dir::open(root)?;
    for d in ["boot", "ostree", "ostree/deploy"] {
        dir.ensure_dir(d, 0o755)?;
    }
    let repo_path = root.join("ostree/repo");
    if dir.stat_optional("ostree/repo/config")?.is_none() {
        // bare keeps real owners (what a host needs); without root, a
        // bare-user repository gives a sysroot owned by the caller (demos, CI).
        let mode = if crate::fsutil::euid() == 0 { RepoMode::Bare } else { RepoMode::BareUser };
        Repo::init(&repo_path, mode)?;
    }
    init_stateroot(&dir, &a.os)?;
    let mut dst = Repo::open(&repo_path)?;
    if a.bootloader.is_some()
        || a.esp.is_some()
        || a.boot_tries.is_some()
        || a.grub_search.is_some()
        || a.menu_timeout.is_some()
    {
        let mut cfg = BootConfig::load(&dst)?;
        if let Some(b) = a.bootloader {
            cfg.backend = b;
        }
        if let Some(e) = &a.esp {
            cfg.esp = boot::esp_path(e)?;
        }
        if let Some(t) = &a.boot_tries {
            cfg.tries = boot::parse_tries(t)?;
        }
        if let Some(g) = &a.grub_search {
            cfg.grub_search = g.clone();
        }
        if let Some(t) = a.menu_timeout {
            cfg.menu_timeout = t;
        }
        if cfg.backend != Backend::None && dir.stat_optional(&cfg.esp)?.is_none() {
            bail!("the boot partition {} does not exist; mount it (or give --esp)", root.join(&cfg.esp).display());
        }
        cfg.save(&mut dst)?;
    }
    let progress = cli.progress();
    copy_commit(&src, &dst, &commit, progress.as_ref())?;
    let refspec = a.origin.clone().unwrap_or_else(|| a.rev.clone());
    // Record the ref the origin follows (a bare checksum needs none).
    if Checksum::from_hex(&refspec).is_err()
        && let Ok(spec) = RefSpec::parse(&refspec)
    {
        dst.set_ref(&spec, Some(&commit))?;
    }
    let mut sysroot = Sysroot::open(root, cli.host.env())?;
    let opts = DeployOptions {
        osname: Some(a.os.clone()),
        // A first install sets the kernel arguments; a later one keeps the
        // merge deployment's unless new ones are given.
        kargs_override: (!a.kargs.is_empty()).then(|| a.kargs.clone()),
        refspec: Some(refspec),
        ..DeployOptions::default()
    };
    let out = deploy(&mut sysroot, &commit, &opts)?;
    if cli.json {
        output::json("Install", &out)?;
    } else if !cli.quiet {
        output::lines([format!("installed {} {} in {}", out.osname, out.deployment, root.display())])?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Under systemd, starts the unit that finalizes a staged deployment at
/// shutdown (its `ExecStop=`) now, as OSTree does since 2025: a `.path`
/// unit can miss a reboot that follows staging at once.
fn start_finalize_unit(cli: &Cli) -> Result<()> {
    if !cli.host.run_dir.join("systemd/system").is_dir() {
        return Ok(()); // not a systemd-booted host (image builds, tests)
    }
    let st = std::process::Command::new("systemctl")
        .args(["start", "photon-finalize-staged.service"])
        .status()
        .context("running systemctl start photon-finalize-staged.service")?;
    if !st.success() {
        bail!(
            "systemctl start photon-finalize-staged.service failed ({st}): the staged deployment would not be finalized at shutdown; is the unit installed (systemd/README.md)?"
        );
    }
    Ok(())
}

/// `deploy`.
pub fn run_deploy(cli: &Cli, a: &DeployArgs) -> Result<ExitCode> {
    let mut sysroot = open(cli)?;
    let (commit, refspec) = resolve(&sysroot, &a.rev)?;
    let opts = DeployOptions {
        osname: a.os.clone(),
        kargs_append: a.karg.clone(),
        kargs_delete: a.karg_delete.clone(),
        kargs_override: None,
        stage: a.stage,
        no_merge_etc: a.no_merge_etc,
        retain: a.retain,
        refspec,
    };
    let out = deploy(&mut sysroot, &commit, &opts)?;
    report_deploy(cli, &out)
}

fn report_deploy(cli: &Cli, out: &crate::sysroot::deploy::DeployOutcome) -> Result<ExitCode> {
    if out.staged {
        start_finalize_unit(cli)?;
    }
    if cli.json {
        output::json("Deploy", out)?;
    } else if !cli.quiet {
        let mut lines = vec![if out.staged {
            format!("staged {} {}; it becomes the default at shutdown", out.osname, out.deployment)
        } else {
            format!("deployed {} {}; it boots next", out.osname, out.deployment)
        }];
        for c in out.etc.changes.iter().filter(|c| c.conflict.is_some()) {
            lines.push(format!("/etc/{}: {}", c.path, c.conflict.as_deref().unwrap_or("")));
        }
        output::lines(lines)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The deployment `upgrade` starts from: the booted one, else the default.
fn current(sysroot: &Sysroot) -> Result<Deployment> {
    sysroot
        .booted_deployment()
        .or(sysroot.deployments.first())
        .cloned()
        .ok_or_else(|| anyhow!("no deployment to upgrade in {}", sysroot.path().display()))
}

/// `upgrade`.
pub fn run_upgrade(cli: &Cli, a: &UpgradeArgs) -> Result<ExitCode> {
    let sysroot = open(cli)?;
    let cur = current(&sysroot)?;
    let refspec = cur.refspec().ok_or_else(|| anyhow!("deployment {} has no origin refspec to follow", cur.name()))?;
    let spec = RefSpec::parse(refspec).with_context(|| format!("origin refspec {refspec:?}"))?;
    let Some(remote) = spec.remote.clone() else {
        bail!("origin {refspec} is a local ref; add a remote and deploy `REMOTE:REF` to follow updates");
    };
    let pull_opts = PullOptions {
        refs: vec![spec.name.clone()],
        dry_run: a.check,
        allow_downgrade: a.allow_downgrade,
        sysroot: cli.sysroot.clone(),
        now: super::now(),
        ..PullOptions::default()
    };
    let progress = cli.progress();
    if let Some(file) = &a.from_file {
        return upgrade_from_file(cli, a, sysroot, &cur, &spec, file);
    }
    if a.check {
        let plan = pull(sysroot.repo(), &remote, &pull_opts, progress.as_ref())?;
        let newest = plan.refs.first().map(|r| r.new);
        let available = newest.is_some_and(|n| n != cur.csum);
        if cli.json {
            output::json(
                "UpgradeCheck",
                &json!({"current": cur.csum.to_hex(), "updateAvailable": available, "plan": plan.plan}),
            )?;
        } else if available {
            let bytes: u64 = plan.plan.iter().flatten().map(|p| p.bytes).sum();
            output::lines([format!("update available for {refspec}: {bytes} bytes to fetch")])?;
        } else {
            output::lines([format!("{refspec}: no update ({} is current)", cur.csum)])?;
        }
        return Ok(if available { ExitCode::SUCCESS } else { ExitCode::from(EXIT_NO_UPDATE) });
    }
    let pulled = pull(sysroot.repo(), &remote, &pull_opts, progress.as_ref())?;
    let new = pulled.refs.first().map(|r| r.new).ok_or_else(|| anyhow!("pull resolved no commit for {refspec}"))?;
    finish_upgrade(cli, a, sysroot, &cur, refspec, new)
}

/// `upgrade --from-file`: the same checks as a pull (signatures with the
/// origin remote's keys, the commit's ref binding, no downgrade), from a
/// bundle; then the same deploy.
fn upgrade_from_file(
    cli: &Cli,
    a: &UpgradeArgs,
    sysroot: Sysroot,
    cur: &Deployment,
    spec: &RefSpec,
    file: &std::path::Path,
) -> Result<ExitCode> {
    let repo = sysroot.repo();
    let remote_name = spec.remote.as_deref().unwrap_or_default();
    let remote = crate::pull::remote::Remote::load(repo, remote_name)?;
    let trust = if remote.sign_verify { Some(remote.trust(&cli.sysroot)?) } else { None };
    let bundle = crate::repo::delta::bundle::Bundle::open(file, trust.as_ref())?;
    let new = bundle.superblock.to;
    let commit = repo_format::Commit::from_bytes(&bundle.superblock.commit)?;
    crate::pull::check_binding(&commit, spec, &new)?;
    crate::pull::check_downgrade(repo, spec, &commit, &new, a.allow_downgrade)?;
    let refspec = spec.to_string();
    if a.check {
        let available = new != cur.csum;
        if cli.json {
            output::json(
                "UpgradeCheck",
                &json!({"current": cur.csum.to_hex(), "updateAvailable": available, "commit": new}),
            )?;
        } else if available {
            output::lines([format!("{} offers {new} for {refspec}", file.display())])?;
        } else {
            output::lines([format!("{refspec}: no update ({} is current)", cur.csum)])?;
        }
        return Ok(if available { ExitCode::SUCCESS } else { ExitCode::from(EXIT_NO_UPDATE) });
    }
    drop(bundle);
    let max_object = remote.max_object_size()?;
    super::delta_cmd::apply_file(cli, repo, file, trust.as_ref(), max_object)?;
    repo.set_ref(spec, Some(&new))?;
    finish_upgrade(cli, a, sysroot, cur, &refspec, new)
}

/// After the new commit is here: preview it, or deploy it (and reboot).
fn finish_upgrade(
    cli: &Cli,
    a: &UpgradeArgs,
    mut sysroot: Sysroot,
    cur: &Deployment,
    refspec: &str,
    new: Checksum,
) -> Result<ExitCode> {
    if new == cur.csum {
        if !cli.quiet {
            output::lines([format!("{refspec}: no update ({new} is current)")])?;
        }
        return Ok(ExitCode::from(EXIT_NO_UPDATE));
    }
    if a.preview {
        let changes = diff(sysroot.repo(), &cur.csum, &new)?;
        let packages =
            match (packages::dpkg_packages(sysroot.repo(), &cur.csum)?, packages::dpkg_packages(sysroot.repo(), &new)?)
            {
                (Some(old), Some(newp)) => Some(packages::diff(&old, &newp)),
                _ => None,
            };
        if cli.json {
            output::json(
                "UpgradePreview",
                &json!({"from": cur.csum.to_hex(), "to": new.to_hex(), "changes": changes, "packages": packages}),
            )?;
        } else {
            let mut lines: Vec<String> = packages
                .iter()
                .flatten()
                .map(|p| match (&p.old, &p.new) {
                    (Some(o), Some(n)) => format!("package {} {o} -> {n}", p.name),
                    (None, Some(n)) => format!("package {} added {n}", p.name),
                    (Some(o), None) => format!("package {} removed {o}", p.name),
                    (None, None) => String::new(),
                })
                .collect();
            lines.extend(changes.iter().map(|e| format!("{}    {}", e.change.letter(), e.path)));
            output::lines(lines)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let opts = DeployOptions {
        osname: Some(cur.osname.clone()),
        stage: a.stage,
        refspec: Some(refspec.to_owned()),
        ..DeployOptions::default()
    };
    let out = deploy(&mut sysroot, &new, &opts)?;
    report_deploy(cli, &out)?;
    if a.reboot {
        if !sysroot.is_running_system() {
            bail!("--reboot: {} is not the running system", cli.sysroot.display());
        }
        let st = std::process::Command::new("systemctl").arg("reboot").status().context("running systemctl reboot")?;
        if !st.success() {
            bail!("systemctl reboot failed ({st})");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `status`.
pub fn run_status(cli: &Cli) -> Result<ExitCode> {
    let sysroot = open(cli)?;
    print_status(cli, &sysroot)?;
    Ok(ExitCode::SUCCESS)
}

/// The deployment `rollback` makes the default: the booted one if an
/// update is pending, else the next one.
fn rollback_target(sysroot: &Sysroot) -> Option<usize> {
    match sysroot.booted {
        Some(b) if b > 0 => Some(b),
        _ => (sysroot.deployments.len() > 1).then_some(1),
    }
}

/// `rollback`.
pub fn run_rollback(cli: &Cli) -> Result<ExitCode> {
    let mut sysroot = open(cli)?;
    if sysroot.staged.is_some() {
        staged::discard(&mut sysroot)?;
    }
    let target = rollback_target(&sysroot).ok_or_else(|| anyhow!("there is no deployment to roll back to"))?;
    let mut list = sysroot.deployments.clone();
    let d = list.remove(target);
    let name = d.name();
    list.insert(0, d);
    bootswap::write_deployments(&mut sysroot, list)?;
    if !cli.quiet && !cli.json {
        output::lines([format!("{name} is the default again; it boots next")])?;
    }
    if cli.json {
        print_status(cli, &sysroot)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn protected(sysroot: &Sysroot, index: usize) -> Option<&'static str> {
    if sysroot.booted == Some(index) {
        return Some("it is the booted deployment");
    }
    if sysroot.booted.is_none() && index == 0 {
        return Some("it is the default deployment");
    }
    if rollback_target(sysroot) == Some(index) {
        return Some("it is the rollback target");
    }
    None
}

/// `undeploy INDEX`.
pub fn run_undeploy(cli: &Cli, index: usize) -> Result<ExitCode> {
    let mut sysroot = open(cli)?;
    let d = sysroot.deployments.get(index).ok_or_else(|| anyhow!("no deployment {index}; see `status`"))?;
    if let Some(why) = protected(&sysroot, index) {
        bail!("refusing to remove deployment {index} ({}): {why}", d.name());
    }
    let mut list = sysroot.deployments.clone();
    list.remove(index);
    bootswap::write_deployments(&mut sysroot, list)?;
    print_status(cli, &sysroot)?;
    Ok(ExitCode::SUCCESS)
}

/// `cleanup`.
pub fn run_cleanup(cli: &Cli) -> Result<ExitCode> {
    let mut sysroot = open(cli)?;
    let report = bootswap::cleanup(&mut sysroot)?;
    if cli.json {
        output::json("Cleanup", &report)?;
    } else if !cli.quiet {
        output::lines([format!(
            "removed {} deployment(s), {} kernel dir(s), {} repository object(s)",
            report.deployments.len(),
            report.boot_dirs.len(),
            report.objects_pruned
        )])?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `pin INDEX [--unpin]`.
pub fn run_pin(cli: &Cli, index: usize, unpin: bool) -> Result<ExitCode> {
    let sysroot = open(cli)?;
    let mut d =
        sysroot.deployments.get(index).cloned().ok_or_else(|| anyhow!("no deployment {index}; see `status`"))?;
    if unpin {
        d.origin.remove_key(crate::sysroot::deployment::TRANSIENT_GROUP, "pinned");
    } else {
        d.origin.set(crate::sysroot::deployment::TRANSIENT_GROUP, "pinned", "true");
    }
    crate::sysroot::deploy::write_origin(&sysroot, &d)?;
    let sysroot = open(cli)?;
    print_status(cli, &sysroot)?;
    Ok(ExitCode::SUCCESS)
}

/// `kargs`.
pub fn run_kargs(cli: &Cli, a: &KargsArgs) -> Result<ExitCode> {
    let mut sysroot = open(cli)?;
    let mut list = sysroot.deployments.clone();
    let d = list.first_mut().ok_or_else(|| anyhow!("no deployment"))?;
    if a.append.is_empty() && a.delete.is_empty() && a.replace.is_empty() {
        let k = d.kargs.to_string();
        if cli.json {
            output::json("Kargs", &json!({"deployment": d.name(), "kargs": k}))?;
        } else {
            output::lines([k])?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    for k in &a.delete {
        if k.contains('=') {
            d.kargs.delete_exact(k)
        } else {
            d.kargs.delete(k)
        };
    }
    for k in &a.append {
        d.kargs.append(k).with_context(|| format!("--append {k}"))?;
    }
    for k in &a.replace {
        d.kargs.replace(k).with_context(|| format!("--replace {k}"))?;
    }
    if sysroot.staged.is_some() {
        staged::discard(&mut sysroot)?;
    }
    bootswap::write_deployments(&mut sysroot, list)?;
    let k = sysroot.deployments.first().map(|d| d.kargs.to_string()).unwrap_or_default();
    if cli.json {
        output::json("Kargs", &json!({"kargs": k}))?;
    } else if !cli.quiet {
        output::lines([k])?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `etc-diff [REV]`: what the merge into REV's `/etc` would do.
pub fn run_etc_diff(cli: &Cli, rev: Option<&str>) -> Result<ExitCode> {
    let sysroot = open(cli)?;
    let cur = current(&sysroot)?;
    let mdir = sysroot.dir().open_dir(cur.dir())?;
    let old_default = mdir.open_dir("usr/etc").context("the current deployment has no /usr/etc")?;
    let old_local = mdir.open_dir("etc").context("the current deployment has no /etc")?;
    let plan = match rev {
        None => etcmerge::plan(&old_default, &old_local, &old_default)?,
        Some(rev) => {
            let commit: Checksum = resolve(&sysroot, rev)?.0;
            // The new defaults, checked out into the repository's tmp.
            let tmp = sysroot.repo().tmp_dir();
            let name = format!("{}etc-diff", crate::fsutil::TEMP_PREFIX);
            tmp.remove_all(&name)?;
            let dest = sysroot.repo().path().join("tmp").join(&name);
            let opts = crate::repo::checkout::CheckoutOptions {
                hardlink: false,
                user_mode: true,
                subpath: Some("usr/etc".into()),
            };
            let r =
                crate::repo::checkout::checkout(sysroot.repo(), &commit, &dest, &opts, &crate::progress::NoProgress)
                    .and_then(|_| etcmerge::plan(&old_default, &old_local, &tmp.open_dir(&name)?));
            tmp.remove_all(&name)?;
            r?
        }
    };
    if cli.json {
        output::json("EtcDiff", &plan)?;
    } else {
        output::lines(plan.changes.iter().map(|c| {
            let mut l = format!("{:?} /etc/{}", c.action, c.path);
            if let Some(x) = &c.conflict {
                l.push_str(&format!(" (conflict: {x})"));
            }
            l
        }))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `finalize-staged`.
pub fn run_finalize(cli: &Cli) -> Result<ExitCode> {
    let mut sysroot = open(cli)?;
    let r = staged::finalize(&mut sysroot)?;
    if cli.json {
        output::json("Finalize", &r)?;
    } else if !cli.quiet {
        output::lines([format!("{r:?}")])?;
    }
    Ok(ExitCode::SUCCESS)
}
