//! The host side: an OSTree-compatible sysroot and the deployments in it.
//!
//! Layout (OSTree's, see research/ostree-formats.md §6):
//!
//! ```text
//! ostree/repo                                  the system repository (bare)
//! ostree/deploy/OS/var                         shared /var of stateroot OS
//! ostree/deploy/OS/deploy/CSUM.SERIAL          a deployment (hardlinks; chattr +i)
//! ostree/deploy/OS/deploy/CSUM.SERIAL.origin   where its updates come from
//! ostree/boot.N -> boot.N.M                    bootlinks of boot version N
//! ostree/boot.N.M/OS/BOOTCSUM/BOOTSERIAL -> ../../../deploy/OS/deploy/CSUM.SERIAL
//! boot/loader -> loader.N                      the one atomic switch
//! boot/loader.N/entries/ostree-V-OS.conf       BLS entries
//! boot/ostree/OS-BOOTCSUM/{vmlinuz,initramfs}-KVER
//! ```
//!
//! The list of deployments is read from the boot entries of the current
//! boot version, exactly as OSTree reads it, so `ostree admin status` and
//! `photon-upgrade status` always agree.

pub mod boot;
pub mod bootswap;
pub mod deploy;
pub mod deployment;
pub mod esp;
pub mod etcmerge;
pub mod grubview;
pub mod kernel;
pub mod packages;
pub mod staged;
pub mod status;

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use bootloader::bls::BlsEntry;
use bootloader::kargs::Kargs;
use repo_format::Checksum;

use crate::fsutil::{self, Dir};
use crate::repo::Repo;
use crate::repo::keyfile::KeyFile;
pub use deployment::Deployment;

/// Where the running system is, for finding the booted deployment. Tests
/// point these at a deployment directory and a file instead of `/` and
/// `/proc/cmdline`.
#[derive(Debug, Clone)]
pub struct HostEnv {
    /// The root of the running system (its `(st_dev, st_ino)` identifies
    /// the booted deployment, as OSTree does).
    pub booted_root: PathBuf,
    /// The kernel command line (`ostree=` cross-checks the above).
    pub cmdline: PathBuf,
    /// `/run` (staged-deployment state lives in `run/ostree`).
    pub run: PathBuf,
}

impl Default for HostEnv {
    fn default() -> Self {
        HostEnv { booted_root: "/".into(), cmdline: "/proc/cmdline".into(), run: "/run".into() }
    }
}

/// An opened sysroot.
pub struct Sysroot {
    path: PathBuf,
    root: Dir,
    repo: Repo,
    env: HostEnv,
    /// Boot version of the current configuration (`boot/loader -> loader.N`).
    pub bootversion: u8,
    /// Sub-version of its bootlinks (`ostree/boot.N -> boot.N.M`).
    pub subbootversion: u8,
    /// Deployments in boot order.
    pub deployments: Vec<Deployment>,
    /// A staged deployment waiting for shutdown, if any.
    pub staged: Option<Deployment>,
    /// Index of the booted deployment, if this sysroot is the running system.
    pub booted: Option<usize>,
    /// Set when `ostree=` on the command line names another deployment
    /// than the one `/` is.
    pub booted_mismatch: Option<String>,
}

fn parse_link_number(target: &[u8], prefix: &str) -> Option<u8> {
    std::str::from_utf8(target).ok()?.strip_prefix(prefix)?.parse().ok()
}

impl Sysroot {
    /// Opens the sysroot at `path`. On a booted host that is `/`, and the
    /// sysroot opened is the physical root behind it ([`physical_root`]).
    pub fn open(path: &Path, env: HostEnv) -> Result<Sysroot> {
        let given = path;
        let physical = physical_root(given)?;
        let path = physical.as_deref().unwrap_or(given);
        let root = Dir::open(path).with_context(|| format!("opening sysroot {}", path.display()))?;
        if root.stat_optional("ostree/deploy")?.is_none() {
            bail!("{} is not an OSTree sysroot (no ostree/deploy); lay one out with `install`", path.display());
        }
        let repo = Repo::open(&path.join("ostree/repo"))?;
        if physical.is_some() {
            // The boot partition is reached through the physical root too:
            // it must be the one the running system mounted.
            let cfg = boot::BootConfig::load(&repo)?;
            if cfg.backend != boot::Backend::None {
                same_dir(&given.join(&cfg.esp), &path.join(&cfg.esp))?;
            }
        }
        let mut s = Sysroot {
            path: path.to_owned(),
            root,
            repo,
            env,
            bootversion: 0,
            subbootversion: 0,
            deployments: Vec::new(),
            staged: None,
            booted: None,
            booted_mismatch: None,
        };
        s.load()?;
        Ok(s)
    }

