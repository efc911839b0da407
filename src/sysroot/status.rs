//! `status`: the deployments, as a document scripts can read.
//!
//! # Wire format (`status --json`, kind `SysrootStatus`)
//!
//! ```json
//! {"apiVersion": "photon-upgrade/v1", "kind": "SysrootStatus",
//!  "sysroot": "/", "bootversion": 1, "subbootversion": 0,
//!  "booted": 0, "bootedMismatch": null, "lastError": null,
//!  "deployments": [{"index": 0, "osname": "photon", "checksum": "...", "serial": 0,
//!     "deployment": "CSUM.0", "version": "5.0.1", "timestamp": 1700000000,
//!     "refspec": "origin:photon/5.0/x86_64/minimal", "booted": true, "staged": false,
//!     "pending": false, "rollback": false, "pinned": false, "kargs": "root=...",
//!     "bootcsum": "...", "signature": {"state": "valid", "key": "base64"},
//!     "boot": {"state": "unproven", "triesLeft": 2, "failure": null}}]}
//! ```
//!
//! `pending` marks deployments that boot next in place of the booted one,
//! `rollback` those after it (what `rollback` switches to); a staged
//! deployment comes first with `staged: true` and no index in the boot
//! order until shutdown. `signature.state` is `valid`, `unsigned`,
//! `untrusted` or `not-checked` (with a `reason`). `boot.state` is `good`,
//! `unproven` (deployed, not yet booted to `boot-complete.target`;
//! `triesLeft` from the bootloader's counter) or `failed` (`failure` says
//! why).

use anyhow::Result;
use repo_format::commit::keys;

use super::Sysroot;
use super::boot::{BootConfig, BootState};
use super::deployment::Deployment;
use crate::pull::remote::Remote;
use crate::repo::refs::RefSpec;

/// Signature state of a deployed commit.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Signature {
    /// A trusted key of the origin remote signed it.
    Valid {
        /// The key (base64).
        key: String,
    },
    /// No signature.
    Unsigned,
    /// Signed, but not by a trusted key (or only by a revoked one).
    Untrusted {
        /// Why.
        reason: String,
    },
    /// Not checked.
    NotChecked {
        /// Why.
        reason: String,
    },
}

/// One deployment in the status document.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    /// Boot order (absent for a staged deployment).
    pub index: Option<usize>,
    /// Stateroot.
    pub osname: String,
    /// Commit.
    pub checksum: String,
    /// Deployment serial.
    pub serial: u32,
    /// `CSUM.SERIAL`.
    pub deployment: String,
    /// The commit's `version`.
    pub version: Option<String>,
    /// The commit's timestamp.
    pub timestamp: Option<u64>,
    /// Origin refspec.
    pub refspec: Option<String>,
    /// The running deployment.
    pub booted: bool,
    /// Waits for shutdown.
    pub staged: bool,
    /// Boots next instead of the booted one.
    pub pending: bool,
    /// What `rollback` would switch to.
    pub rollback: bool,
    /// Kept by cleanup.
    pub pinned: bool,
    /// Kernel arguments (without `ostree=`).
    pub kargs: String,
    /// Kernel checksum.
    pub bootcsum: String,
    /// Signature state.
    pub signature: Signature,
    /// Boot counting: good, unproven (tries left) or failed (why).
    pub boot: super::boot::BootInfo,
}

/// The whole status document.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The sysroot.
    pub sysroot: String,
    /// Current boot version.
    pub bootversion: u8,
    /// Current sub-version.
    pub subbootversion: u8,
    /// Index of the booted deployment.
    pub booted: Option<usize>,
    /// Set when `/` and `ostree=` disagree.
    pub booted_mismatch: Option<String>,
    /// The last failed background operation (finalize-staged).
    pub last_error: Option<serde_json::Value>,
    /// Deployments, staged first, then in boot order.
    pub deployments: Vec<DeploymentStatus>,
}

fn signature(sysroot: &Sysroot, d: &Deployment) -> Signature {
    let Some(spec) = d.refspec().and_then(|r| RefSpec::parse(r).ok()) else {
        return Signature::NotChecked { reason: "origin is not a ref".into() };
    };
    let Some(remote) = spec.remote else {
        return Signature::NotChecked { reason: "origin is a local ref".into() };
    };
    let r = match Remote::load(sysroot.repo(), &remote) {
        Ok(r) => r,
        Err(e) => return Signature::NotChecked { reason: format!("{e:#}") },
    };
    if !r.sign_verify {
        return Signature::NotChecked { reason: format!("remote {remote} has signature verification off") };
    }
    let trust = match r.trust(&sysroot.env().booted_root) {
        Ok(t) => t,
        Err(e) => return Signature::NotChecked { reason: format!("{e:#}") },
    };
    match crate::sign::verify_commit(sysroot.repo(), &d.csum, &trust) {
        Ok(k) => Signature::Valid { key: k.to_base64() },
        Err(e) => {
            let unsigned = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<crate::sign::SignatureError>(),
                    Some(crate::sign::SignatureError::Unsigned { .. })
                )
            });
            if unsigned { Signature::Unsigned } else { Signature::Untrusted { reason: format!("{e:#}") } }
        }
    }
}

