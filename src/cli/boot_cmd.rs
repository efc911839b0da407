//! `boot ...`: boot counting from the running system (run by the units in
//! `systemd/`), and the bootloader's view.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use serde_json::json;

use super::{Cli, output};
use crate::health;
use crate::sysroot::Sysroot;
use crate::sysroot::boot::{self, BootConfig, BootState};

/// `boot` subcommands.
#[derive(Debug, Subcommand)]
pub enum BootCommand {
    /// Bless the booted deployment: its boot reached boot-complete.target
    /// (run by photon-upgrade-mark-good.service). If the firmware fell back
    /// to it from a newer deployment whose tries ran out, that one is
    /// recorded failed and this one becomes the default again.
    MarkGood,
    /// Run this boot's health checks (photon-upgrade-health.service): the
    /// executables in /etc/photon-upgrade/health.d and
    /// /usr/lib/photon-upgrade/health.d; fails if a required one fails.
    CheckHealth {
        /// Seconds each check gets before it is killed.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Check directories, highest priority first (tests).
        #[arg(long = "check-dir", hide = true)]
        check_dirs: Vec<PathBuf>,
    },
    /// Record that this boot failed (a health check, or the deadline) and
    /// reboot if the bootloader will try again or fall back.
    Failed {
        /// What failed [default: the summary of this boot's health report].
        #[arg(long)]
        reason: Option<String>,
        /// Record only; do not reboot.
        #[arg(long)]
        no_reboot: bool,
    },
    /// Boot counting state: the bootloader, and each deployment's state and tries left.
    Status,
    /// Rewrite the bootloader's entries from the boot configuration (after
    /// an interrupted update, or a changed --esp).
    Sync,
}

fn open(cli: &Cli) -> Result<Sysroot> {
    Sysroot::open(&cli.sysroot, cli.host.env())
}

