//! Writing a new boot configuration, atomically.
//!
//! As OSTree's `write_deployments_bootswap`: the new configuration goes into
//! the *other* boot version (`boot/loader.NEW`, `ostree/boot.NEW.SUB`), the
//! kernels it needs into `boot/ostree/`, then everything is synced, and one
//! `rename(boot/loader.tmp → boot/loader)` switches. Nothing the current
//! configuration uses is touched before that rename, so at every instant
//! the bootloader sees a complete old or a complete new set of entries,
//! each naming a complete deployment. Cleanup of what the old configuration
//! used runs only after the switch.
//!
//! [`prepare`] does every fallible step; [`switch`] only renames; a staged
//! deployment calls them at stage time and at shutdown respectively.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use bootloader::bls::BlsEntry;

use super::Sysroot;
use super::deployment::Deployment;
use super::kernel;
use crate::fsutil::{self, Dir};
use crate::repo::prune::{PruneOptions, prune};
use crate::repo::refs::RefSpec;

/// A new configuration written to the other boot version, waiting for [`switch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Prepared {
    /// The boot version `boot/loader.tmp` points at.
    pub bootversion: u8,
    /// The sub-version of its bootlinks.
    pub subbootversion: u8,
}

/// Reads `os-release` of a deployment: `usr/lib/os-release`, else `etc/os-release`.
fn os_release(dir: &Dir) -> Result<BTreeMap<String, String>> {
    let text = match dir.open_file_optional("usr/lib/os-release")? {
        Some(f) => std::io::read_to_string(f.take(1 << 20))?,
        None => match dir.open_file_optional("etc/os-release")? {
            Some(f) => std::io::read_to_string(f.take(1 << 20))?,
            None => bail!("{} has neither usr/lib/os-release nor etc/os-release", dir.path().display()),
        },
    };
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_owned(), v.to_owned()))
        })
        .collect())
}

/// Copies a boot file into `/boot/ostree/OS-BOOTCSUM` unless present
/// (temp file, fsync, rename: a crash never leaves a half kernel).
fn install_boot_file(sysroot: &Sysroot, boot_dir: &Dir, file: &kernel::BootFile) -> Result<()> {
    if boot_dir.stat_optional(&file.install_name)?.is_some() {
        return Ok(());
    }
    let mut content = sysroot.repo().open_content(&file.object)?;
    let (mut f, tmp) = boot_dir.create_temp("k")?;
    let r = (|| -> Result<()> {
        std::io::copy(content.reader(), &mut f).with_context(|| format!("copying {}", file.path))?;
        fsutil::fd_chmod(&f, 0o644)?;
        f.flush()?;
        f.sync_all()?;
        boot_dir.rename(&tmp, boot_dir, &file.install_name)?;
        Ok(())
    })();
    if r.is_err() {
        let _ = boot_dir.unlink(&tmp);
    }
    r.with_context(|| format!("installing {} into {}", file.install_name, boot_dir.path().display()))
}

/// Replaces `name` in `dir` with a symlink to `target`, atomically.
fn symlink_replace(dir: &Dir, target: &str, name: &str) -> Result<()> {
    let tmp = dir.temp_name("l")?;
    dir.symlink(target, &tmp)?;
    dir.rename(&tmp, dir, name).with_context(|| format!("replacing {}", dir.display(name).display()))
}

/// Assigns indexes and boot serials (deployments sharing a BOOTCSUM are
/// numbered 0, 1, ... in order), as OSTree's `assign_bootserials`.
fn assign(deployments: &mut [Deployment]) {
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for (i, d) in deployments.iter_mut().enumerate() {
        d.index = i;
        let n = seen.entry(d.bootcsum.clone()).or_insert(0);
        d.bootserial = *n;
        *n += 1;
    }
}

