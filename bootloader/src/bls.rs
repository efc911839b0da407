//! Boot Loader Specification type #1 entries (`/boot/loader/entries/*.conf`).
//!
//! The format is the UAPI Boot Loader Specification (`specs/boot_loader_specification.md`):
//! UTF-8, one `key value` per line, the key is the first word, and one or more spaces or tabs
//! separate it from the value; lines starting with `#` are comments.
//!
//! [`BlsEntry`] keeps every line in file order, so that unknown keys, comments and blank lines
//! survive a rewrite where they were. It writes `key value\n` with a single space, which is how
//! OSTree writes (`write_key` in `ostree-bootconfig-parser.c`), so an entry written by
//! `ostree admin deploy` parses and prints back byte for byte (see the golden files in
//! `tests/fixtures/ostree-entries/`, made by `tests/fixtures/make_ostree_entries.sh`).
//!
//! Stricter than the readers, on purpose (an entry we cannot read the way every boot loader reads
//! it is refused rather than guessed at):
//! - a key must match `[a-z0-9-]+` and start the line. OSTree's parser only takes lines that start
//!   with a letter as keys, while systemd-boot strips leading whitespace first, so an indented key
//!   means different things to the two;
//! - NUL bytes and entries over [`MAX_ENTRY_SIZE`] are refused.
//!
//! Lenient where the readers agree: blank lines, indented comments, CRLF line ends and trailing
//! whitespace (stripped from values, as systemd-boot does). A key without a value has the empty
//! value. A key that appears twice yields the last value (systemd-boot and OSTree both let the last
//! one win), except `initrd` and `options`, which the specification lets repeat.

use std::fmt;

use crate::kargs::{self, Karg, Kargs, OstreeBootlink};

/// Largest entry accepted: 64 KiB. Real entries are a few hundred bytes; the bound keeps a hostile
/// `/boot` from making us allocate without limit. (systemd-boot has no fixed limit; it reads
/// whatever the file size says.)
pub const MAX_ENTRY_SIZE: usize = 64 * 1024;

/// Errors from parsing or editing a BLS entry. Line numbers start at 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The entry is larger than [`MAX_ENTRY_SIZE`].
    #[error("boot entry is {size} bytes, more than the limit of {max}")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The entry is not UTF-8.
    #[error("boot entry is not UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The entry contains a NUL byte.
    #[error("line {line}: NUL byte in boot entry")]
    NulByte {
        /// The line with the NUL byte.
        line: usize,
    },
    /// A line has content but does not start with a key (it starts with whitespace).
    #[error("line {line}: no key at the start of the line {text:?}")]
    MissingKey {
        /// The line.
        line: usize,
        /// Its text.
        text: String,
    },
    /// A line starts with something that is not a `[a-z0-9-]+` key.
    #[error("line {line}: invalid key {key:?} (keys are lower-case letters, digits and '-')")]
    InvalidKey {
        /// The line.
        line: usize,
        /// The first word of the line.
        key: String,
    },
    /// A key given to a setter is not `[a-z0-9-]+`.
    #[error("invalid key {key:?} (keys are lower-case letters, digits and '-')")]
    InvalidKeyName {
        /// The key.
        key: String,
    },
    /// A value given to a setter cannot be written on one line and read back unchanged.
    #[error("invalid value {value:?} for key {key:?}: {reason}")]
    InvalidValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An `options` line is not a valid kernel command line.
    #[error("line {line}: invalid options")]
    Options {
        /// The `options` line.
        line: usize,
        /// What is wrong with it.
        #[source]
        source: kargs::Error,
    },
    /// The deployment index is not below the number of deployments.
    #[error("deployment index {index} is out of range for {n_deployments} deployments")]
    DeploymentIndex {
        /// The index.
        index: usize,
        /// The number of deployments.
        n_deployments: usize,
    },
}

/// One line of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `key value`.
    Pair {
        /// The key, `[a-z0-9-]+`.
        key: String,
        /// The value: the rest of the line after the separating whitespace, without trailing
        /// whitespace. May be empty.
        value: String,
    },
    /// A comment, kept verbatim (including its `#` and any indentation).
    Comment(String),
    /// An empty or all-whitespace line (written back empty).
    Blank,
}

/// A BLS type #1 entry: its lines, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlsEntry {
    lines: Vec<Line>,
}

