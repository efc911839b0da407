//! `deploy`: check a commit out next to the running system and make it the
//! default (or stage it for shutdown).
//!
//! Every step that can fail happens before the boot configuration changes:
//! the space check, the hardlink checkout (into a temp name, renamed into
//! place when complete), the `/etc` merge, the origin file, the kernel copy
//! into `/boot` and the complete new boot entries. Then one rename switches
//! (or, staged, waits for shutdown).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use bootloader::kargs::Kargs;
use repo_format::{Checksum, ObjectType};

use super::Sysroot;
use super::bootswap;
use super::deployment::{Deployment, ORIGIN_GROUP};
use super::etcmerge::{self, EtcPlan};
use super::kernel::{self, KernelLayout};
use super::staged;
use crate::fsutil::{self, Dir};
use crate::progress::NoProgress;
use crate::repo::checkout::{CheckoutOptions, checkout};
use crate::repo::keyfile::KeyFile;
use crate::repo::refs::RefSpec;

/// Deployments of a stateroot kept by default: the new one and one to
/// roll back to (OSTree keeps the same two).
pub const DEFAULT_RETAIN: usize = 2;
/// Room kept free on each filesystem beyond what a deployment needs.
const SPACE_MARGIN: u64 = 4 << 20;
/// What one directory of a checkout costs on disk (one block).
const DIR_COST: u64 = 4096;

/// Options of a deploy.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// Stateroot [default: the booted one].
    pub osname: Option<String>,
    /// Kernel arguments to add or replace (`K=V`).
    pub kargs_append: Vec<String>,
    /// Kernel arguments to remove (`K` or `K=V`).
    pub kargs_delete: Vec<String>,
    /// Replace all inherited kernel arguments with these (install).
    pub kargs_override: Option<Vec<String>>,
    /// Leave the switch to `finalize-staged` at shutdown.
    pub stage: bool,
    /// Start from the new tree's default `/etc`, not the merged one.
    pub no_merge_etc: bool,
    /// Deployments of this stateroot to keep, the new one included.
    pub retain: Option<usize>,
    /// Origin refspec to record [default: the REV, else the merge deployment's].
    pub refspec: Option<String>,
}

/// What a deploy did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployOutcome {
    /// `CSUM.SERIAL` of the new deployment.
    pub deployment: String,
    /// Stateroot.
    pub osname: String,
    /// Commit.
    pub commit: Checksum,
    /// Staged for shutdown rather than switched.
    pub staged: bool,
    /// What the `/etc` merge did.
    pub etc: EtcPlan,
    /// Deployments removed to make room (retention).
    pub removed: Vec<String>,
}

/// Bytes (and inodes) a deployment needs on each filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpaceNeeded {
    /// On the sysroot's filesystem.
    pub sysroot_bytes: u64,
    /// Inodes on the sysroot's filesystem.
    pub sysroot_inodes: u64,
    /// On `/boot`.
    pub boot_bytes: u64,
}

/// Walks the commit's tree: directories (new inodes, one block each with
/// hardlinked files) and the bytes of `usr/etc` (copied into `/etc`).
fn tree_cost(sysroot: &Sysroot, commit: &Checksum) -> Result<(u64, u64)> {
    let repo = sysroot.repo();
    let c = repo.load_commit(commit)?;
    let mut dirs = 0u64;
    let mut etc_bytes = 0u64;
    let mut stack = vec![(c.root_tree, String::new())];
    while let Some((t, path)) = stack.pop() {
        dirs += 1;
        let tree = repo.load_dirtree(&t)?;
        let in_etc = path == "/usr/etc" || path.starts_with("/usr/etc/") || path == "/etc" || path.starts_with("/etc/");
        if in_etc {
            dirs += 1; // copied again into /etc
            for f in tree.files() {
                etc_bytes += repo.open_content(&f.checksum)?.size.div_ceil(4096) * 4096;
            }
        }
        for d in tree.dirs() {
            stack.push((d.tree, format!("{path}/{}", d.name)));
        }
    }
    Ok((dirs, etc_bytes))
}