/// Writes `new` as a complete configuration in the other boot version and
/// points `boot/loader.tmp` at it. The current configuration is untouched.
pub fn prepare(sysroot: &Sysroot, new: &mut [Deployment]) -> Result<Prepared> {
    if new.is_empty() {
        bail!("refusing to write a boot configuration with no deployment");
    }
    if let Some(b) = sysroot.booted_deployment()
        && !new.iter().any(|d| d.same_as(b))
    {
        bail!("refusing to remove the booted deployment {}", b.name());
    }
    assign(new);
    // A view left behind by an interrupted switch may still name bootlinks
    // of the boot version about to be rewritten: bring it up to date first.
    super::boot::sync_view(sysroot)?;
    let root = sysroot.dir();
    let new_bv = 1 - sysroot.bootversion;
    root.ensure_dir("boot", 0o755)?;
    let boot = root.open_dir("boot")?;
    let entries_rel = format!("loader.{new_bv}/entries");
    boot.remove_all(format!("loader.{new_bv}")).context("clearing the other boot version")?;
    boot.ensure_dir_all(&entries_rel, 0o755)?;
    let entries = boot.open_dir(&entries_rel)?;
    let show_osname = new.iter().any(|d| d.osname != new[0].osname);
    let n = new.len();
    for d in new.iter() {
        let (_, kernel_file, initramfs) =
            kernel::locate(sysroot.repo(), &d.csum).with_context(|| format!("deployment {}", d.name()))?;
        let files: Vec<&kernel::BootFile> = std::iter::once(&kernel_file).chain(initramfs.iter()).collect();
        boot.ensure_dir_all(d.boot_dir(), 0o755)?;
        let bdir = boot.open_dir(d.boot_dir())?;
        // Installed kernels were checked when installed; hash only to install.
        let mut missing = Vec::new();
        for f in &files {
            if bdir.stat_optional(&f.install_name)?.is_none() {
                missing.push(*f);
            }
        }
        if !missing.is_empty() {
            let bootcsum = kernel::boot_checksum(sysroot.repo(), &kernel_file, initramfs.as_ref())?;
            if bootcsum != d.bootcsum {
                bail!("deployment {} has kernel {bootcsum} but records boot checksum {}", d.name(), d.bootcsum);
            }
            for f in missing {
                install_boot_file(sysroot, &bdir, f)?;
            }
        }
        bdir.fsync()?;
        let deploy_dir = root.open_dir(d.dir()).with_context(|| format!("opening deployment {}", d.dir().display()))?;
        let osr = os_release(&deploy_dir)?;
        let pretty = osr
            .get("PRETTY_NAME")
            .or_else(|| osr.get("ID"))
            .ok_or_else(|| anyhow!("{}: os-release has no PRETTY_NAME or ID", d.dir().display()))?;
        let version = sysroot.repo().load_commit(&d.csum)?.version();
        let mut title = pretty.clone();
        if let Some(v) = version.as_deref().filter(|v| !v.is_empty() && !pretty.contains(*v)) {
            title.push(' ');
            title.push_str(v);
        }
        title.push_str(" (ostree");
        if show_osname {
            title.push(':');
            title.push_str(&d.osname);
        }
        title.push_str(&format!(":{})", d.index));
        let mut kargs = d.kargs.clone();
        kargs.replace(&d.ostree_karg(new_bv))?;
        let mut entry = BlsEntry::new();
        entry.set("title", &title)?;
        entry.set("version", &(n - d.index).to_string())?;
        entry.set("options", &kargs.to_string())?;
        entry.set("linux", &format!("/{}/{}", d.boot_dir().display(), kernel_file.install_name))?;
        if let Some(i) = &initramfs {
            entry.set("initrd", &format!("/{}/{}", d.boot_dir().display(), i.install_name))?;
        }
        let name = format!("ostree-{}-{}.conf", n - d.index, d.osname);
        entries
            .write_atomic(&name, entry.to_string().as_bytes(), 0o644)
            .with_context(|| format!("writing {entries_rel}/{name}"))?;
    }
    entries.fsync()?;

    // Bootlinks for the new boot version, then the symlink that selects them.
    let old_sub = sysroot.read_subbootversion(new_bv)?;
    let new_sub = if root.stat_optional(format!("ostree/boot.{new_bv}"))?.is_some() { 1 - old_sub } else { 1 };
    let ostree = root.open_dir("ostree")?;
    let subdir = format!("boot.{new_bv}.{new_sub}");
    ostree.remove_all(&subdir)?;
    ostree.create_dir(&subdir, 0o755)?;
    let links = ostree.open_dir(&subdir)?;
    for d in new.iter() {
        let parent = format!("{}/{}", d.osname, d.bootcsum);
        links.ensure_dir_all(&parent, 0o755)?;
        let target = format!("../../../deploy/{}/deploy/{}", d.osname, d.name());
        links.open_dir(&parent)?.symlink(&target, d.bootserial.to_string())?;
    }
    symlink_replace(&ostree, &subdir, &format!("boot.{new_bv}"))?;
    // `boot/boot -> .` lets entries say /boot/... whether /boot is its own
    // filesystem or not (OSTree does the same).
    if boot.stat_optional("boot")?.is_none() {
        boot.symlink(".", "boot")?;
    }
    symlink_replace(&boot, &format!("loader.{new_bv}"), "loader.tmp")?;
    // Everything written so far must be on disk before the switch.
    root.syncfs().context("syncing the sysroot")?;
    boot.syncfs().context("syncing /boot")?;
    Ok(Prepared { bootversion: new_bv, subbootversion: new_sub })
}

/// The switch: `rename(boot/loader.tmp → boot/loader)`, then fsync `/boot`.
pub fn switch(sysroot: &Sysroot, prepared: &Prepared) -> Result<()> {
    let boot = sysroot.dir().open_dir("boot")?;
    let target = boot.read_link("loader.tmp").context("no prepared boot configuration (boot/loader.tmp)")?;
    if target != format!("loader.{}", prepared.bootversion).as_bytes() {
        bail!(
            "boot/loader.tmp points at {}, not the prepared loader.{}",
            String::from_utf8_lossy(&target),
            prepared.bootversion
        );
    }
    boot.rename("loader.tmp", &boot, "loader").context("switching boot/loader")?;
    boot.fsync().context("syncing /boot")?;
    Ok(())
}