/// The order in which OSTree writes the keys it knows (`ostree_bootconfig_parser_write_at`);
/// setters put a new key at its place in this order.
const CANONICAL_ORDER: &[&str] = &["title", "version", "options", "devicetree", "linux", "initrd"];

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-'))
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

impl BlsEntry {
    /// An entry with no lines.
    pub fn new() -> BlsEntry {
        BlsEntry::default()
    }

    /// Parses an entry from the bytes of its file (size limit first, then UTF-8, then
    /// [`BlsEntry::parse`]).
    pub fn from_bytes(data: &[u8]) -> Result<BlsEntry, Error> {
        check_size(data.len())?;
        let text = std::str::from_utf8(data).map_err(|e| Error::NotUtf8 { offset: e.valid_up_to() })?;
        BlsEntry::parse(text)
    }

    /// Parses an entry.
    pub fn parse(text: &str) -> Result<BlsEntry, Error> {
        check_size(text.len())?;
        let mut lines = Vec::new();
        // A final newline ends the last line; it does not start an empty one.
        let body = text.strip_suffix('\n').unwrap_or(text);
        if text.is_empty() {
            return Ok(BlsEntry { lines });
        }
        for (i, raw) in body.split('\n').enumerate() {
            let line = i + 1;
            if raw.contains('\0') {
                return Err(Error::NulByte { line });
            }
            // CRLF (and stray CRs) at the end of a line are line-end noise; dropping all of them
            // keeps print-then-parse stable.
            let raw = raw.trim_end_matches('\r');
            let trimmed = raw.trim_start_matches(is_blank);
            if trimmed.trim_end_matches(is_blank).is_empty() {
                lines.push(Line::Blank);
            } else if trimmed.starts_with('#') {
                lines.push(Line::Comment(raw.to_owned()));
            } else if trimmed.len() != raw.len() {
                return Err(Error::MissingKey { line, text: raw.to_owned() });
            } else {
                let (key, rest) = raw.split_once(is_blank).unwrap_or((raw, ""));
                if !valid_key(key) {
                    return Err(Error::InvalidKey { line, key: key.to_owned() });
                }
                let value = rest.trim_start_matches(is_blank).trim_end_matches(|c| is_blank(c) || c == '\r');
                lines.push(Line::Pair { key: key.to_owned(), value: value.to_owned() });
            }
        }
        Ok(BlsEntry { lines })
    }

