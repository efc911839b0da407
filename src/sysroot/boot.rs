//! Boot settings and per-deployment boot state (see `bootloader/README.md`).
//!
//! Settings live in the sysroot repository's config, group
//! `[photon-upgrade]` (OSTree ignores it): `bootloader=none|systemd-boot|grub`,
//! `esp=` (the boot partition, relative to the sysroot, default `boot/efi`)
//! and `boot-tries=` (default 3). A deployment's state lives in its
//! `.origin` file, group `[photon-upgrade]`: `boot=unproven|good|failed`
//! and `boot-failure=` (why it failed). A deployment without the key (one
//! OSTree made, or one from before boot counting) is good.

use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};

use super::deployment::Deployment;
use super::{Sysroot, esp, grubview};
use crate::repo::Repo;
use crate::repo::keyfile::KeyFile;

/// The group our keys live in, in the repo config and in origin files.
pub const GROUP: &str = "photon-upgrade";
/// Default number of boots a new deployment gets to prove itself.
pub const DEFAULT_TRIES: u32 = 3;
/// Most tries allowed (GRUB's counter is a comparison ladder).
pub const MAX_TRIES: u32 = 9;
/// Default way GRUB finds the ESP.
pub const DEFAULT_GRUB_SEARCH: &str = "label:ESP";
/// Default GRUB menu timeout, seconds.
pub const DEFAULT_MENU_TIMEOUT: u32 = 5;
/// Default boot partition, relative to the sysroot.
pub const DEFAULT_ESP: &str = "boot/efi";

/// Which bootloader follows the boot configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// The firmware reads `/boot/loader` itself (or nothing does).
    None,
    /// systemd-boot: entries and kernels on a vfat ESP or XBOOTLDR partition.
    SystemdBoot,
    /// GRUB: a generated `grub.cfg` and a grubenv counter on the ESP.
    Grub,
}

impl Backend {
    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Backend::None => "none",
            Backend::SystemdBoot => "systemd-boot",
            Backend::Grub => "grub",
        }
    }

    fn parse(s: &str) -> Result<Backend> {
        match s {
            "none" => Ok(Backend::None),
            "systemd-boot" => Ok(Backend::SystemdBoot),
            "grub" => Ok(Backend::Grub),
            _ => bail!(
                "unknown bootloader {s:?} in [{GROUP}] of the sysroot repository config (none, systemd-boot, grub)"
            ),
        }
    }
}

/// Boot settings of a sysroot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootConfig {
    /// The backend.
    pub backend: Backend,
    /// The boot partition, relative to the sysroot.
    pub esp: PathBuf,
    /// Boots a new deployment gets before the previous one is booted again.
    pub tries: u32,
    /// GRUB: how it finds the ESP (`label:LABEL` or `uuid:UUID`).
    pub grub_search: String,
    /// GRUB: menu timeout in seconds.
    pub menu_timeout: u32,
}

impl Default for BootConfig {
    fn default() -> Self {
        BootConfig {
            backend: Backend::None,
            esp: PathBuf::from(DEFAULT_ESP),
            tries: DEFAULT_TRIES,
            grub_search: DEFAULT_GRUB_SEARCH.into(),
            menu_timeout: DEFAULT_MENU_TIMEOUT,
        }
    }
}

impl BootConfig {
    /// Reads the settings from a sysroot repository's config.
    pub fn load(repo: &Repo) -> Result<BootConfig> {
        let c = repo.config();
        let mut cfg = BootConfig::default();
        if let Some(b) = c.get(GROUP, "bootloader") {
            cfg.backend = Backend::parse(b)?;
        }
        if let Some(e) = c.get(GROUP, "esp") {
            cfg.esp = esp_path(e)?;
        }
        if let Some(t) = c.get(GROUP, "boot-tries") {
            cfg.tries = parse_tries(t)?;
        }
        if let Some(g) = c.get(GROUP, "grub-search") {
            cfg.grub_search = g.to_owned();
        }
        if let Some(t) = c.get(GROUP, "menu-timeout") {
            cfg.menu_timeout =
                t.trim().parse().map_err(|_| anyhow!("menu-timeout={t:?} is not a number of seconds"))?;
        }
        Ok(cfg)
    }

    /// Writes the settings into a sysroot repository's config.
    pub fn save(&self, repo: &mut Repo) -> Result<()> {
        let mut c = repo.config().clone();
        c.set(GROUP, "bootloader", self.backend.name());
        c.set(GROUP, "esp", &self.esp.to_string_lossy());
        c.set(GROUP, "boot-tries", &self.tries.to_string());
        c.set(GROUP, "grub-search", &self.grub_search);
        c.set(GROUP, "menu-timeout", &self.menu_timeout.to_string());
        repo.write_config(c)
    }
}

/// Checks an `esp=` value: a relative path of plain components.
pub fn esp_path(s: &str) -> Result<PathBuf> {
    let p = PathBuf::from(s.trim_start_matches('/'));
    if p.as_os_str().is_empty() || p.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        bail!("esp={s:?}: give the boot partition's mount point, e.g. /boot/efi");
    }
    Ok(p)
}

