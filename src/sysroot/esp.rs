//! The systemd-boot view: boot entries and kernels on a vfat ESP or
//! XBOOTLDR partition, derived from the truth (`/boot/loader`).
//!
//! vfat has no symlinks and no atomic replace, so the view is switched by
//! whole-file renames, new before old (`bootloader/README.md` has the
//! sequence and why every instant is bootable):
//!
//! ```text
//! photon/OS-BOOTCSUM/{vmlinuz,initramfs}-KVER         kernels, copied from /boot/ostree
//! loader/entries/photon-GEN-OS-CSUM.SERIAL[+L[-D]].conf
//! loader/entries/.photon-new-*.tmp                    staged entries (ignored by the firmware)
//! ```
//!
//! Entries not named `photon-*` (another OS) are never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use bootloader::{BlsEntry, Counter, EntryName};

use super::Sysroot;
use super::boot::{self, BootConfig, BootState};
use super::deployment::Deployment;
use crate::fsutil::{self, Dir};

/// Entries directory on the partition.
pub const ENTRIES: &str = "loader/entries";
/// Kernels directory on the partition.
pub const KERNELS: &str = "photon";
const PREFIX: &str = "photon-";
const STAGED: &str = ".photon-new-";
/// Every entry carries it, so `version` decides the order among ours.
pub const SORT_KEY: &str = "photon";
/// Largest entry file read back.
const MAX_ENTRY: u64 = 64 << 10;

/// One of our entries found on the partition.
#[derive(Debug, Clone)]
pub struct Present {
    /// File name in `loader/entries`.
    pub file: String,
    /// Generation.
    pub generation: u64,
    /// `OS-CSUM.SERIAL`.
    pub id: String,
    /// Boot counter, if counted.
    pub counter: Option<Counter>,
}

/// Parses `photon-GEN-ID[+L[-D]].conf`.
fn parse_name(file: &str) -> Option<Present> {
    let name = EntryName::parse(file).ok()?;
    let (generation, id) = name.name().strip_prefix(PREFIX)?.split_once('-')?;
    Some(Present {
        file: file.to_owned(),
        generation: generation.parse().ok()?,
        id: id.to_owned(),
        counter: name.counter(),
    })
}

/// Our entries on the partition, and staged leftovers.
fn scan(entries: &Dir) -> Result<(Vec<Present>, Vec<String>)> {
    let mut ours = Vec::new();
    let mut leftovers = Vec::new();
    for e in entries.sorted_entries()? {
        let Some(name) = e.name.to_str() else { continue };
        if name.starts_with(STAGED) || name.starts_with(fsutil::TEMP_PREFIX) {
            leftovers.push(name.to_owned());
        } else if let Some(p) = parse_name(name) {
            ours.push(p);
        }
    }
    Ok((ours, leftovers))
}

/// Opens (creating) the partition's root; it must exist (mounted).
pub fn open(sysroot: &Sysroot, cfg: &BootConfig) -> Result<Dir> {
    sysroot.dir().open_dir(&cfg.esp).with_context(|| {
        format!(
            "the boot partition {} (esp= in the sysroot config); is it mounted?",
            sysroot.path().join(&cfg.esp).display()
        )
    })
}

/// What the view should hold for one deployment.
pub(super) struct Wanted {
    /// `OS-CSUM.SERIAL`.
    pub(super) id: String,
    /// Its state.
    pub(super) state: BootState,
    /// The entry, kernel paths on the partition, no `version`.
    pub(super) entry: BlsEntry,
    counter: Option<Counter>,
    /// (path below /boot, path below the partition)
    pub(super) files: Vec<(String, String)>,
}

/// Maps a kernel path of a truth entry (`/ostree/OS-BOOTCSUM/NAME`, or with
/// `/boot` in front) to its place on the partition.
fn partition_path(p: &str) -> Result<(String, String)> {
    let rel = p.trim_start_matches('/');
    let rel = rel.strip_prefix("boot/").unwrap_or(rel);
    let rest =
        rel.strip_prefix("ostree/").ok_or_else(|| anyhow!("boot entry names {p}, not a file in /boot/ostree"))?;
    if rest.split('/').count() != 2 || rest.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        bail!("boot entry names {p}, not /ostree/OS-BOOTCSUM/FILE");
    }
    Ok((rel.to_owned(), format!("{KERNELS}/{rest}")))
}