    /// The lines, in file order.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// Every `key value` pair, in file order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lines.iter().filter_map(|l| match l {
            Line::Pair { key, value } => Some((key.as_str(), value.as_str())),
            _ => None,
        })
    }

    /// The value of the last line with this key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines.iter().rev().find_map(|l| match l {
            Line::Pair { key: k, value } if k == key => Some(value.as_str()),
            _ => None,
        })
    }

    /// The values of every line with this key, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs().filter(move |(k, _)| *k == key).map(|(_, v)| v)
    }

    /// `title`: the menu text.
    pub fn title(&self) -> Option<&str> {
        self.get("title")
    }

    /// `version`: used to sort entries (see [`crate::counting::sort`]). OSTree writes the
    /// deployment's position counted from the oldest (1 = oldest).
    pub fn version(&self) -> Option<&str> {
        self.get("version")
    }

    /// `linux`: path of the kernel, relative to the root of the boot file system.
    pub fn linux(&self) -> Option<&str> {
        self.get("linux")
    }

    /// `initrd`: the initramfs images, in the order the boot loader loads them.
    pub fn initrds(&self) -> impl Iterator<Item = &str> {
        self.get_all("initrd")
    }

    /// `devicetree`: path of the device tree blob.
    pub fn devicetree(&self) -> Option<&str> {
        self.get("devicetree")
    }

    /// `machine-id`: 32 lower-case hex digits (not checked here).
    pub fn machine_id(&self) -> Option<&str> {
        self.get("machine-id")
    }

    /// `sort-key`: groups entries of one OS when sorting.
    pub fn sort_key(&self) -> Option<&str> {
        self.get("sort-key")
    }

    /// `options`: the kernel command line. Several `options` lines are combined in order, as the
    /// specification says; no `options` line gives an empty command line.
    pub fn options(&self) -> Result<Kargs, Error> {
        let mut all = Kargs::new();
        for (i, line) in self.lines.iter().enumerate() {
            if let Line::Pair { key, value } = line
                && key == "options"
            {
                let part = Kargs::parse(value).map_err(|source| Error::Options { line: i + 1, source })?;
                // `extend`, not `append`: repetitions across lines reach the kernel, so keep them.
                all.extend(part);
            }
        }
        Ok(all)
    }

    /// Sets `key` to `value`: the first line with the key gets the new value and later lines with
    /// the key are removed. Without such a line, a new one goes where OSTree would write it
    /// (title, version, options, devicetree, linux, initrd), or at the end for other keys.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        self.set_all(key, &[value])
    }

    /// Sets every line of `key` (for `initrd`, which may repeat): the values replace the existing
    /// lines at the position of the first one. An empty list removes the key.
    pub fn set_all(&mut self, key: &str, values: &[&str]) -> Result<(), Error> {
        if !valid_key(key) {
            return Err(Error::InvalidKeyName { key: key.to_owned() });
        }
        for value in values {
            check_value(key, value)?;
        }
        let at = match self.lines.iter().position(|l| matches!(l, Line::Pair { key: k, .. } if k == key)) {
            Some(first) => first,
            None => self.insertion_point(key),
        };
        self.remove(key);
        let new = values.iter().map(|v| Line::Pair { key: key.to_owned(), value: (*v).to_owned() });
        self.lines.splice(at..at, new);
        Ok(())
    }

    /// Removes every line with this key; returns how many.
    pub fn remove(&mut self, key: &str) -> usize {
        let before = self.lines.len();
        self.lines.retain(|l| !matches!(l, Line::Pair { key: k, .. } if k == key));
        before - self.lines.len()
    }

    /// Writes `kargs` as the single `options` line (removing it when `kargs` is empty).
    pub fn set_options(&mut self, kargs: &Kargs) -> Result<(), Error> {
        if kargs.is_empty() {
            self.remove("options");
            return Ok(());
        }
        self.set("options", &kargs.to_string())
    }

    /// Where a new line for `key` goes: after the last line whose key comes before `key` in
    /// [`CANONICAL_ORDER`]; keys outside that order go at the end.
    fn insertion_point(&self, key: &str) -> usize {
        let Some(rank) = CANONICAL_ORDER.iter().position(|k| *k == key) else { return self.lines.len() };
        let earlier = &CANONICAL_ORDER[..rank];
        self.lines
            .iter()
            .rposition(|l| matches!(l, Line::Pair { key: k, .. } if earlier.contains(&k.as_str())))
            .map_or(0, |i| i + 1)
    }

    /// Builds the entry `ostree admin deploy` writes for one deployment
    /// (`install_deployment_kernel` in `ostree-sysroot-deploy.c`, checked against ostree 2022.7 by
    /// the golden files).
    ///
    /// Newer OSTree (2023 and later) also writes `aboot` and `abootcfg` lines, for Android boot
    /// images; they are not produced here.
    pub fn for_ostree_deployment(ctx: &OstreeEntryContext<'_>, opts: &OstreeEntryOptions) -> Result<BlsEntry, Error> {
        let version = ctx.entry_version()?;
        let link = ctx.bootlink;
        let mut title = ctx.os_name.to_owned();
        if let Some(v) = ctx.commit_version.filter(|v| !v.is_empty() && !ctx.os_name.contains(*v)) {
            title.push(' ');
            title.push_str(v);
        }
        title.push_str(" (ostree");
        if opts.show_osname {
            title.push(':');
            title.push_str(link.osname());
        }
        title.push_str(&format!(":{})", ctx.index));

        let prefix = if opts.bootprefix { "/boot/" } else { "/" };
        let bootcsumdir = format!("{prefix}ostree/{}-{}", link.osname(), link.bootcsum());
        let mut kargs = ctx.kargs.clone();
        if ctx.initramfs.is_none() {
            // Without an initramfs the kernel must run ostree-prepare-root itself.
            let init = Karg::new("init", Some(&link.prepare_root_init())).map_err(|_| Error::InvalidValue {
                key: "options".into(),
                value: link.prepare_root_init(),
                reason: "the init= path cannot be a kernel argument",
            })?;
            kargs.replace_karg(init);
        }
        kargs.set_ostree_bootlink(link);

        let mut entry = BlsEntry::new();
        entry.set("title", &title)?;
        entry.set("version", &version.to_string())?;
        entry.set_options(&kargs)?;
        if let Some(Devicetree::File(name)) = ctx.devicetree {
            entry.set("devicetree", &format!("{bootcsumdir}/{name}"))?;
        }
        entry.set("linux", &format!("{bootcsumdir}/{}", ctx.kernel))?;
        if let Some(initramfs) = ctx.initramfs {
            entry.set("initrd", &format!("{bootcsumdir}/{initramfs}"))?;
        }
        if let Some(Devicetree::Dir(dir)) = ctx.devicetree {
            // A directory of device trees: OSTree writes `fdtdir` (ostreedev/ostree#1900).
            entry.set("fdtdir", &format!("{bootcsumdir}/{dir}"))?;
        }
        Ok(entry)
    }
}