/// Writes `new` as the boot configuration: prepare, switch, clean up.
pub fn write_deployments(sysroot: &mut Sysroot, mut new: Vec<Deployment>) -> Result<()> {
    let p = prepare(sysroot, &mut new)?;
    switch(sysroot, &p)?;
    sysroot.load()?;
    cleanup(sysroot)?;
    Ok(())
}

/// What cleanup removed.
#[derive(Debug, Default, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupReport {
    /// Deployment directories removed.
    pub deployments: Vec<String>,
    /// `/boot/ostree` kernel directories removed.
    pub boot_dirs: Vec<String>,
    /// Repository objects pruned.
    pub objects_pruned: u64,
}

/// Removes everything the current configuration does not use: the other
/// boot version, unused bootlinks, deployment directories and kernels, and
/// repository objects no ref or deployment needs. Safe to interrupt.
pub fn cleanup(sysroot: &mut Sysroot) -> Result<CleanupReport> {
    // Nothing the bootloader's view names may go: it follows the truth first.
    super::boot::sync_view(sysroot)?;
    let mut report = CleanupReport::default();
    let root = sysroot.dir();
    let (bv, sub) = (sysroot.bootversion, sysroot.subbootversion);
    let boot = root.open_dir("boot")?;
    let staged_pending = boot.stat_optional("loader.tmp")?.is_some() && sysroot.staged.is_some();
    // A staged deployment owns the other boot version until it is finalized.
    if !staged_pending {
        boot.remove_all(format!("loader.{}", 1 - bv))?;
        match boot.unlink("loader.tmp") {
            Err(e) if !fsutil::is_not_found(&e) => return Err(e.into()),
            _ => {}
        }
    }
    let ostree = root.open_dir("ostree")?;
    for e in ostree.sorted_entries()? {
        let Some(name) = e.name.to_str() else { continue };
        let keep = name == format!("boot.{bv}")
            || name == format!("boot.{bv}.{sub}")
            || (staged_pending && name.starts_with(&format!("boot.{}", 1 - bv)));
        if name.starts_with("boot.") && !keep {
            ostree.remove_all(name)?;
        }
    }
    // Deployment directories.
    let mut live: Vec<&Deployment> = sysroot.deployments.iter().collect();
    if let Some(s) = &sysroot.staged {
        live.push(s);
    }
    let live_names: HashSet<(String, String)> = live.iter().map(|d| (d.osname.clone(), d.name())).collect();
    if let Some(deploy) = root.open_dir_optional("ostree/deploy")? {
        for os in deploy.sorted_entries()? {
            let Some(osname) = os.name.to_str().map(str::to_owned) else { continue };
            let Some(dd) = deploy.open_dir_optional(Path::new(&osname).join("deploy"))? else { continue };
            for e in dd.sorted_entries()? {
                let Some(name) = e.name.to_str().map(str::to_owned) else { continue };
                let base = name.strip_suffix(".origin").unwrap_or(&name);
                if live_names.contains(&(osname.clone(), base.to_owned())) {
                    continue;
                }
                if e.file_type == fsutil::FileType::Directory {
                    report.deployments.push(format!("{osname}/{name}"));
                    // Its health reports go with it (a stale name is harmless: skip errors).
                    let health = sysroot.path().join(format!("ostree/deploy/{osname}/var/lib/photon-upgrade/health"));
                    if crate::health::validate_deployment(&name).is_ok() {
                        let _ = crate::health::remove_reports(&health, &name);
                    }
                }
                dd.remove_all(&name).with_context(|| format!("removing {}", dd.display(&name).display()))?;
            }
        }
    }
    // Kernels nobody boots.
    let used: HashSet<String> = live.iter().map(|d| format!("{}-{}", d.osname, d.bootcsum)).collect();
    if let Some(bo) = boot.open_dir_optional("ostree")? {
        for e in bo.sorted_entries()? {
            let Some(name) = e.name.to_str().map(str::to_owned) else { continue };
            if !used.contains(&name) {
                bo.remove_all(&name)?;
                report.boot_dirs.push(name);
            }
        }
    }
    // Deployment refs keep deployed commits safe from prune (OSTree's
    // refs/heads/ostree/BV/SUB/I).
    let repo = sysroot.repo();
    for (spec, _) in repo.list_refs()? {
        if spec.remote.is_none() && spec.name.starts_with("ostree/") {
            repo.set_ref(&spec, None)?;
        }
    }
    for d in &sysroot.deployments {
        repo.set_ref(&RefSpec::local(&format!("ostree/{bv}/{sub}/{}", d.index))?, Some(&d.csum))?;
    }
    if let Some(s) = &sysroot.staged {
        // Not in the boot configuration yet: keep it by a ref of its own.
        repo.set_ref(&RefSpec::local("ostree/staged")?, Some(&s.csum))?;
    }
    let pruned = prune(repo, &PruneOptions { refs_only: true, depth: Some(0), ..PruneOptions::default() })?;
    report.objects_pruned = pruned.objects_pruned;
    root.syncfs()?;
    Ok(report)
}