    /// The sysroot path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sysroot directory handle.
    pub fn dir(&self) -> &Dir {
        &self.root
    }

    /// The system repository.
    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    /// The host environment.
    pub fn env(&self) -> &HostEnv {
        &self.env
    }

    /// Re-reads everything from disk.
    pub fn load(&mut self) -> Result<()> {
        let root = &self.root;
        self.bootversion = match root.stat_optional("boot/loader")? {
            None => 0,
            Some(st) if fsutil::FileType::from_raw_mode(st.st_mode) == fsutil::FileType::Symlink => {
                let t = root.read_link("boot/loader")?;
                parse_link_number(&t, "loader.").ok_or_else(|| {
                    anyhow!("boot/loader points at {:?}, not loader.0 or loader.1", String::from_utf8_lossy(&t))
                })?
            }
            Some(_) => bail!("{}/boot/loader is not a symlink", self.path.display()),
        };
        self.subbootversion = self.read_subbootversion(self.bootversion)?;
        self.deployments = self.read_deployments(self.bootversion)?;
        self.staged = staged::read(self)?;
        self.detect_booted()?;
        Ok(())
    }

    /// The sub-version `ostree/boot.N` points at (0 when absent).
    pub fn read_subbootversion(&self, bootversion: u8) -> Result<u8> {
        let link = format!("ostree/boot.{bootversion}");
        match self.root.stat_optional(&link)? {
            None => Ok(0),
            Some(_) => {
                let t = self.root.read_link(&link).with_context(|| format!("reading {link}"))?;
                parse_link_number(&t, &format!("boot.{bootversion}."))
                    .ok_or_else(|| anyhow!("{link} points at {:?}", String::from_utf8_lossy(&t)))
            }
        }
    }

    fn read_deployments(&self, bootversion: u8) -> Result<Vec<Deployment>> {
        Ok(self.read_entries(bootversion)?.into_iter().map(|(d, _)| d).collect())
    }

    /// The deployments of boot version `bootversion` in boot order, each
    /// with its boot entry (what a bootloader backend copies).
    pub fn read_entries(&self, bootversion: u8) -> Result<Vec<(Deployment, BlsEntry)>> {
        let entries_rel = format!("boot/loader.{bootversion}/entries");
        let Some(dir) = self.root.open_dir_optional(&entries_rel)? else { return Ok(Vec::new()) };
        let mut entries: Vec<(String, BlsEntry)> = Vec::new();
        for e in dir.sorted_entries()? {
            let Some(name) = e.name.to_str().map(str::to_owned) else { continue };
            if !name.ends_with(".conf") {
                continue;
            }
            let mut text = String::new();
            dir.open_file(&name)?
                .take(1 << 20)
                .read_to_string(&mut text)
                .with_context(|| format!("reading {entries_rel}/{name}"))?;
            let entry = BlsEntry::parse(&text).with_context(|| format!("{entries_rel}/{name}"))?;
            entries.push((name, entry));
        }
        // OSTree orders entries by `version`, highest first (strverscmp).
        entries.sort_by(|a, b| version_cmp(b.1.get("version").unwrap_or(""), a.1.get("version").unwrap_or("")));
        let mut out = Vec::new();
        for (name, entry) in entries {
            let options = entry.get("options").unwrap_or("");
            let mut kargs = Kargs::parse(options).with_context(|| format!("{entries_rel}/{name}: options"))?;
            let Some(ostree_arg) = kargs.get("ostree").map(str::to_owned) else { continue };
            kargs.delete("ostree");
            let d = self.resolve_bootlink(&ostree_arg).with_context(|| format!("boot entry {name}"))?;
            out.push((Deployment { index: out.len(), kargs, ..d }, entry));
        }
        Ok(out)
    }