/// Runs a `boot` subcommand.
pub fn run(cli: &Cli, cmd: &BootCommand) -> Result<ExitCode> {
    match cmd {
        BootCommand::MarkGood => {
            let mut sysroot = open(cli)?;
            let out = boot::mark_good(&mut sysroot)?;
            // The deadline timer's condition: this boot is good.
            let run = cli.host.run_dir.join("photon-upgrade");
            std::fs::create_dir_all(&run).with_context(|| format!("creating {}", run.display()))?;
            std::fs::write(run.join("boot-good"), format!("{}\n", out.deployment))
                .with_context(|| format!("writing {}/boot-good", run.display()))?;
            if cli.json {
                output::json("MarkGood", &out)?;
            } else if !cli.quiet {
                let mut lines = vec![if out.blessed {
                    format!("{}: marked good", out.deployment)
                } else {
                    format!("{}: already good", out.deployment)
                }];
                if let Some(f) = &out.failed {
                    lines.push(format!(
                        "{f}: its boots failed; recorded failed, {} is the default again",
                        out.deployment
                    ));
                }
                output::lines(lines)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        BootCommand::CheckHealth { timeout, check_dirs } => {
            let sysroot = open(cli)?;
            let me = sysroot.booted_deployment().cloned().ok_or_else(|| {
                anyhow!("this system was not booted through a deployment of {}", sysroot.path().display())
            })?;
            let cfg = BootConfig::load(sysroot.repo())?;
            let info = boot::info(&sysroot, &cfg, &me);
            let attempt = match (info.state, info.tries_left) {
                (BootState::Good, _) => 0,
                (_, Some(left)) => cfg.tries.saturating_sub(left).max(1),
                (_, None) => 1,
            };
            let dirs = if check_dirs.is_empty() { health::default_check_dirs() } else { check_dirs.clone() };
            let name = me.name();
            let ctx = health::HealthContext { deployment: &name, boot_attempt: attempt, check_dirs: &dirs };
            let opts = health::HealthOptions { timeout: Duration::from_secs(*timeout) };
            let quiet = cli.quiet || cli.json;
            let report = health::run_checks(&ctx, &opts, &mut |ev| {
                if quiet {
                    return;
                }
                match ev {
                    health::HealthEvent::Starting(c) => eprintln!("health check {}: starting", c.name),
                    health::HealthEvent::Finished(r) => eprintln!(
                        "health check {}: {:?}{}",
                        r.name,
                        r.status,
                        r.reason.as_deref().map(|x| format!(" ({x})")).unwrap_or_default()
                    ),
                }
            })?;
            let state = boot::health_dir(&sysroot, &me);
            let file = health::save_report(&state, &report)?;
            for s in report.skipped.iter().filter(|s| !matches!(s.reason, health::SkipReason::Masked)) {
                eprintln!("warning: health check {} ({}) skipped: {:?}", s.name, s.path, s.reason);
            }
            for w in report.failed_wanted() {
                eprintln!("warning: wanted health check {} failed", w.name);
            }
            if cli.json {
                output::json(health::REPORT_KIND, &report)?;
            }
            if !report.passed {
                bail!("health checks failed: {}; report: {}", report.summary(), file.display());
            }
            if !quiet {
                output::lines([format!("health checks {}", report.summary())])?;
            }
            Ok(ExitCode::SUCCESS)
        }
        BootCommand::Failed { reason, no_reboot } => {
            let mut sysroot = open(cli)?;
            let reason = match reason {
                Some(r) => r.clone(),
                None => boot::last_health_summary(&sysroot).unwrap_or_else(|| "a health check failed".to_owned()),
            };
            let reason = &reason;
            let out = boot::failed(&mut sysroot, reason)?;
            if cli.json {
                output::json("BootFailed", &json!({"deployment": out.deployment, "reboot": out.reboot && !no_reboot}))?;
            } else if !cli.quiet {
                output::lines([if out.reboot {
                    format!(
                        "{}: boot failed ({reason}); rebooting lets the bootloader retry or fall back",
                        out.deployment
                    )
                } else {
                    format!("{}: boot failed ({reason}), but it is a good deployment: not rebooting", out.deployment)
                }])?;
            }
            if out.reboot && !no_reboot {
                let st = std::process::Command::new("systemctl")
                    .arg("reboot")
                    .status()
                    .context("running systemctl reboot")?;
                if !st.success() {
                    anyhow::bail!("systemctl reboot failed ({st})");
                }
            }
            Ok(if out.reboot { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        BootCommand::Status => {
            let sysroot = open(cli)?;
            let cfg = BootConfig::load(sysroot.repo())?;
            let deployments: Vec<_> = sysroot
                .deployments
                .iter()
                .map(|d| {
                    let i = boot::info(&sysroot, &cfg, d);
                    (d, i)
                })
                .collect();
            if cli.json {
                let ds: Vec<_> = deployments
                    .iter()
                    .map(|(d, i)| {
                        json!({"index": d.index, "deployment": d.name(), "osname": d.osname,
                               "booted": sysroot.booted == Some(d.index), "boot": i})
                    })
                    .collect();
                output::json("BootStatus", &json!({"config": cfg, "booted": sysroot.booted, "deployments": ds}))?;
            } else {
                let mut lines = vec![format!(
                    "bootloader: {} (partition {}, {} tries per new deployment)",
                    cfg.backend.name(),
                    cfg.esp.display(),
                    cfg.tries
                )];
                for (d, i) in &deployments {
                    let mark = if sysroot.booted == Some(d.index) { "*" } else { " " };
                    let state = match (i.state, i.tries_left) {
                        (BootState::Good, _) => "good".to_owned(),
                        (BootState::Unproven, Some(n)) => format!("unproven, {n} tries left"),
                        (BootState::Unproven, None) => "unproven".to_owned(),
                        (BootState::Failed, _) => "FAILED".to_owned(),
                    };
                    lines.push(format!("{mark} {} {} {}: {state}", d.index, d.osname, d.name()));
                    if let Some(f) = &i.failure {
                        lines.push(format!("      {f}"));
                    }
                }
                output::lines(lines)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        BootCommand::Sync => {
            let sysroot = open(cli)?;
            boot::sync_view(&sysroot)?;
            if !cli.quiet && !cli.json {
                output::lines(["the bootloader's entries follow the boot configuration"])?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