/// Checks that the deployment fits before anything is written, and says
/// how much is needed and what could be cleaned up otherwise.
pub fn check_space(sysroot: &Sysroot, commit: &Checksum, osname: &str, layout: &KernelLayout) -> Result<SpaceNeeded> {
    let (dirs, etc_bytes) = tree_cost(sysroot, commit)?;
    let mut need = SpaceNeeded {
        sysroot_bytes: dirs * DIR_COST + etc_bytes + SPACE_MARGIN,
        sysroot_inodes: dirs * 2,
        boot_bytes: 0,
    };
    let boot_dir = format!("boot/ostree/{osname}-{}", layout.bootcsum);
    if sysroot.dir().stat_optional(&boot_dir)?.is_none() {
        need.boot_bytes = layout.files().map(|f| f.size.div_ceil(4096) * 4096).sum::<u64>() + SPACE_MARGIN;
    }
    let mib = |b: u64| b.div_ceil(1 << 20);
    let hint =
        "remove old deployments (`undeploy INDEX`, `cleanup`) or prune the repository (`repo prune --refs-only`)";
    let space = sysroot.dir().space().context("checking free space on the sysroot")?;
    if space.available < need.sysroot_bytes {
        bail!(
            "not enough space on the sysroot filesystem ({}): the deployment needs {} MiB, {} MiB are free; {hint}",
            sysroot.path().display(),
            mib(need.sysroot_bytes),
            mib(space.available)
        );
    }
    if space.inodes_available < need.sysroot_inodes {
        bail!(
            "not enough inodes on the sysroot filesystem ({}): the deployment needs {}, {} are free; {hint}",
            sysroot.path().display(),
            need.sysroot_inodes,
            space.inodes_available
        );
    }
    if need.boot_bytes > 0 {
        let boot = sysroot.dir().open_dir("boot")?;
        let space = boot.space().context("checking free space on /boot")?;
        if space.available < need.boot_bytes {
            bail!(
                "not enough space on /boot ({}): the new kernel and initramfs need {} MiB, {} MiB are free; remove old deployments (`undeploy INDEX`, `cleanup`) to free their kernels",
                boot.path().display(),
                mib(need.boot_bytes),
                mib(space.available)
            );
        }
    }
    // The bootloader's partition gets a copy of the kernel (systemd-boot, GRUB).
    let cfg = super::boot::BootConfig::load(sysroot.repo())?;
    if cfg.backend != super::boot::Backend::None {
        let esp = super::esp::open(sysroot, &cfg)?;
        if esp.stat_optional(format!("{}/{osname}-{}", super::esp::KERNELS, layout.bootcsum))?.is_none() {
            let bytes = layout.files().map(|f| f.size.div_ceil(4096) * 4096).sum::<u64>() + SPACE_MARGIN / 4;
            let space = esp.space().context("checking free space on the boot partition")?;
            if space.available < bytes {
                bail!(
                    "not enough space on the boot partition ({}): the new kernel and initramfs need {} MiB, {} MiB are free; remove old deployments (`undeploy INDEX`, `cleanup`) to free their kernels",
                    esp.path().display(),
                    mib(bytes),
                    mib(space.available)
                );
            }
        }
    }
    Ok(need)
}

/// The next free deployment serial for `csum` in `osname`.
fn allocate_serial(sysroot: &Sysroot, osname: &str, csum: &Checksum) -> Result<u32> {
    let mut next = 0;
    let prefix = format!("{csum}.");
    if let Some(d) = sysroot.dir().open_dir_optional(format!("ostree/deploy/{osname}/deploy"))? {
        for e in d.entries()? {
            let e = e?;
            if let Some(serial) =
                e.name.to_str().and_then(|n| n.strip_prefix(&prefix)).and_then(|s| s.parse::<u32>().ok())
            {
                next = next.max(serial + 1);
            }
        }
    }
    for d in sysroot.deployments.iter().chain(sysroot.staged.iter()) {
        if d.osname == osname && d.csum == *csum {
            next = next.max(d.serial + 1);
        }
    }
    Ok(next)
}