    /// Resolves `ostree=/ostree/boot.N/OS/BOOTCSUM/SERIAL` to a deployment.
    pub fn resolve_bootlink(&self, arg: &str) -> Result<Deployment> {
        let rel = arg.trim_start_matches('/');
        let parts: Vec<&str> = rel.split('/').collect();
        let [_, _bootdir, osname, bootcsum, bootserial] = parts.as_slice() else {
            bail!("ostree={arg} is not /ostree/boot.N/OS/BOOTCSUM/SERIAL");
        };
        repo_format::name::validate_remote_name(osname)
            .map_err(|e| anyhow!("ostree={arg}: bad stateroot name: {e}"))?;
        let target = self.root.read_link(rel).with_context(|| format!("reading bootlink {rel}"))?;
        let target = String::from_utf8(target).map_err(|_| anyhow!("bootlink {rel} is not UTF-8"))?;
        let prefix = format!("../../../deploy/{osname}/deploy/");
        let name =
            target.strip_prefix(&prefix).ok_or_else(|| anyhow!("bootlink {rel} points outside {prefix}: {target}"))?;
        let (csum, serial) =
            name.split_once('.').ok_or_else(|| anyhow!("bootlink {rel}: bad deployment name {name}"))?;
        let csum = Checksum::from_hex(csum).with_context(|| format!("bootlink {rel}"))?;
        let serial: u32 = serial.parse().map_err(|_| anyhow!("bootlink {rel}: bad serial in {name}"))?;
        let mut d = Deployment {
            index: 0,
            osname: (*osname).to_owned(),
            csum,
            serial,
            bootcsum: (*bootcsum).to_owned(),
            bootserial: bootserial.parse().map_err(|_| anyhow!("ostree={arg}: bad boot serial"))?,
            kargs: Kargs::default(),
            origin: KeyFile::new(),
            staged: false,
        };
        d.origin = self.read_origin(&d)?;
        if self.root.stat_optional(d.dir())?.is_none() {
            bail!("deployment {} named by {rel} is missing", d.dir().display());
        }
        Ok(d)
    }

    /// Reads a deployment's origin file (empty if it has none).
    pub fn read_origin(&self, d: &Deployment) -> Result<KeyFile> {
        match self.root.open_file_optional(d.origin_path())? {
            Some(f) => {
                let text = std::io::read_to_string(f.take(1 << 20))?;
                KeyFile::parse(&text).with_context(|| format!("parsing {}", d.origin_path().display()))
            }
            None => Ok(KeyFile::new()),
        }
    }

    fn detect_booted(&mut self) -> Result<()> {
        self.booted = None;
        self.booted_mismatch = None;
        let Ok(root_st) = std::fs::metadata(&self.env.booted_root) else { return Ok(()) };
        use std::os::unix::fs::MetadataExt;
        for d in &self.deployments {
            if let Some(st) = self.root.stat_optional(d.dir())?
                && st.st_dev == root_st.dev()
                && st.st_ino == root_st.ino()
            {
                self.booted = Some(d.index);
            }
        }
        // Cross-check with ostree= on the kernel command line.
        let cmdline = std::fs::read_to_string(&self.env.cmdline).unwrap_or_default();
        let arg = Kargs::parse(cmdline.trim()).ok().and_then(|k| k.get("ostree").map(str::to_owned));
        match (arg, self.booted) {
            (Some(a), Some(i)) => {
                // Compare what the karg says (stateroot, kernel), not where
                // its bootlink points now: a later boot configuration (a
                // deploy, a rollback) rewrites the links of the running one.
                let d = &self.deployments[i];
                let parts: Vec<&str> = a.trim_start_matches('/').split('/').collect();
                let same = matches!(parts.as_slice(), [_, _, os, csum, _] if *os == d.osname && *csum == d.bootcsum);
                if !same {
                    self.booted_mismatch = Some(format!(
                        "the kernel command line names {a}, but / is {}",
                        self.deployments[i].dir().display()
                    ));
                }
            }
            (Some(a), None) if self.is_running_system() => {
                self.booted_mismatch =
                    Some(format!("the kernel command line names {a}, but / is no deployment of this sysroot"));
            }
            _ => {}
        }
        Ok(())
    }

    /// True if the booted root given is this sysroot's running system
    /// (some deployment matched it).
    pub fn is_running_system(&self) -> bool {
        self.booted.is_some()
    }

