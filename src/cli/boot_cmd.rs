//! `boot ...`: boot counting from the running system (run by the units in
//! `systemd/`), and the bootloader's view.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;

use super::{Cli, output};
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
    /// Record that this boot failed (a health check, or the deadline) and
    /// reboot if the bootloader will try again or fall back.
    Failed {
        /// What failed.
        #[arg(long, default_value = "a health check failed")]
        reason: String,
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
        BootCommand::Failed { reason, no_reboot } => {
            let mut sysroot = open(cli)?;
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