/// Kernel arguments for the new deployment.
fn new_kargs(merge: Option<&Deployment>, opts: &DeployOptions) -> Result<Kargs> {
    let mut k = match (&opts.kargs_override, merge) {
        (Some(list), _) => Kargs::parse(&list.join(" ")).context("--karg")?,
        (None, Some(m)) => m.kargs.clone(),
        (None, None) => Kargs::default(),
    };
    for d in &opts.kargs_delete {
        if d.contains('=') {
            k.delete_exact(d);
        } else {
            k.delete(d);
        }
    }
    for a in &opts.kargs_append {
        k.replace(a).with_context(|| format!("--karg {a}"))?;
    }
    Ok(k)
}

/// Sets up `etc` in a fresh checkout at `dir` and returns what the merge did.
fn prepare_etc(sysroot: &Sysroot, dir: &Dir, merge: Option<&Deployment>, no_merge: bool) -> Result<EtcPlan> {
    let has_usr_etc = dir.stat_optional("usr/etc")?.is_some();
    let has_etc = dir.stat_optional("etc")?.is_some();
    match (has_usr_etc, has_etc) {
        (true, true) => bail!("the tree has both /etc and /usr/etc; the default configuration belongs in /usr/etc"),
        (false, true) => dir.rename("etc", dir, "usr/etc").context("moving /etc to /usr/etc")?,
        (false, false) => return Ok(EtcPlan::default()),
        (true, false) => {}
    }
    let new_default = dir.open_dir("usr/etc")?;
    dir.create_dir("etc", 0o755)?;
    let new_etc = dir.open_dir("etc")?;
    let plan = match merge.filter(|_| !no_merge) {
        Some(m) => {
            let mdir =
                sysroot.dir().open_dir(m.dir()).with_context(|| format!("opening merge deployment {}", m.name()))?;
            let old_default = mdir.open_dir("usr/etc").context("the merge deployment has no /usr/etc")?;
            let old_local = mdir.open_dir("etc").context("the merge deployment has no /etc")?;
            etcmerge::merge(&old_default, &old_local, &new_default, &new_etc).context("merging /etc")?
        }
        // Nothing local to keep: /etc is a copy of the defaults.
        None => {
            etcmerge::merge(&new_default, &new_default, &new_default, &new_etc).context("copying /usr/etc to /etc")?
        }
    };
    let st = new_default.stat_self()?;
    fsutil::fd_chown(&new_etc, st.st_uid, st.st_gid)?;
    fsutil::fd_chmod(&new_etc, st.st_mode)?;
    Ok(plan)
}

/// Writes the origin file of `d` atomically.
pub fn write_origin(sysroot: &Sysroot, d: &Deployment) -> Result<()> {
    let dir = sysroot.dir().open_dir(format!("ostree/deploy/{}/deploy", d.osname))?;
    let name = format!("{}.origin", d.name());
    dir.write_atomic(&name, d.origin.to_text().as_bytes(), 0o644).with_context(|| format!("writing {name}"))
}

/// The immutable flag is best effort: tmpfs and some filesystems lack it,
/// and setting it needs CAP_LINUX_IMMUTABLE (a non-root demo sysroot).
fn ignore_unsupported(r: std::io::Result<()>) -> std::io::Result<()> {
    use rustix::io::Errno;
    let skip = [Errno::NOTTY, Errno::OPNOTSUPP, Errno::INVAL, Errno::PERM].map(Errno::raw_os_error);
    match r {
        Err(e) if e.raw_os_error().is_some_and(|c| skip.contains(&c)) => Ok(()),
        r => r,
    }
}