    /// The booted deployment.
    pub fn booted_deployment(&self) -> Option<&Deployment> {
        self.booted.map(|i| &self.deployments[i])
    }

    /// The deployment whose `/etc` and kernel arguments a new deployment of
    /// `osname` starts from: the booted one if it is of that stateroot,
    /// else the first of that stateroot.
    pub fn merge_deployment(&self, osname: &str) -> Option<&Deployment> {
        match self.booted_deployment() {
            Some(b) if b.osname == osname => Some(b),
            _ => self.deployments.iter().find(|d| d.osname == osname),
        }
    }

    /// The stateroot a command acts on when none is named.
    pub fn default_osname(&self) -> Result<String> {
        if let Some(b) = self.booted_deployment() {
            return Ok(b.osname.clone());
        }
        if let Some(d) = self.deployments.first() {
            return Ok(d.osname.clone());
        }
        let deploy = self.root.open_dir("ostree/deploy")?;
        let names: Vec<String> =
            deploy.sorted_entries()?.into_iter().filter_map(|e| e.name.to_str().map(str::to_owned)).collect();
        match names.as_slice() {
            [one] => Ok(one.clone()),
            [] => bail!("no stateroot in {}; run `install` first", self.path.display()),
            _ => bail!("several stateroots ({}); name one with --os", names.join(", ")),
        }
    }
}

/// What a deployment's `/ostree` points at: OSTree's layout of a booted
/// deployment, whose `/sysroot` is the physical root.
const OSTREE_LINK: &str = "sysroot/ostree";

/// The physical root behind `path`, if `path` is a booted deployment.
///
/// A booted OSTree host reaches its sysroot through the deployment's own
/// symlink `/ostree -> sysroot/ostree`; libostree follows it. We never
/// follow a symlink below a sysroot handle (trees are not trusted), so we
/// open the physical root `/sysroot` itself, as bootc does. `/boot` is
/// then reached as `/sysroot/boot`: it must be the directory the running
/// system has at `/boot` (OSTree binds `/sysroot/boot` there when `/boot`
/// is on the root filesystem), or a separately mounted `/boot` would be
/// missed.
fn physical_root(path: &Path) -> Result<Option<PathBuf>> {
    let link = path.join("ostree");
    match std::fs::symlink_metadata(&link) {
        Ok(m) if m.file_type().is_symlink() => {}
        _ => return Ok(None),
    }
    let target = std::fs::read_link(&link).with_context(|| format!("reading {}", link.display()))?;
    if target != Path::new(OSTREE_LINK) {
        bail!(
            "{} is a symlink to {}, not {OSTREE_LINK} (a booted deployment's); give the physical root with --sysroot",
            link.display(),
            target.display()
        );
    }
    let physical = path.join("sysroot");
    same_dir(&path.join("boot"), &physical.join("boot"))?;
    Ok(Some(physical))
}

/// Checks that `physical` is the directory `given` (a path seen from the
/// booted deployment) is; fine if `given` does not exist.
fn same_dir(given: &Path, physical: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(g) = std::fs::metadata(given) else { return Ok(()) };
    let p = std::fs::metadata(physical).with_context(|| format!("{}", physical.display()))?;
    if (g.dev(), g.ino()) != (p.dev(), p.ino()) {
        bail!(
            "{} is not {}: the sysroot is reached through the physical root, so what is mounted at {} must be mounted at {} too",
            given.display(),
            physical.display(),
            given.display(),
            physical.display()
        );
    }
    Ok(())
}

/// `strverscmp`-like comparison: digit runs compare as numbers.
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (&a[..na], &b[..nb]);
                let strip = |d: &[u8]| -> Vec<u8> { d.iter().skip_while(|c| **c == b'0').copied().collect() };
                let (sa, sb) = (strip(da), strip(db));
                let ord = sa.len().cmp(&sb.len()).then_with(|| sa.cmp(&sb));
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_like_strverscmp() {
        use std::cmp::Ordering::*;
        for (a, b, want) in
            [("2", "10", Less), ("10", "9", Greater), ("1", "1", Equal), ("a2", "a10", Less), ("", "1", Less)]
        {
            assert_eq!(version_cmp(a, b), want, "{a} vs {b}");
        }
    }
}
