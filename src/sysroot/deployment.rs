//! One deployment: a checked-out commit under
//! `ostree/deploy/OS/deploy/CSUM.SERIAL`, with its origin file and the
//! kernel arguments of its boot entry.

use std::path::PathBuf;

use bootloader::kargs::Kargs;
use repo_format::Checksum;

use crate::repo::keyfile::KeyFile;

/// The origin group of a `.origin` file.
pub const ORIGIN_GROUP: &str = "origin";
/// Where OSTree keeps state that is not part of the origin proper (pins).
pub const TRANSIENT_GROUP: &str = "libostree-transient";

/// A deployment.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Position in the boot order (0 = default).
    pub index: usize,
    /// Stateroot name (`/ostree/deploy/OS`).
    pub osname: String,
    /// The deployed commit.
    pub csum: Checksum,
    /// Counts deployments of the same commit in the same stateroot.
    pub serial: u32,
    /// SHA-256 of kernel ‖ initramfs (names `/boot/ostree/OS-BOOTCSUM`).
    pub bootcsum: String,
    /// Counts deployments sharing a bootcsum.
    pub bootserial: u32,
    /// Kernel arguments, without `ostree=`.
    pub kargs: Kargs,
    /// The `.origin` file (where updates come from; pins).
    pub origin: KeyFile,
    /// Staged: not in the boot configuration until finalized at shutdown.
    pub staged: bool,
}

impl Deployment {
    /// A deployment of nothing in particular, for unit tests.
    #[cfg(test)]
    pub fn for_tests() -> Deployment {
        Deployment {
            index: 0,
            osname: "os".into(),
            csum: Checksum::of(b"commit"),
            serial: 0,
            bootcsum: "b".repeat(64),
            bootserial: 0,
            kargs: Kargs::default(),
            origin: KeyFile::new(),
            staged: false,
        }
    }

    /// `OS-CSUM.SERIAL`: names the deployment in a bootloader's view.
    pub fn boot_id(&self) -> String {
        format!("{}-{}", self.osname, self.name())
    }

    /// `CSUM.SERIAL`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.csum, self.serial)
    }

    /// The deployment directory, relative to the sysroot.
    pub fn dir(&self) -> PathBuf {
        PathBuf::from(format!("ostree/deploy/{}/deploy/{}", self.osname, self.name()))
    }

    /// The origin file, relative to the sysroot.
    pub fn origin_path(&self) -> PathBuf {
        PathBuf::from(format!("ostree/deploy/{}/deploy/{}.origin", self.osname, self.name()))
    }

    /// `/boot/ostree/OS-BOOTCSUM`, relative to `/boot`.
    pub fn boot_dir(&self) -> PathBuf {
        PathBuf::from(format!("ostree/{}-{}", self.osname, self.bootcsum))
    }

    /// The refspec updates come from.
    pub fn refspec(&self) -> Option<&str> {
        self.origin.get(ORIGIN_GROUP, "refspec")
    }

    /// True if kept by cleanup whatever its place.
    pub fn pinned(&self) -> bool {
        matches!(self.origin.get_bool(TRANSIENT_GROUP, "pinned"), Ok(Some(true)))
    }

    /// The `ostree=` argument for this deployment under `bootversion`.
    pub fn ostree_karg(&self, bootversion: u8) -> String {
        format!("ostree=/ostree/boot.{bootversion}/{}/{}/{}", self.osname, self.bootcsum, self.bootserial)
    }

    /// True if both name the same deployment directory.
    pub fn same_as(&self, other: &Deployment) -> bool {
        self.osname == other.osname && self.csum == other.csum && self.serial == other.serial
    }
}