/// Checks out `commit` as a new deployment (complete, under its final
/// name) and returns it; the boot configuration is not touched.
pub fn create_deployment(
    sysroot: &Sysroot,
    commit: &Checksum,
    osname: &str,
    merge: Option<&Deployment>,
    opts: &DeployOptions,
) -> Result<(Deployment, EtcPlan)> {
    let layout = kernel::find(sysroot.repo(), commit)?;
    check_space(sysroot, commit, osname, &layout)?;
    let serial = allocate_serial(sysroot, osname, commit)?;
    let deploy_rel = PathBuf::from(format!("ostree/deploy/{osname}/deploy"));
    sysroot.dir().ensure_dir_all(&deploy_rel, 0o755)?;
    let deploy_dir = sysroot.dir().open_dir(&deploy_rel)?;
    let name = format!("{commit}.{serial}");
    let tmp_name = format!("{}{name}", fsutil::TEMP_PREFIX);
    deploy_dir.remove_all(&tmp_name)?;
    let user_mode = sysroot.repo().mode() != crate::repo::RepoMode::Bare;
    let co = CheckoutOptions { hardlink: true, user_mode, subpath: None };
    checkout(sysroot.repo(), commit, &sysroot.path().join(&deploy_rel).join(&tmp_name), &co, &NoProgress)
        .with_context(|| format!("checking out {commit}"))?;
    let tmp = deploy_dir.open_dir(&tmp_name)?;
    let plan = prepare_etc(sysroot, &tmp, merge, opts.no_merge_etc)?;
    let mut origin = match (&opts.refspec, merge) {
        (Some(r), _) => {
            let mut kf = KeyFile::new();
            kf.set(ORIGIN_GROUP, "refspec", r);
            kf
        }
        (None, Some(m)) => {
            let mut kf = m.origin.clone();
            kf.remove_group(super::deployment::TRANSIENT_GROUP);
            kf
        }
        (None, None) => {
            let mut kf = KeyFile::new();
            kf.set(ORIGIN_GROUP, "refspec", &commit.to_hex());
            kf
        }
    };
    if !origin.has_group(ORIGIN_GROUP) {
        origin.set(ORIGIN_GROUP, "refspec", &commit.to_hex());
    }
    // Boot state: a deployment with a predecessor to fall back to must
    // prove itself when a bootloader counts tries; the first one is good.
    origin.remove_group(super::boot::GROUP);
    if merge.is_some() && super::boot::BootConfig::load(sysroot.repo())?.backend != super::boot::Backend::None {
        super::boot::set_state(&mut origin, super::boot::BootState::Unproven, None);
    }
    let d = Deployment {
        index: 0,
        osname: osname.to_owned(),
        csum: *commit,
        serial,
        bootcsum: layout.bootcsum.clone(),
        bootserial: 0,
        kargs: new_kargs(merge, opts)?,
        origin,
        staged: opts.stage,
    };
    write_origin(sysroot, &d)?;
    tmp.syncfs()?;
    deploy_dir.rename(&tmp_name, &deploy_dir, &name).context("moving the deployment into place")?;
    deploy_dir.fsync()?;
    // The deployment root is immutable, as OSTree makes it, so nothing
    // writes into it by accident (tmpfs and some filesystems lack the flag).
    let final_dir = deploy_dir.open_dir(&name)?;
    ignore_unsupported(fsutil::set_immutable(&final_dir, true))
        .context("setting the immutable flag on the deployment")?;
    Ok((d, plan))
}