fn check_size(size: usize) -> Result<(), Error> {
    if size > MAX_ENTRY_SIZE {
        return Err(Error::TooLarge { size, max: MAX_ENTRY_SIZE });
    }
    Ok(())
}

fn check_value(key: &str, value: &str) -> Result<(), Error> {
    let bad = |reason| Error::InvalidValue { key: key.to_owned(), value: value.to_owned(), reason };
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(bad("contains a newline, NUL or other control character"));
    }
    if value.starts_with(is_blank) || value.ends_with(is_blank) {
        return Err(bad("starts or ends with whitespace, which a reader strips"));
    }
    Ok(())
}

impl fmt::Display for BlsEntry {
    /// Writes one line per [`Line`], each ending in `\n`: `key value`, or `key` alone when the
    /// value is empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            match line {
                Line::Pair { key, value } if value.is_empty() => writeln!(f, "{key}")?,
                Line::Pair { key, value } => writeln!(f, "{key} {value}")?,
                Line::Comment(text) => writeln!(f, "{text}")?,
                Line::Blank => writeln!(f)?,
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for BlsEntry {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BlsEntry::parse(s)
    }
}

/// The device tree of a deployment's kernel, as OSTree found it in `usr/lib/modules/KVER/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Devicetree<'a> {
    /// A single `devicetree` file, installed as this name (`devicetree-KVER`); written as the
    /// `devicetree` key.
    File(&'a str),
    /// A `dtb/` directory, copied under this name; written as the `fdtdir` key.
    Dir(&'a str),
}

/// What OSTree knows about a deployment when it writes its entry (the inputs of
/// `install_deployment_kernel`).
#[derive(Debug, Clone, Copy)]
pub struct OstreeEntryContext<'a> {
    /// `PRETTY_NAME`, else `ID`, from the deployment's `usr/lib/os-release` (else `etc/os-release`).
    pub os_name: &'a str,
    /// The `version` metadata of the deployed commit, if any.
    pub commit_version: Option<&'a str>,
    /// The deployment's position in the new deployment list (0 is the default).
    pub index: usize,
    /// How many deployments the new list has.
    pub n_deployments: usize,
    /// Where `ostree=` points (bootversion, osname, boot checksum, boot serial).
    pub bootlink: &'a OstreeBootlink,
    /// The kernel's name in the boot checksum directory (`vmlinuz-KVER`).
    pub kernel: &'a str,
    /// The initramfs' name there (`initramfs-KVER.img`), if the tree has one.
    pub initramfs: Option<&'a str>,
    /// The device tree, if the tree has one.
    pub devicetree: Option<Devicetree<'a>>,
    /// Kernel arguments other than `ostree=` (from the merge deployment, or given at deploy).
    pub kargs: &'a Kargs,
}

/// How OSTree names entry files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EntryNaming {
    /// `ostree-VERSION-OSNAME.conf`, the default.
    #[default]
    WithOsname,
    /// `ostree-VERSION.conf`, with the sysroot option `bootloader-naming-2` (because GRUB sorts by
    /// file name and ignores `version`; ostreedev/ostree#2961).
    VersionOnly,
}

/// Choices with defaults for [`BlsEntry::for_ostree_deployment`].
#[derive(Debug, Clone, Copy, Default)]
pub struct OstreeEntryOptions {
    /// Add the osname to the title; OSTree does this when the deployments span several stateroots.
    pub show_osname: bool,
    /// Prefix paths with `/boot/`, for a `/boot` that is a directory of the root file system
    /// (the repository option `sysroot.bootprefix`).
    pub bootprefix: bool,
    /// How the entry file is named.
    pub naming: EntryNaming,
}

