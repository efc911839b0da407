//! Staged deployments: all the fallible work at stage time, only renames
//! at shutdown.
//!
//! `deploy --stage` checks out the deployment, merges `/etc`, installs the
//! kernel and writes the complete new boot configuration into the other
//! boot version with `boot/loader.tmp` pointing at it (bootswap's
//! `prepare`), then records the state in `RUN/ostree/staged-deployment`
//! (OSTree's format, so `ostree admin status` shows it) and
//! `RUN/photon-upgrade/staged.json`. `finalize-staged`, run by
//! `photon-finalize-staged.service` at shutdown, renames `boot/loader.tmp`
//! over `boot/loader`. If `/etc` changed after staging, it first replays
//! the merge (the only work left that can fail; a failure leaves the old
//! configuration in place and is recorded for `status`).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use bootloader::kargs::Kargs;
use repo_format::metadata::{Metadata, Value};
use repo_format::{Checksum, Hasher};

use super::Sysroot;
use super::bootswap::{self, Prepared};
use super::deployment::Deployment;
use super::etcmerge;
use crate::fsutil::{self, Dir};

/// OSTree's staged-deployment state file, below the run directory.
const OSTREE_STAGED: &str = "ostree/staged-deployment";
/// While this exists, finalization is skipped (OSTree's lock file).
const OSTREE_STAGED_LOCKED: &str = "ostree/staged-deployment-locked";
/// Our own state, below the run directory.
const OUR_STAGED: &str = "photon-upgrade/staged.json";
/// Where a failed finalization is recorded for `status`, in the sysroot.
pub const LAST_ERROR: &str = "ostree/photon-upgrade/last-error.json";

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    prepared: Prepared,
    osname: String,
    name: String,
    bootcsum: String,
    kargs: String,
    merge: Option<String>,
    etc_fingerprint: Option<String>,
}

fn run_path(sysroot: &Sysroot, rel: &str) -> PathBuf {
    sysroot.env().run.join(rel)
}

fn write_run_file(sysroot: &Sysroot, rel: &str, data: &[u8]) -> Result<()> {
    let path = run_path(sysroot, rel);
    let parent = path.parent().ok_or_else(|| anyhow!("bad run path"))?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let dir = Dir::open(parent)?;
    let name = path.file_name().ok_or_else(|| anyhow!("bad run path"))?;
    dir.write_atomic(name, data, 0o644).with_context(|| format!("writing {}", path.display()))
}

fn serialize_deployment(d: &Deployment) -> Value {
    let mut m = Metadata::new();
    m.insert("name", Value::new_str(&d.name()));
    m.insert("osname", Value::new_str(&d.osname));
    m.insert("bootcsum", Value::new_str(&d.bootcsum));
    Value::new_dict(&m)
}