/// Which deployments stay when `new` is added (`retain` deployments of its
/// stateroot in all; the booted one, the merge deployment, pinned ones and
/// other stateroots are always kept).
pub fn retained(
    sysroot: &Sysroot,
    new: &Deployment,
    merge: Option<&Deployment>,
    retain: usize,
) -> (Vec<Deployment>, Vec<String>) {
    let mut keep = vec![new.clone()];
    let mut removed = Vec::new();
    let mut same_os = 1;
    for d in &sysroot.deployments {
        let booted = sysroot.booted_deployment().is_some_and(|b| b.same_as(d));
        let is_merge = merge.is_some_and(|m| m.same_as(d));
        if d.osname != new.osname || booted || is_merge || d.pinned() || same_os < retain {
            if d.osname == new.osname {
                same_os += 1;
            }
            keep.push(d.clone());
        } else {
            removed.push(d.name());
        }
    }
    (keep, removed)
}

/// Deploys `commit` (already in the sysroot's repository).
pub fn deploy(sysroot: &mut Sysroot, commit: &Checksum, opts: &DeployOptions) -> Result<DeployOutcome> {
    if !sysroot.repo().has_object(commit, ObjectType::Commit)? {
        bail!("commit {commit} is not in {}; pull it first", sysroot.repo().path().display());
    }
    if sysroot.repo().is_commit_partial(commit)? {
        bail!("commit {commit} is only partly pulled; pull it again before deploying");
    }
    let osname = match &opts.osname {
        Some(o) => o.clone(),
        None => sysroot.default_osname()?,
    };
    if sysroot.dir().stat_optional(format!("ostree/deploy/{osname}"))?.is_none() {
        bail!("no stateroot {osname} in {}; create it with `install --os {osname}`", sysroot.path().display());
    }
    if opts.stage && !sysroot.is_running_system() {
        bail!("--stage needs a booted system (finalize-staged runs at its shutdown); deploy without --stage");
    }
    // A pending staged deployment is replaced by this one.
    if sysroot.staged.is_some() {
        staged::discard(sysroot)?;
    }
    let merge = sysroot.merge_deployment(&osname).cloned();
    let (new, etc) = create_deployment(sysroot, commit, &osname, merge.as_ref(), opts)?;
    let retain = opts.retain.unwrap_or(DEFAULT_RETAIN).max(1);
    let (list, removed) = retained(sysroot, &new, merge.as_ref(), retain);
    if opts.stage {
        staged::stage(sysroot, list, &new, merge.as_ref())?;
    } else {
        bootswap::write_deployments(sysroot, list)?;
    }
    Ok(DeployOutcome { deployment: new.name(), osname, commit: *commit, staged: opts.stage, etc, removed })
}

/// Resolves REV for a deploy: the sysroot repository's refs and commits.
pub fn resolve(sysroot: &Sysroot, rev: &str) -> Result<(Checksum, Option<String>)> {
    let c = sysroot.repo().resolve_rev(rev)?;
    let refspec = if Checksum::from_hex(rev).is_ok() || rev.ends_with('^') {
        None
    } else {
        RefSpec::parse(rev).ok().map(|s| s.to_string())
    };
    Ok((c, refspec))
}

/// `ostree/deploy/OS` and its `var`, as `ostree admin os-init` makes them.
pub fn init_stateroot(root: &Dir, osname: &str) -> Result<()> {
    repo_format::name::validate_remote_name(osname).map_err(|e| anyhow!("invalid stateroot name {osname:?}: {e}"))?;
    let base = Path::new("ostree/deploy").join(osname);
    root.ensure_dir_all(base.join("deploy"), 0o755)?;
    root.ensure_dir_all(base.join("var"), 0o755)?;
    let var = root.open_dir(base.join("var"))?;
    for d in ["lib", "log"] {
        var.ensure_dir(d, 0o755)?;
    }
    var.ensure_dir("tmp", 0o1777)?;
    fsutil::fd_chmod(&var.open_dir("tmp")?, 0o1777)?;
    for (name, target) in [("lock", "../run/lock"), ("run", "../run")] {
        if var.stat_optional(name)?.is_none() {
            var.symlink(target, name)?;
        }
    }
    root.fsync()?;
    Ok(())
}
