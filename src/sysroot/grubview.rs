//! The GRUB view: a generated `grub/grub.cfg` and a grubenv counter on the
//! ESP, kernels beside them as for systemd-boot (`esp.rs`).
//!
//! Which deployment is pending (counted) changes only with `grub.cfg`,
//! replaced by one rename; grubenv only counts attempts and records the
//! blessing (`bootloader/src/grub.rs`). Debian's GRUB reads the ESP through
//! its FAT driver, so the kernels are copied there.

use std::io::{Read, Seek, Write};

use anyhow::{Context, Result, anyhow};
use bootloader::grub::{self, CountState, EntryId, GrubConfig, MenuEntry, Pending, Search, Settings};
use bootloader::grubenv::{ENVBLK_SIZE, Envblk};

use super::Sysroot;
use super::boot::{BootConfig, BootState};
use super::deployment::Deployment;
use super::esp;
use crate::fsutil::Dir;

/// `grub.cfg` and grubenv, below the partition.
pub const CFG: &str = "grub/grub.cfg";
/// The environment block, below the partition (as `Settings::env_file`).
pub const ENV: &str = "grub/grubenv";

/// The menu id of a deployment (ids must start with a letter).
pub fn entry_id(d: &Deployment) -> Result<EntryId> {
    Ok(EntryId::new(&format!("photon-{}", d.boot_id()))?)
}

fn settings(cfg: &BootConfig) -> Result<Settings> {
    let search = match cfg.grub_search.split_once(':') {
        Some(("label", l)) => Search::Label(l.to_owned()),
        Some(("uuid", u)) => Search::FsUuid(u.to_owned()),
        _ => anyhow::bail!("grub-search={:?}: give label:LABEL or uuid:UUID of the ESP", cfg.grub_search),
    };
    let mut s = Settings::new(search);
    s.tries = u8::try_from(cfg.tries).map_err(|_| anyhow!("boot-tries={} is too large", cfg.tries))?;
    s.timeout_secs = cfg.menu_timeout;
    s.env_file = format!("/{ENV}");
    Ok(s)
}

/// The menu the truth calls for.
fn config(cfg: &BootConfig, want: &[esp::Wanted]) -> Result<GrubConfig> {
    let mut entries = Vec::new();
    for w in want {
        let id = EntryId::new(&format!("photon-{}", w.id))?;
        entries.push(MenuEntry::from_bls(id, &w.entry).with_context(|| format!("the boot entry of {}", w.id))?);
    }
    // The default is pending while unproven, with the first good one after
    // it to fall back to (none: nothing to fall back to, so not counted).
    let pending = match want.first() {
        Some(first) if first.state == BootState::Unproven => want
            .iter()
            .zip(&entries)
            .skip(1)
            .find(|(w, _)| w.state == BootState::Good)
            .map(|(_, e)| Pending { id: entries[0].id().clone(), fallback: e.id().clone() }),
        _ => None,
    };
    Ok(GrubConfig::new(entries, settings(cfg)?, pending)?)
}

/// Reads grubenv (a new one if absent).
fn read_env(part: &Dir) -> Result<Option<Envblk>> {
    let Some(f) = part.open_file_optional(ENV)? else { return Ok(None) };
    let mut data = Vec::with_capacity(ENVBLK_SIZE);
    f.take(ENVBLK_SIZE as u64 + 1).read_to_end(&mut data)?;
    Ok(Some(Envblk::parse(&data).with_context(|| format!("{}", part.display(ENV).display()))?))
}

/// Rewrites grubenv in place: GRUB's `save_env` writes into the blocks the
/// file already has, so it keeps them (1024 bytes, one write, fsync).
fn write_env(part: &Dir, env: &Envblk) -> Result<()> {
    let mut f = part.open_file_rw(ENV)?;
    f.rewind()?;
    f.write_all(&env.to_bytes())?;
    f.sync_all().with_context(|| format!("writing {}", part.display(ENV).display()))?;
    Ok(())
}

/// Makes `grub.cfg` (and the kernels) follow the truth.
pub fn sync(sysroot: &Sysroot, cfg: &BootConfig) -> Result<()> {
    let part = esp::open(sysroot, cfg)?;
    let want = esp::wanted(sysroot, cfg, &[])?;
    if want.is_empty() {
        return Ok(());
    }
    let menu = config(cfg, &want)?;
    esp::copy_kernels(sysroot, &part, &want)?;
    part.ensure_dir("grub", 0o755)?;
    let grub_dir = part.open_dir("grub")?;
    if read_env(&part)?.is_none() {
        // Created once, full size, before any cfg counts with it.
        grub_dir.write_atomic("grubenv", &Envblk::new().to_bytes(), 0o644)?;
    }
    let text = menu.render();
    let same = match grub_dir.open_file_optional("grub.cfg")? {
        Some(f) => {
            let mut old = String::new();
            f.take(1 << 20).read_to_string(&mut old)?;
            old == text
        }
        None => false,
    };
    if !same {
        grub_dir.write_atomic("grub.cfg", text.as_bytes(), 0o644).context("writing grub/grub.cfg")?;
        grub_dir.fsync()?;
    }
    esp::gc_kernels(sysroot, &part, &want)?;
    Ok(())
}

/// Where the counter of `d` stands: `Some(left)` while `d` is the pending
/// deployment, `None` otherwise.
pub fn tries_left(sysroot: &Sysroot, cfg: &BootConfig, d: &Deployment) -> Result<Option<u32>> {
    let part = esp::open(sysroot, cfg)?;
    let want = esp::wanted(sysroot, cfg, &[])?;
    if want.is_empty() {
        return Ok(None);
    }
    let menu = config(cfg, &want)?;
    let id = entry_id(d)?;
    if menu.pending().is_none_or(|p| p.id != id) {
        return Ok(None);
    }
    let env = read_env(&part)?.unwrap_or_default();
    Ok(match menu.next_boot(&env).state {
        CountState::Trying { used, tries } => Some(u32::from(tries - used)),
        CountState::Spent { .. } => Some(0),
        CountState::Blessed | CountState::NotCounted => None,
    })
}

/// Records `d` good in grubenv.
pub fn bless(sysroot: &Sysroot, cfg: &BootConfig, d: &Deployment) -> Result<()> {
    let part = esp::open(sysroot, cfg)?;
    let mut env =
        read_env(&part)?.ok_or_else(|| anyhow!("{} is missing; run `boot sync`", part.display(ENV).display()))?;
    let id = entry_id(d)?;
    if env.get(grub::VAR_GOOD) == Some(id.as_str()) {
        return Ok(());
    }
    grub::mark_good(&mut env, &id).context("grubenv has no room for the blessing")?;
    write_env(&part, &env)
}