fn one(sysroot: &Sysroot, cfg: &BootConfig, d: &Deployment, index: Option<usize>) -> DeploymentStatus {
    let commit = sysroot.repo().load_commit(&d.csum).ok();
    let booted_index = sysroot.booted;
    DeploymentStatus {
        index,
        osname: d.osname.clone(),
        checksum: d.csum.to_hex(),
        serial: d.serial,
        deployment: d.name(),
        version: commit.as_ref().and_then(|c| c.metadata.get_str(keys::VERSION).ok().flatten()),
        timestamp: commit.as_ref().map(|c| c.timestamp),
        refspec: d.refspec().map(str::to_owned),
        booted: index.is_some() && index == booted_index,
        staged: d.staged,
        pending: match (index, booted_index) {
            (Some(i), Some(b)) => i < b,
            _ => false,
        },
        rollback: match (index, booted_index) {
            (Some(i), Some(b)) => i > b,
            (Some(i), None) => i > 0,
            _ => false,
        },
        pinned: d.pinned(),
        kargs: d.kargs.to_string(),
        bootcsum: d.bootcsum.clone(),
        signature: signature(sysroot, d),
        boot: super::boot::info(sysroot, cfg, d),
    }
}

/// Builds the status document.
pub fn status(sysroot: &Sysroot) -> Result<Status> {
    let cfg = BootConfig::load(sysroot.repo())?;
    let mut deployments = Vec::new();
    if let Some(s) = &sysroot.staged {
        deployments.push(one(sysroot, &cfg, s, None));
    }
    for d in &sysroot.deployments {
        deployments.push(one(sysroot, &cfg, d, Some(d.index)));
    }
    let last_error = match sysroot.dir().open_file_optional(super::staged::LAST_ERROR)? {
        Some(f) => serde_json::from_reader(f).ok(),
        None => None,
    };
    Ok(Status {
        sysroot: sysroot.path().display().to_string(),
        bootversion: sysroot.bootversion,
        subbootversion: sysroot.subbootversion,
        booted: sysroot.booted,
        booted_mismatch: sysroot.booted_mismatch.clone(),
        last_error,
        deployments,
    })
}

/// The text form, close to `ostree admin status`.
pub fn text(s: &Status) -> Vec<String> {
    let mut out = Vec::new();
    if s.deployments.is_empty() {
        out.push("No deployments.".into());
    }
    for d in &s.deployments {
        let mark = if d.booted { "*" } else { " " };
        let mut tags = Vec::new();
        for (on, t) in [(d.staged, "staged"), (d.pending, "pending"), (d.rollback, "rollback"), (d.pinned, "pinned")] {
            if on {
                tags.push(t);
            }
        }
        let tags = if tags.is_empty() { String::new() } else { format!(" ({})", tags.join(", ")) };
        out.push(format!("{mark} {} {}{tags}", d.osname, d.deployment));
        if let Some(v) = &d.version {
            out.push(format!("    Version: {v}"));
        }
        if let Some(r) = &d.refspec {
            out.push(format!("    origin refspec: {r}"));
        }
        match &d.signature {
            Signature::Valid { key } => out.push(format!("    Signature: valid (ed25519 key {key})")),
            Signature::Unsigned => out.push("    Signature: none".into()),
            Signature::Untrusted { reason } => out.push(format!("    Signature: UNTRUSTED: {reason}")),
            Signature::NotChecked { .. } => {}
        }
        match (d.boot.state, d.boot.tries_left) {
            (BootState::Good, _) => {}
            (BootState::Unproven, Some(n)) => out.push(format!("    Boot: unproven, {n} tries left")),
            (BootState::Unproven, None) => out.push("    Boot: unproven".into()),
            (BootState::Failed, _) => {
                out.push(format!("    Boot: FAILED: {}", d.boot.failure.as_deref().unwrap_or("no reason recorded")))
            }
        }
    }
    if let Some(m) = &s.booted_mismatch {
        out.push(format!("warning: {m}"));
    }
    if let Some(e) = &s.last_error {
        out.push(format!("last error: {e}"));
    }
    out
}