/// The view's entries, in boot order, from the truth. `present`: our
/// entries on the partition now (counters carry over).
pub(super) fn wanted(sysroot: &Sysroot, cfg: &BootConfig, present: &[Present]) -> Result<Vec<Wanted>> {
    let mut out = Vec::new();
    for (d, truth) in sysroot.read_entries(sysroot.bootversion)? {
        let id = d.boot_id();
        let mut entry = BlsEntry::new();
        let mut files = Vec::new();
        entry.set("title", truth.title().unwrap_or(&id))?;
        entry.set("sort-key", SORT_KEY)?;
        entry.set("options", truth.get("options").unwrap_or(""))?;
        let linux = truth.linux().ok_or_else(|| anyhow!("the boot entry of {} has no linux line", d.name()))?;
        let (src, dst) = partition_path(linux)?;
        entry.set("linux", &format!("/{dst}"))?;
        files.push((src, dst));
        let mut initrds = Vec::new();
        for i in truth.initrds() {
            let (src, dst) = partition_path(i)?;
            initrds.push(format!("/{dst}"));
            files.push((src, dst));
        }
        if !initrds.is_empty() {
            entry.set_all("initrd", &initrds.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        let newest = present.iter().filter(|p| p.id == id).max_by_key(|p| p.generation);
        let state = boot::state(&d);
        let counter = match state {
            BootState::Good => None,
            BootState::Failed => Some(Counter::new(0, newest.and_then(|p| p.counter).and_then(|c| c.tries_done()))?),
            BootState::Unproven => match newest.and_then(|p| p.counter) {
                Some(c) => Some(c),
                None => Some(Counter::new(cfg.tries, None)?),
            },
        };
        out.push(Wanted { id, state, entry, counter, files });
    }
    Ok(out)
}

fn file_name(generation: u64, w: &Wanted) -> Result<String> {
    Ok(EntryName::new(&format!("{PREFIX}{generation}-{}", w.id), w.counter)?.file_name().to_owned())
}

fn text(generation: u64, n: usize, index: usize, w: &Wanted) -> Result<String> {
    let mut e = w.entry.clone();
    e.set("version", &format!("{generation}.{}", n - index))?;
    Ok(e.to_string())
}

fn read_small(dir: &Dir, name: &str) -> Result<String> {
    let mut s = String::new();
    dir.open_file(name)?.take(MAX_ENTRY).read_to_string(&mut s).with_context(|| format!("reading {name}"))?;
    Ok(s)
}

/// What a sync did.
#[derive(Debug, Default, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// The generation now on the partition.
    pub generation: u64,
    /// True if a new generation was written.
    pub switched: bool,
    /// Entry files removed.
    pub removed_entries: Vec<String>,
    /// Kernel directories removed.
    pub removed_kernels: Vec<String>,
}

/// Bytes the partition needs for kernels the view will name and lacks.
pub fn space_needed(esp: &Dir, sizes: &[(String, u64)]) -> Result<u64> {
    let mut need = 0;
    for (dst, size) in sizes {
        if esp.stat_optional(dst)?.is_none() {
            need += size;
        }
    }
    Ok(need)
}

/// Makes the partition's entries follow the truth. Idempotent; safe to
/// interrupt at any point (the next sync finishes the job).
pub fn sync(sysroot: &Sysroot, cfg: &BootConfig) -> Result<SyncReport> {
    let esp = open(sysroot, cfg)?;
    esp.ensure_dir_all(ENTRIES, 0o755)?;
    let entries = esp.open_dir(ENTRIES)?;
    let (present, leftovers) = scan(&entries)?;
    // Staged entries of an interrupted sync: the firmware never read them.
    for l in &leftovers {
        entries.unlink(l)?;
    }
    let want = wanted(sysroot, cfg, &present)?;
    let current = present.iter().map(|p| p.generation).max().unwrap_or(0);
    let n = want.len();

    // Is the newest generation already exactly the wanted set?
    let newest: BTreeMap<&str, &Present> =
        present.iter().filter(|p| p.generation == current).map(|p| (p.file.as_str(), p)).collect();
    let mut same = newest.len() == n && (current > 0 || n == 0);
    if same {
        for (i, w) in want.iter().enumerate() {
            let name = file_name(current, w)?;
            if !newest.contains_key(name.as_str()) || read_small(&entries, &name)? != text(current, n, i, w)? {
                same = false;
                break;
            }
        }
    }
    let mut report = SyncReport { generation: current, ..SyncReport::default() };
    if !same {
        let generation = current + 1;
        // 1. Kernels the new set needs.
        copy_kernels(sysroot, &esp, &want)?;
        // 2. Entries, staged under names the firmware ignores.
        let mut staged = Vec::new();
        for (i, w) in want.iter().enumerate() {
            let name = file_name(generation, w)?;
            let tmp = format!("{STAGED}{name}.tmp");
            let mut f = entries.create_file(&tmp, 0o644)?;
            f.write_all(text(generation, n, i, w)?.as_bytes())?;
            f.sync_all().with_context(|| format!("writing {tmp}"))?;
            staged.push((tmp, name));
        }
        entries.fsync()?;
        // 3. The switch: the default first (it sorts above everything).
        for (tmp, name) in &staged {
            entries.rename(tmp, &entries, name).with_context(|| format!("renaming {tmp}"))?;
            entries.fsync()?;
        }
        report.generation = generation;
        report.switched = true;
    }
    // 4. Older generations, then kernels nothing names.
    for p in present.iter().filter(|p| p.generation < report.generation) {
        entries.unlink(&p.file)?;
        report.removed_entries.push(p.file.clone());
    }
    entries.fsync()?;
    report.removed_kernels = gc_kernels(sysroot, &esp, &want)?;
    Ok(report)
}

/// Removes kernel directories no wanted entry (nor a staged deployment) names.
pub(super) fn gc_kernels(sysroot: &Sysroot, esp: &Dir, want: &[Wanted]) -> Result<Vec<String>> {
    let named: BTreeSet<String> = want
        .iter()
        .flat_map(|w| {
            w.files.iter().filter_map(|(_, dst)| Path::new(dst).parent().map(|p| p.to_string_lossy().into_owned()))
        })
        .chain(staged_kernel_dirs(sysroot))
        .collect();
    let mut removed = Vec::new();
    if let Some(k) = esp.open_dir_optional(KERNELS)? {
        for e in k.sorted_entries()? {
            let rel = format!("{KERNELS}/{}", e.name.to_string_lossy());
            if !named.contains(&rel) {
                k.remove_all(&e.name)?;
                removed.push(rel);
            }
        }
        k.fsync()?;
    }
    Ok(removed)
}

/// Copies the kernels `want` names and the partition lacks, after checking
/// they fit.
pub(super) fn copy_kernels(sysroot: &Sysroot, esp: &Dir, want: &[Wanted]) -> Result<()> {
    let boot = sysroot.dir().open_dir("boot")?;
    let mut sizes = Vec::new();
    for w in want {
        for (src, dst) in &w.files {
            let st = boot.stat(src).with_context(|| format!("/boot/{src}, named by the boot configuration"))?;
            sizes.push((dst.clone(), st.st_size as u64));
        }
    }
    let need = space_needed(esp, &sizes)?;
    let free = esp.space()?.available;
    if need > free {
        bail!(
            "the boot partition {} needs {} MiB for kernels and has {} MiB free; remove old deployments (`cleanup`) or files there",
            esp.path().display(),
            need.div_ceil(1 << 20),
            free >> 20
        );
    }
    for w in want {
        for (src, dst) in &w.files {
            copy_kernel(&boot, src, esp, dst)?;
        }
    }
    Ok(())
}

/// Kernel directories a staged deployment will need (kept by the GC).
fn staged_kernel_dirs(sysroot: &Sysroot) -> Vec<String> {
    sysroot.staged.iter().map(|d| format!("{KERNELS}/{}-{}", d.osname, d.bootcsum)).collect()
}

/// Copies `/boot/SRC` to `DST` on the partition unless there: temp file,
/// fsync, rename, fsync the directory.
fn copy_kernel(boot: &Dir, src: &str, esp: &Dir, dst: &str) -> Result<()> {
    if esp.stat_optional(dst)?.is_some() {
        return Ok(());
    }
    let (dir, name) = dst.rsplit_once('/').ok_or_else(|| anyhow!("{dst}: no directory"))?;
    esp.ensure_dir_all(dir, 0o755)?;
    let d = esp.open_dir(dir)?;
    let (mut f, tmp) = d.create_temp("k")?;
    let r = (|| -> Result<()> {
        let mut from = boot.open_file(src).with_context(|| format!("opening /boot/{src}"))?;
        std::io::copy(&mut from, &mut f).with_context(|| format!("copying /boot/{src} to {dst}"))?;
        f.sync_all()?;
        d.rename(&tmp, &d, name)?;
        d.fsync()?;
        Ok(())
    })();
    if r.is_err() {
        let _ = d.unlink(&tmp);
    }
    r
}

/// The newest entry of `d` on the partition, if any.
pub fn entry_of(sysroot: &Sysroot, cfg: &BootConfig, d: &Deployment) -> Result<Option<Present>> {
    let esp = open(sysroot, cfg)?;
    let Some(entries) = esp.open_dir_optional(ENTRIES)? else { return Ok(None) };
    let id = d.boot_id();
    Ok(scan(&entries)?.0.into_iter().filter(|p| p.id == id).max_by_key(|p| p.generation))
}

/// Removes the counter from `d`'s entry (what `systemd-bless-boot` does):
/// one rename. Returns false if it had none.
pub fn bless(sysroot: &Sysroot, cfg: &BootConfig, d: &Deployment) -> Result<bool> {
    let Some(p) = entry_of(sysroot, cfg, d)? else {
        bail!("no boot entry for {} on {}; run `boot sync`", d.name(), sysroot.path().join(&cfg.esp).display())
    };
    if p.counter.is_none() {
        return Ok(false);
    }
    let entries = open(sysroot, cfg)?.open_dir(ENTRIES)?;
    let good = EntryName::new(&format!("{PREFIX}{}-{}", p.generation, p.id), None)?;
    entries.rename(&p.file, &entries, good.file_name()).with_context(|| format!("renaming {}", p.file))?;
    entries.fsync()?;
    Ok(true)
}

/// Copies `d`'s kernel directory to the partition ahead of time (a staged
/// deployment: at shutdown only entries are written and renamed).
pub fn copy_kernels_of(sysroot: &Sysroot, cfg: &BootConfig, d: &Deployment) -> Result<()> {
    let esp = open(sysroot, cfg)?;
    let boot = sysroot.dir().open_dir("boot")?;
    let src_dir = d.boot_dir();
    let Some(src) = boot.open_dir_optional(&src_dir)? else {
        bail!("/boot/{} is missing: the boot configuration was not prepared", src_dir.display())
    };
    let mut need = 0u64;
    let mut files = Vec::new();
    for e in src.sorted_entries()? {
        let st = src.stat(&e.name)?;
        if fsutil::FileType::from_raw_mode(st.st_mode) != fsutil::FileType::RegularFile {
            continue;
        }
        let name = e.name.to_string_lossy().into_owned();
        let dst = format!("{KERNELS}/{}-{}/{name}", d.osname, d.bootcsum);
        if esp.stat_optional(&dst)?.is_none() {
            need += st.st_size as u64;
        }
        files.push((format!("{}/{name}", src_dir.display()), dst));
    }
    let free = esp.space()?.available;
    if need > free {
        bail!(
            "the boot partition {} needs {} MiB for the kernel and has {} MiB free",
            esp.path().display(),
            need.div_ceil(1 << 20),
            free >> 20
        );
    }
    for (src, dst) in files {
        copy_kernel(&boot, &src, &esp, &dst)?;
    }
    Ok(())
}
