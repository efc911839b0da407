//! Finding the kernel and initramfs in a commit, as OSTree does
//! (`get_kernel_from_tree_usrlib_modules`): the first
//! `usr/lib/modules/KVER/` holding a regular `vmlinuz`, with an optional
//! `initramfs.img` beside it. BOOTCSUM is the SHA-256 of their bytes, in
//! that order; it names the `/boot/ostree/OS-BOOTCSUM` directory, so
//! deployments with the same kernel share it.

use anyhow::{Context, Result, bail};
use repo_format::dirtree::Entry;
use repo_format::mode::is_reg;
use repo_format::{Checksum, Hasher};

use crate::repo::Repo;
use crate::repo::tree::PathEntry;

/// One boot file inside the tree.
#[derive(Debug, Clone)]
pub struct BootFile {
    /// Path in the tree.
    pub path: String,
    /// Content object.
    pub object: Checksum,
    /// Size in bytes.
    pub size: u64,
    /// Name under `/boot/ostree/OS-BOOTCSUM/`.
    pub install_name: String,
}

/// The kernel (and initramfs) of a commit.
#[derive(Debug, Clone)]
pub struct KernelLayout {
    /// Kernel version (the `usr/lib/modules` directory name).
    pub kver: String,
    /// The kernel image.
    pub kernel: BootFile,
    /// The initramfs, if the tree ships one.
    pub initramfs: Option<BootFile>,
    /// SHA-256 of kernel ‖ initramfs, hex.
    pub bootcsum: String,
}

impl KernelLayout {
    /// Bytes the boot files take in `/boot`.
    pub fn size(&self) -> u64 {
        self.kernel.size + self.initramfs.as_ref().map_or(0, |i| i.size)
    }
    /// The files to install.
    pub fn files(&self) -> impl Iterator<Item = &BootFile> {
        std::iter::once(&self.kernel).chain(self.initramfs.iter())
    }
}

fn regular_file(
    repo: &Repo,
    tree: &repo_format::DirTree,
    name: &str,
    path: String,
    install_name: String,
) -> Result<Option<BootFile>> {
    let Some(Entry::File(f)) = tree.lookup(name) else { return Ok(None) };
    let content = repo.open_content(&f.checksum)?;
    if !is_reg(content.header.mode) {
        return Ok(None);
    }
    Ok(Some(BootFile { path, object: f.checksum, size: content.size, install_name }))
}

/// Finds the kernel of `commit` and computes its boot checksum.
pub fn find(repo: &Repo, commit: &Checksum) -> Result<KernelLayout> {
    let (kver, kernel, initramfs) = locate(repo, commit)?;
    let bootcsum = boot_checksum(repo, &kernel, initramfs.as_ref())?;
    Ok(KernelLayout { kver, kernel, initramfs, bootcsum })
}

/// SHA-256 of kernel ‖ initramfs, hex: what names `/boot/ostree/OS-BOOTCSUM`.
pub fn boot_checksum(repo: &Repo, kernel: &BootFile, initramfs: Option<&BootFile>) -> Result<String> {
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 128 * 1024];
    for f in std::iter::once(kernel).chain(initramfs) {
        let mut content = repo.open_content(&f.object)?;
        loop {
            let n = content.reader().read(&mut buf).with_context(|| format!("reading {}", f.path))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(h.finish().to_hex())
}

/// Finds the kernel (version, image, initramfs) of `commit` without
/// reading them.
pub fn locate(repo: &Repo, commit: &Checksum) -> Result<(String, BootFile, Option<BootFile>)> {
    let Some(PathEntry::Dir { tree, .. }) = repo.lookup_path(commit, "usr/lib/modules")? else {
        bail!("commit {commit} has no kernel: expected usr/lib/modules/KVER/vmlinuz");
    };
    let tree = repo.load_dirtree(&tree)?;
    for d in tree.dirs() {
        let kver = d.name.as_str();
        let sub = repo.load_dirtree(&d.tree)?;
        let base = format!("usr/lib/modules/{kver}");
        let Some(kernel) = regular_file(repo, &sub, "vmlinuz", format!("{base}/vmlinuz"), format!("vmlinuz-{kver}"))?
        else {
            continue;
        };
        let mut initramfs = regular_file(
            repo,
            &sub,
            "initramfs.img",
            format!("{base}/initramfs.img"),
            format!("initramfs-{kver}.img"),
        )?;
        if initramfs.is_none() {
            initramfs =
                regular_file(repo, &sub, "initramfs", format!("{base}/initramfs"), format!("initramfs-{kver}.img"))?;
        }
        return Ok((kver.to_owned(), kernel, initramfs));
    }
    bail!("commit {commit} has no kernel: no usr/lib/modules/KVER/ holds a vmlinuz")
}