/// Checks a `boot-tries` value.
pub fn parse_tries(s: &str) -> Result<u32> {
    let t: u32 = s.trim().parse().map_err(|_| anyhow!("boot-tries={s:?} is not a number"))?;
    if !(1..=MAX_TRIES).contains(&t) {
        bail!("boot-tries={t}: give 1 to {MAX_TRIES}");
    }
    Ok(t)
}

/// Where a deployment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BootState {
    /// Deployed, never booted to `boot-complete.target`: counted.
    Unproven,
    /// A boot of it reached `boot-complete.target`.
    Good,
    /// Its tries ran out; not booted again unless picked by hand.
    Failed,
}

/// The state recorded in `d`'s origin.
pub fn state(d: &Deployment) -> BootState {
    match d.origin.get(GROUP, "boot") {
        Some("unproven") => BootState::Unproven,
        Some("failed") => BootState::Failed,
        _ => BootState::Good,
    }
}

/// Why `d` failed, if recorded.
pub fn failure(d: &Deployment) -> Option<&str> {
    d.origin.get(GROUP, "boot-failure")
}

/// Sets the state in an origin (the caller writes it).
pub fn set_state(origin: &mut KeyFile, s: BootState, failure: Option<&str>) {
    origin.set(
        GROUP,
        "boot",
        match s {
            BootState::Unproven => "unproven",
            BootState::Good => "good",
            BootState::Failed => "failed",
        },
    );
    match failure {
        Some(f) => origin.set(GROUP, "boot-failure", &f.replace('\n', " ")),
        None => {
            origin.remove_key(GROUP, "boot-failure");
        }
    }
}

/// Makes the configured bootloader's view follow the truth
/// (`/boot/loader`): after every switch, and before anything removes what
/// an older view may still name.
pub fn sync_view(sysroot: &Sysroot) -> Result<()> {
    let cfg = BootConfig::load(sysroot.repo())?;
    match cfg.backend {
        Backend::None => Ok(()),
        Backend::SystemdBoot => esp::sync(sysroot, &cfg).map(|_| ()),
        Backend::Grub => grubview::sync(sysroot, &cfg),
    }
}

/// Work a staged deployment's view needs that can fail (kernels onto the
/// partition), done at stage time so shutdown only writes entries.
pub fn stage_view(sysroot: &Sysroot, staged: &Deployment) -> Result<()> {
    let cfg = BootConfig::load(sysroot.repo())?;
    match cfg.backend {
        Backend::None => Ok(()),
        Backend::SystemdBoot | Backend::Grub => esp::copy_kernels_of(sysroot, &cfg, staged),
    }
}

/// Tries `d` has left in the bootloader's counter (`None`: not counted).
pub fn tries_left(sysroot: &Sysroot, cfg: &BootConfig, d: &Deployment) -> Result<Option<u32>> {
    match cfg.backend {
        Backend::None => Ok(None),
        Backend::SystemdBoot => Ok(esp::entry_of(sysroot, cfg, d)?.and_then(|p| p.counter).map(|c| c.tries_left())),
        Backend::Grub => grubview::tries_left(sysroot, cfg, d),
    }
}

/// A deployment's boot state as `status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootInfo {
    /// State.
    pub state: BootState,
    /// Tries left in the bootloader's counter (counted deployments).
    pub tries_left: Option<u32>,
    /// Why it failed (failed deployments), or what its last boot reported.
    pub failure: Option<String>,
}

/// `d`'s boot state, with the bootloader's counter.
pub fn info(sysroot: &Sysroot, cfg: &BootConfig, d: &Deployment) -> BootInfo {
    let state = state(d);
    let tries_left = if state == BootState::Good { None } else { tries_left(sysroot, cfg, d).ok().flatten() };
    let failure = failure(d).or_else(|| d.origin.get(GROUP, "boot-last-failure")).map(str::to_owned);
    BootInfo { state, tries_left, failure }
}

/// The booted deployment, or why there is none to act on.
fn booted(sysroot: &Sysroot) -> Result<Deployment> {
    if let Some(m) = &sysroot.booted_mismatch {
        bail!("{m}; refusing to guess which deployment is running");
    }
    sysroot.booted_deployment().cloned().ok_or_else(|| {
        anyhow!(
            "this system was not booted through a deployment of {} (no ostree= on the kernel command line naming one); \
             boot counting applies only to systems booted through photon-upgrade's entries",
            sysroot.path().display()
        )
    })
}

/// What `boot mark-good` did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MarkGood {
    /// The booted deployment, now good.
    pub deployment: String,
    /// True if this call blessed it (it was unproven or failed).
    pub blessed: bool,
    /// The default deployment found failed (its tries spent) and moved
    /// after the booted one.
    pub failed: Option<String>,
}