impl OstreeEntryContext<'_> {
    /// The `version` OSTree writes: the number of deployments minus the index, so the default
    /// deployment has the highest version.
    pub fn entry_version(&self) -> Result<usize, Error> {
        if self.index >= self.n_deployments {
            return Err(Error::DeploymentIndex { index: self.index, n_deployments: self.n_deployments });
        }
        Ok(self.n_deployments - self.index)
    }

    /// The file name without `.conf` (and without a boot counter): `ostree-2-sample`.
    pub fn entry_stem(&self, naming: EntryNaming) -> Result<String, Error> {
        let version = self.entry_version()?;
        Ok(match naming {
            EntryNaming::WithOsname => format!("ostree-{version}-{}", self.bootlink.osname()),
            EntryNaming::VersionOnly => format!("ostree-{version}"),
        })
    }

    /// The file name OSTree gives the entry: `ostree-2-sample.conf`.
    pub fn file_name(&self, naming: EntryNaming) -> Result<String, Error> {
        Ok(format!("{}.conf", self.entry_stem(naming)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A1: &str = include_str!("../tests/fixtures/ostree-entries/a/ostree-1-sample.conf");
    const A2: &str = include_str!("../tests/fixtures/ostree-entries/a/ostree-2-sample.conf");
    const B1: &str = include_str!("../tests/fixtures/ostree-entries/b/ostree-1-sample.conf");
    const B2: &str = include_str!("../tests/fixtures/ostree-entries/b/ostree-2-sample.conf");
    const B3: &str = include_str!("../tests/fixtures/ostree-entries/b/ostree-3-other.conf");
    const CSUM_1: &str = "c0620b9508ecec86a0e4100899143c4993de648e45606d81edcf1313d67fa1c6";
    const CSUM_2: &str = "c7ed75e837255175cd215f2166ee652fdd4b3eb269cc13826d39a77e988530e4";
    const CSUM_OTHER: &str = "739a997009a97c4afd5e79da5e25015873e34b104fa7e610b95d1c042439c0e1";

    #[test]
    fn golden_entries_round_trip() {
        for golden in [A1, A2, B1, B2, B3] {
            let entry = BlsEntry::parse(golden).expect("ostree wrote a valid entry");
            assert_eq!(entry.to_string(), golden);
            assert_eq!(BlsEntry::from_bytes(golden.as_bytes()), Ok(entry));
        }
    }

    #[test]
    fn golden_entry_accessors() {
        let entry = BlsEntry::parse(B3).expect("valid");
        assert_eq!(entry.title(), Some("Other OS 7.3 (ostree:other:0)"));
        assert_eq!(entry.version(), Some("3"));
        assert_eq!(entry.linux(), Some(format!("/ostree/other-{CSUM_OTHER}/vmlinuz-6.1.0-sample").as_str()));
        assert_eq!(entry.devicetree(), Some(format!("/ostree/other-{CSUM_OTHER}/devicetree-6.1.0-sample").as_str()));
        assert_eq!(entry.initrds().count(), 0);
        let kargs = entry.options().expect("valid options");
        assert_eq!(kargs.get("dyndbg"), Some("file x +p"));
        let link = kargs.ostree_bootlink().expect("valid bootlink").expect("has ostree=");
        assert_eq!(
            (link.bootversion(), link.osname(), link.bootcsum(), link.bootserial()),
            (1, "other", CSUM_OTHER, 0)
        );
    }

    /// One golden file and the deployment ostree wrote it for.
    struct Golden {
        text: &'static str,
        file: &'static str,
        osname: &'static str,
        pretty_name: &'static str,
        commit_version: &'static str,
        index: usize,
        n_deployments: usize,
        bootversion: u8,
        bootcsum: &'static str,
        show_osname: bool,
        kargs: &'static str,
        initramfs: bool,
        devicetree: bool,
    }

    const SAMPLE_1: Golden = Golden {
        text: A1,
        file: "ostree-1-sample.conf",
        osname: "sample",
        pretty_name: "Sample Photon 1.0",
        commit_version: "1.0",
        index: 1,
        n_deployments: 2,
        bootversion: 0,
        bootcsum: CSUM_1,
        show_osname: false,
        kargs: "root=LABEL=root quiet",
        initramfs: true,
        devicetree: false,
    };
    const SAMPLE_2: Golden = Golden {
        text: A2,
        file: "ostree-2-sample.conf",
        pretty_name: "Sample Photon 2.0",
        commit_version: "2.0",
        index: 0,
        bootcsum: CSUM_2,
        ..SAMPLE_1
    };
    // After the "other" stateroot is deployed: three deployments, titles show the osname.
    const GOLDEN: &[Golden] = &[
        SAMPLE_1,
        SAMPLE_2,
        Golden { text: B1, index: 2, n_deployments: 3, bootversion: 1, show_osname: true, ..SAMPLE_1 },
        Golden { text: B2, index: 1, n_deployments: 3, bootversion: 1, show_osname: true, ..SAMPLE_2 },
        Golden {
            text: B3,
            file: "ostree-3-other.conf",
            osname: "other",
            pretty_name: "Other OS",
            commit_version: "7.3",
            index: 0,
            n_deployments: 3,
            bootversion: 1,
            bootcsum: CSUM_OTHER,
            show_osname: true,
            kargs: "console=ttyS0,115200 dyndbg=\"file x +p\"",
            initramfs: false,
            devicetree: true,
        },
    ];

    #[test]
    fn ostree_constructor_matches_golden_files() {
        for g in GOLDEN {
            let link = OstreeBootlink::new(g.bootversion, g.osname, g.bootcsum, 0).expect("valid bootlink");
            let kargs = Kargs::parse(g.kargs).expect("valid kargs");
            let ctx = OstreeEntryContext {
                os_name: g.pretty_name,
                commit_version: Some(g.commit_version),
                index: g.index,
                n_deployments: g.n_deployments,
                bootlink: &link,
                kernel: "vmlinuz-6.1.0-sample",
                initramfs: g.initramfs.then_some("initramfs-6.1.0-sample.img"),
                devicetree: g.devicetree.then_some(Devicetree::File("devicetree-6.1.0-sample")),
                kargs: &kargs,
            };
            let opts = OstreeEntryOptions { show_osname: g.show_osname, ..Default::default() };
            let entry = BlsEntry::for_ostree_deployment(&ctx, &opts).expect("valid context");
            assert_eq!(entry.to_string(), g.text, "{}", g.file);
            assert_eq!(ctx.file_name(EntryNaming::WithOsname).as_deref(), Ok(g.file));
        }
    }

    #[test]
    fn ostree_constructor_variants() {
        let link = OstreeBootlink::new(1, "os", CSUM_1, 2).expect("valid");
        let kargs = Kargs::parse("quiet ostree=/old init=/sbin/init").expect("valid");
        let base = OstreeEntryContext {
            os_name: "My OS",
            commit_version: None,
            index: 0,
            n_deployments: 1,
            bootlink: &link,
            kernel: "vmlinuz-6",
            initramfs: Some("initramfs-6.img"),
            devicetree: Some(Devicetree::Dir("dtb")),
            kargs: &kargs,
        };
        let opts = OstreeEntryOptions { bootprefix: true, ..Default::default() };
        let entry = BlsEntry::for_ostree_deployment(&base, &opts).expect("valid");
        let dir = format!("/boot/ostree/os-{CSUM_1}");
        let want = format!(
            "title My OS (ostree:0)\nversion 1\noptions quiet ostree=/ostree/boot.1/os/{CSUM_1}/2 init=/sbin/init\n\
             linux {dir}/vmlinuz-6\ninitrd {dir}/initramfs-6.img\nfdtdir {dir}/dtb\n"
        );
        assert_eq!(entry.to_string(), want);
        // A commit version that is not in PRETTY_NAME is appended to the title.
        let ctx = OstreeEntryContext { commit_version: Some("41.2"), ..base };
        let entry = BlsEntry::for_ostree_deployment(&ctx, &OstreeEntryOptions::default()).expect("valid");
        assert_eq!(entry.title(), Some("My OS 41.2 (ostree:0)"));
        assert_eq!(ctx.file_name(EntryNaming::VersionOnly).as_deref(), Ok("ostree-1.conf"));
        let bad = OstreeEntryContext { index: 1, ..base };
        assert_eq!(
            BlsEntry::for_ostree_deployment(&bad, &opts),
            Err(Error::DeploymentIndex { index: 1, n_deployments: 1 })
        );
    }

    #[test]
    fn parse_table() {
        // (input, pairs, to_string)
        type Case = (&'static str, &'static [(&'static str, &'static str)], &'static str);
        let cases: &[Case] = &[
            ("", &[], ""),
            ("title x", &[("title", "x")], "title x\n"),
            ("title   Fedora 19 (Rawhide)  \t\n", &[("title", "Fedora 19 (Rawhide)")], "title Fedora 19 (Rawhide)\n"),
            (
                "sort-key\tfedora\r\nversion 1\r\n",
                &[("sort-key", "fedora"), ("version", "1")],
                "sort-key fedora\nversion 1\n",
            ),
            (
                "# c\n\ntitle a\n  # indented\n   \nx-custom v w\n",
                &[("title", "a"), ("x-custom", "v w")],
                "# c\n\ntitle a\n  # indented\n\nx-custom v w\n",
            ),
            ("options\n", &[("options", "")], "options\n"),
            ("initrd /a\ninitrd /b\n", &[("initrd", "/a"), ("initrd", "/b")], "initrd /a\ninitrd /b\n"),
            ("title a\ntitle b\n", &[("title", "a"), ("title", "b")], "title a\ntitle b\n"),
            ("title Ünïcödé ✓\n", &[("title", "Ünïcödé ✓")], "title Ünïcödé ✓\n"),
            ("\n\n", &[], "\n\n"),
        ];
        for &(input, pairs, out) in cases {
            let entry = BlsEntry::parse(input).expect("table input is valid");
            assert_eq!(entry.pairs().collect::<Vec<_>>(), pairs, "{input:?}");
            assert_eq!(entry.to_string(), out, "{input:?}");
            assert_eq!(BlsEntry::parse(out).as_ref(), Ok(&entry), "{input:?} reparsed");
        }
    }

    #[test]
    fn parse_errors() {
        let cases: &[(&str, Error)] = &[
            ("title a\n  linux /x\n", Error::MissingKey { line: 2, text: "  linux /x".into() }),
            ("\tvalue\n", Error::MissingKey { line: 1, text: "\tvalue".into() }),
            ("Title x\n", Error::InvalidKey { line: 1, key: "Title".into() }),
            ("title x\n=x\n", Error::InvalidKey { line: 2, key: "=x".into() }),
            ("machine_id x\n", Error::InvalidKey { line: 1, key: "machine_id".into() }),
            ("tïtle x\n", Error::InvalidKey { line: 1, key: "tïtle".into() }),
            ("title a\nlinux /x\0y\n", Error::NulByte { line: 2 }),
            ("# \0\n", Error::NulByte { line: 1 }),
        ];
        for (input, want) in cases {
            assert_eq!(BlsEntry::parse(input).as_ref(), Err(want), "{input:?}");
        }
        let big = "#".repeat(MAX_ENTRY_SIZE + 1);
        assert_eq!(BlsEntry::parse(&big), Err(Error::TooLarge { size: MAX_ENTRY_SIZE + 1, max: MAX_ENTRY_SIZE }));
        assert_eq!(
            BlsEntry::from_bytes(big.as_bytes()),
            Err(Error::TooLarge { size: MAX_ENTRY_SIZE + 1, max: MAX_ENTRY_SIZE })
        );
        assert!(BlsEntry::parse(&"#".repeat(MAX_ENTRY_SIZE)).is_ok());
        assert_eq!(BlsEntry::from_bytes(b"title \xff\n"), Err(Error::NotUtf8 { offset: 6 }));
        let bad_options = BlsEntry::parse("title t\noptions a\noptions b=\"c\n").expect("valid entry");
        assert!(matches!(bad_options.options(), Err(Error::Options { line: 3, .. })));
    }

    #[test]
    fn options_lines_combine_in_order() {
        let entry = BlsEntry::parse("options a=1 b\ntitle t\noptions a=1 c=\"x y\"\n").expect("valid");
        assert_eq!(entry.options().expect("valid").to_string(), "a=1 b a=1 c=\"x y\"");
        assert!(BlsEntry::new().options().expect("no options").is_empty());
    }

    #[test]
    fn setters_keep_unknown_lines_in_place() {
        let start = "# managed by hand\ntitle Old\nx-vendor keep me\nlinux /vmlinuz\n# tail\n";
        // (operation, result)
        type Op = fn(&mut BlsEntry) -> Result<(), Error>;
        let cases: &[(Op, &str)] = &[
            (|e| e.set("title", "New"), "# managed by hand\ntitle New\nx-vendor keep me\nlinux /vmlinuz\n# tail\n"),
            (
                |e| e.set("version", "3"),
                "# managed by hand\ntitle Old\nversion 3\nx-vendor keep me\nlinux /vmlinuz\n# tail\n",
            ),
            (
                |e| e.set_options(&Kargs::parse("quiet").expect("valid")),
                "# managed by hand\ntitle Old\noptions quiet\nx-vendor keep me\nlinux /vmlinuz\n# tail\n",
            ),
            (
                |e| e.set_all("initrd", &["/a", "/b"]),
                "# managed by hand\ntitle Old\nx-vendor keep me\nlinux /vmlinuz\ninitrd /a\ninitrd /b\n# tail\n",
            ),
            (
                |e| e.set("sort-key", "photon"),
                "# managed by hand\ntitle Old\nx-vendor keep me\nlinux /vmlinuz\n# tail\nsort-key photon\n",
            ),
            (|e| e.set_all("title", &[]), "# managed by hand\nx-vendor keep me\nlinux /vmlinuz\n# tail\n"),
            (|e| e.set_options(&Kargs::new()), start),
        ];
        for (op, want) in cases {
            let mut entry = BlsEntry::parse(start).expect("valid");
            op(&mut entry).expect("valid edit");
            assert_eq!(entry.to_string(), *want);
        }
        // A repeated key collapses into the first position.
        let mut entry = BlsEntry::parse("initrd /a\nlinux /k\ninitrd /b\n").expect("valid");
        entry.set("initrd", "/c").expect("valid");
        assert_eq!(entry.to_string(), "initrd /c\nlinux /k\n");
        // Into an empty entry, canonical keys land in OSTree's order whatever the call order.
        let mut entry = BlsEntry::new();
        for (k, v) in [("initrd", "/i"), ("linux", "/l"), ("title", "t"), ("options", "o"), ("version", "1")] {
            entry.set(k, v).expect("valid");
        }
        assert_eq!(entry.to_string(), "title t\nversion 1\noptions o\nlinux /l\ninitrd /i\n");
    }

    #[test]
    fn setter_errors() {
        let mut entry = BlsEntry::new();
        let cases: &[(&str, &str, &str)] = &[
            ("Title", "x", "key"),
            ("", "x", "key"),
            ("title", "a\nlinux /evil", "value"),
            ("title", "a\0", "value"),
            ("title", " padded", "value"),
            ("title", "padded\t", "value"),
        ];
        for &(key, value, what) in cases {
            let got = entry.set(key, value);
            let ok = match what {
                "key" => matches!(got, Err(Error::InvalidKeyName { .. })),
                _ => matches!(got, Err(Error::InvalidValue { .. })),
            };
            assert!(ok, "set({key:?}, {value:?}) gave {got:?}");
        }
        assert_eq!(entry, BlsEntry::new());
    }

    proptest::proptest! {
        #[test]
        fn printed_entries_reparse(text in "([a-z-]{1,6}( [ -~]{0,8})?|#[ -~]{0,8}|)(\n([a-z-]{1,6}( [ -~]{0,8})?|#[ -~]{0,8}|)){0,6}\n?") {
            if let Ok(entry) = BlsEntry::parse(&text) {
                proptest::prop_assert_eq!(BlsEntry::parse(&entry.to_string()), Ok(entry));
            }
        }

        #[test]
        fn whitespace_soup_reparses(text in "[a #\t\r\n]{0,16}") {
            if let Ok(entry) = BlsEntry::parse(&text) {
                proptest::prop_assert_eq!(BlsEntry::parse(&entry.to_string()), Ok(entry));
            }
        }

        #[test]
        fn any_text_parses_or_errors(text in proptest::prelude::any::<String>()) {
            if let Ok(entry) = BlsEntry::parse(&text) {
                proptest::prop_assert_eq!(BlsEntry::parse(&entry.to_string()), Ok(entry.clone()));
                let _ = entry.options();
            }
        }
    }
}