/// A fingerprint of a whole `/etc` (types, modes, owners, contents,
/// targets), to notice edits made after staging.
fn etc_fingerprint(dir: &Dir) -> Result<String> {
    fn walk(dir: &Dir, rel: &str, h: &mut Hasher) -> Result<()> {
        for e in dir.sorted_entries()? {
            let name = e.name.to_string_lossy().into_owned();
            let st = dir.stat(&e.name)?;
            h.update(format!("{rel}/{name}\0{}\0{}\0{}\0", st.st_mode, st.st_uid, st.st_gid).as_bytes());
            match fsutil::FileType::from_raw_mode(st.st_mode) {
                fsutil::FileType::Directory => walk(&dir.open_dir(&e.name)?, &format!("{rel}/{name}"), h)?,
                fsutil::FileType::Symlink => h.update(&dir.read_link(&e.name)?),
                fsutil::FileType::RegularFile => {
                    let mut f = dir.open_file(&e.name)?;
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = f.read(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        h.update(&buf[..n]);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
    let mut h = Hasher::new();
    walk(dir, "", &mut h)?;
    Ok(h.finish().to_hex())
}

/// Stages `new` (already checked out, first in `list`) for shutdown.
pub fn stage(
    sysroot: &mut Sysroot,
    mut list: Vec<Deployment>,
    new: &Deployment,
    merge: Option<&Deployment>,
) -> Result<()> {
    let prepared = bootswap::prepare(sysroot, &mut list)?;
    super::boot::stage_view(sysroot, new)?;
    let etc_fingerprint = match merge {
        Some(m) => Some(etc_fingerprint(&sysroot.dir().open_dir(m.dir().join("etc"))?)?),
        None => None,
    };
    let state = State {
        prepared,
        osname: new.osname.clone(),
        name: new.name(),
        bootcsum: new.bootcsum.clone(),
        kargs: new.kargs.to_string(),
        merge: merge.map(Deployment::name),
        etc_fingerprint,
    };
    // OSTree's own state file first (so `ostree admin status` shows it).
    let mut m = Metadata::new();
    m.insert("target", serialize_deployment(new));
    if let Some(md) = merge {
        m.insert("merge-deployment", serialize_deployment(md));
    }
    m.insert("kargs", Value::new_strs(&new.kargs.to_string().split_whitespace().collect::<Vec<_>>()));
    write_run_file(sysroot, OSTREE_STAGED, &m.to_bytes())?;
    write_run_file(sysroot, OUR_STAGED, &serde_json::to_vec_pretty(&state)?)?;
    sysroot.load()?;
    bootswap::cleanup(sysroot)?;
    Ok(())
}

fn read_state(sysroot: &Sysroot) -> Result<Option<State>> {
    match std::fs::read(run_path(sysroot, OUR_STAGED)) {
        Ok(data) => Ok(Some(serde_json::from_slice(&data).context("reading the staged-deployment state")?)),
        Err(e) if fsutil::is_not_found(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The staged deployment, if one waits for shutdown.
pub fn read(sysroot: &Sysroot) -> Result<Option<Deployment>> {
    let Some(state) = read_state(sysroot)? else { return Ok(None) };
    let (csum, serial) =
        state.name.split_once('.').ok_or_else(|| anyhow!("bad staged deployment name {}", state.name))?;
    let csum = Checksum::from_hex(csum)?;
    let serial = serial.parse()?;
    let mut d = Deployment {
        index: 0,
        osname: state.osname,
        csum,
        serial,
        bootcsum: state.bootcsum,
        bootserial: 0,
        kargs: Kargs::parse(&state.kargs)?,
        origin: Default::default(),
        staged: true,
    };
    d.origin = sysroot.read_origin(&d)?;
    Ok(Some(d))
}

fn remove_run_files(sysroot: &Sysroot) -> Result<()> {
    for rel in [OSTREE_STAGED, OUR_STAGED] {
        match std::fs::remove_file(run_path(sysroot, rel)) {
            Err(e) if !fsutil::is_not_found(&e) => return Err(e).with_context(|| format!("removing {rel}")),
            _ => {}
        }
    }
    Ok(())
}

/// Drops a staged deployment (another deploy or a rollback replaces it).
pub fn discard(sysroot: &mut Sysroot) -> Result<()> {
    remove_run_files(sysroot)?;
    let boot = sysroot.dir().open_dir("boot")?;
    match boot.unlink("loader.tmp") {
        Err(e) if !fsutil::is_not_found(&e) => return Err(e.into()),
        _ => {}
    }
    sysroot.load()?;
    bootswap::cleanup(sysroot)?;
    Ok(())
}

/// What finalization did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Finalized {
    /// Nothing was staged.
    Nothing,
    /// Finalization is locked (`staged-deployment-locked`).
    Locked,
    /// The switch happened; `remerged_etc` if `/etc` had changed since staging.
    Switched {
        /// The new default.
        deployment: String,
        /// The `/etc` merge was replayed.
        remerged_etc: bool,
    },
}

/// Runs at shutdown: the switch to the staged deployment.
pub fn finalize(sysroot: &mut Sysroot) -> Result<Finalized> {
    let Some(state) = read_state(sysroot)? else { return Ok(Finalized::Nothing) };
    if run_path(sysroot, OSTREE_STAGED_LOCKED).exists() {
        return Ok(Finalized::Locked);
    }
    let r = finalize_inner(sysroot, &state);
    if let Err(e) = &r {
        let record =
            serde_json::json!({"operation": "finalize-staged", "deployment": state.name, "error": format!("{e:#}")});
        if let Ok(d) = sysroot.dir().open_dir("ostree") {
            let _ = d.ensure_dir("photon-upgrade", 0o755);
            if let Ok(pd) = d.open_dir("photon-upgrade") {
                let _ = pd.write_atomic("last-error.json", record.to_string().as_bytes(), 0o644);
            }
        }
    }
    r
}

fn finalize_inner(sysroot: &mut Sysroot, state: &State) -> Result<Finalized> {
    let deploy = Path::new("ostree/deploy").join(&state.osname).join("deploy");
    let mut remerged = false;
    if let (Some(merge), Some(fp)) = (&state.merge, &state.etc_fingerprint) {
        let mdir = sysroot.dir().open_dir(deploy.join(merge))?;
        let now = etc_fingerprint(&mdir.open_dir("etc")?)?;
        if now != *fp {
            remerge_etc(sysroot, &deploy, merge, &state.name)?;
            remerged = true;
        }
    }
    bootswap::switch(sysroot, &state.prepared)?;
    remove_run_files(sysroot)?;
    // The bootloader's view follows: its kernels were copied at stage time,
    // so this writes a few entry files and renames.
    sysroot.load()?;
    super::boot::sync_view(sysroot).context("updating the bootloader's entries (the next boot or command retries)")?;
    // Cleanup of the old configuration waits for the next command or boot:
    // shutdown only renames.
    Ok(Finalized::Switched { deployment: state.name.clone(), remerged_etc: remerged })
}

/// Replays the `/etc` merge into the staged deployment (its `/etc` was
/// merged at stage time from an older `/etc`).
fn remerge_etc(sysroot: &Sysroot, deploy: &Path, merge: &str, name: &str) -> Result<()> {
    let root = sysroot.dir();
    let mdir = root.open_dir(deploy.join(merge))?;
    let ddir = root.open_dir(deploy.join(name))?;
    let _ = fsutil::set_immutable(&ddir, false);
    let tmp = format!("{}etc", fsutil::TEMP_PREFIX);
    ddir.remove_all(&tmp)?;
    ddir.create_dir(&tmp, 0o755)?;
    let new_etc = ddir.open_dir(&tmp)?;
    etcmerge::merge(&mdir.open_dir("usr/etc")?, &mdir.open_dir("etc")?, &ddir.open_dir("usr/etc")?, &new_etc)
        .context("replaying the /etc merge at finalization")?;
    let st = ddir.stat("usr/etc")?;
    fsutil::fd_chown(&new_etc, st.st_uid, st.st_gid)?;
    fsutil::fd_chmod(&new_etc, st.st_mode)?;
    new_etc.syncfs()?;
    ddir.exchange(&tmp, &ddir, "etc")?;
    ddir.remove_all(&tmp)?;
    let _ = fsutil::set_immutable(&ddir, true);
    Ok(())
}