/// `boot mark-good`: the booted deployment reached `boot-complete.target`.
/// Records it good and blesses its entry; if the default deployment is
/// another one whose tries are spent (the firmware fell back to us), it is
/// recorded failed and the booted one becomes the default again.
pub fn mark_good(sysroot: &mut Sysroot) -> Result<MarkGood> {
    let cfg = BootConfig::load(sysroot.repo())?;
    let mut me = booted(sysroot)?;
    let blessed = state(&me) != BootState::Good;
    if blessed {
        set_state(&mut me.origin, BootState::Good, None);
        me.origin.remove_key(GROUP, "boot-last-failure");
        super::deploy::write_origin(sysroot, &me)?;
    }
    match cfg.backend {
        Backend::None => {}
        Backend::SystemdBoot => {
            esp::bless(sysroot, &cfg, &me)?;
        }
        Backend::Grub => grubview::bless(sysroot, &cfg, &me)?,
    }
    sysroot.load()?;
    let mut failed = None;
    // (Already recorded failed: an earlier run stopped before reordering.)
    if let Some(default) = sysroot.deployments.first().cloned()
        && !default.same_as(&me)
        && (state(&default) == BootState::Failed
            || (state(&default) == BootState::Unproven && tries_left(sysroot, &cfg, &default)? == Some(0)))
    {
        if state(&default) != BootState::Failed {
            let mut why = format!("no boot of it reached boot-complete.target in {} tries", cfg.tries);
            if let Some(last) = default.origin.get(GROUP, "boot-last-failure") {
                why.push_str(&format!("; last: {last}"));
            }
            let mut d = default.clone();
            set_state(&mut d.origin, BootState::Failed, Some(&why));
            super::deploy::write_origin(sysroot, &d)?;
            sysroot.load()?;
        }
        // The booted deployment first; the failed one stays, after it.
        let mut list: Vec<Deployment> = sysroot.deployments.iter().filter(|x| x.same_as(&me)).cloned().collect();
        list.extend(sysroot.deployments.iter().filter(|x| !x.same_as(&me)).cloned());
        super::bootswap::write_deployments(sysroot, list)?;
        failed = Some(default.name());
    } else if blessed {
        // A failed deployment picked by hand and good after all: its view
        // loses the exhausted counter.
        sync_view(sysroot)?;
    }
    Ok(MarkGood { deployment: me.name(), blessed, failed })
}

/// Where health reports of `d`'s stateroot are kept: its `/var`, seen from
/// the sysroot (on a booted host, the same directory as
/// `/var/lib/photon-upgrade/health`).
pub fn health_dir(sysroot: &Sysroot, d: &Deployment) -> PathBuf {
    sysroot.path().join(format!("ostree/deploy/{}/var/lib/photon-upgrade/health", d.osname))
}

/// The summary of the booted deployment's newest health report.
pub fn last_health_summary(sysroot: &Sysroot) -> Option<String> {
    let me = sysroot.booted_deployment()?;
    let reports = crate::health::load_reports(&health_dir(sysroot, me), &me.name()).ok()?;
    reports.into_iter().rev().find_map(|r| r.report.ok()).map(|r| r.summary())
}

/// What `boot failed` decided.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failed {
    /// The booted deployment.
    pub deployment: String,
    /// True if a reboot lets the bootloader try again or fall back; false
    /// when the booted deployment is good (a reboot would not help).
    pub reboot: bool,
}

/// `boot failed`: this boot will not reach `boot-complete.target`
/// (`reason`). Records it on an unproven deployment and says whether to
/// reboot: only an unproven deployment is retried or left behind by the
/// bootloader; rebooting a good one would only loop.
pub fn failed(sysroot: &mut Sysroot, reason: &str) -> Result<Failed> {
    let mut me = booted(sysroot)?;
    let reboot = state(&me) != BootState::Good;
    if reboot {
        me.origin.set(GROUP, "boot-last-failure", &reason.replace('\n', " "));
        super::deploy::write_origin(sysroot, &me)?;
    }
    Ok(Failed { deployment: me.name(), reboot })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse() {
        assert_eq!(esp_path("/boot/efi").expect("ok"), PathBuf::from("boot/efi"));
        assert!(esp_path("../x").is_err());
        assert!(esp_path("/").is_err());
        assert!(esp_path("boot/../../x").is_err());
        assert_eq!(parse_tries("3").expect("ok"), 3);
        assert!(parse_tries("0").is_err());
        assert!(parse_tries("10").is_err());
        assert!(parse_tries("x").is_err());
        assert!(Backend::parse("grub2").is_err());
        for b in [Backend::None, Backend::SystemdBoot, Backend::Grub] {
            assert_eq!(Backend::parse(b.name()).expect("round trip"), b);
        }
    }

    #[test]
    fn states_round_trip() {
        let mut o = KeyFile::new();
        for (s, f) in [
            (BootState::Unproven, None),
            (BootState::Failed, Some("no good boot\nin 3 tries")),
            (BootState::Good, None),
        ] {
            set_state(&mut o, s, f);
            let d = Deployment { origin: o.clone(), ..Deployment::for_tests() };
            assert_eq!(state(&d), s);
            assert_eq!(failure(&d), f.map(|f| f.replace('\n', " ")).as_deref());
        }
    }
}
