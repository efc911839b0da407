//! `/proc/self/mountinfo`: which paths are mount points. The parser is
//! pure; [`read`] is the one place that reads the file.
//!
//! Format (`proc(5)`): `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS
//! [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS`, with space, tab, newline
//! and backslash in paths written as `\040`, `\011`, `\012`, `\134`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Where the kernel lists this process's mounts.
pub const PROC_SELF_MOUNTINFO: &str = "/proc/self/mountinfo";

/// A line of mountinfo that is not in the kernel's format.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("line {line}: {reason}")]
pub struct MountinfoError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// One mount, with the fields this crate and its tests need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount id (unique while the mount exists).
    pub id: u64,
    /// The directory of the filesystem that is mounted (`/` for a whole
    /// filesystem, a subdirectory for a bind mount of one).
    pub root: PathBuf,
    /// Where it is mounted, relative to this process's root.
    pub mount_point: PathBuf,
    /// Per-mount options (`ro` or `rw` first, then `nosuid`, ...).
    pub options: String,
}

impl Mount {
    /// Whether this mount is read-only (the per-mount flag, not the
    /// filesystem's).
    pub fn is_read_only(&self) -> bool {
        self.options.split(',').any(|o| o == "ro")
    }
}

/// Parses the text of a mountinfo file.
pub fn parse(text: &[u8]) -> Result<Vec<Mount>, MountinfoError> {
    let mut mounts = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = |reason| MountinfoError { line: i + 1, reason };
        let mut fields = line.split(|&b| b == b' ');
        let id = fields.next().and_then(parse_u64).ok_or_else(|| bad("no mount id"))?;
        let _parent = fields.next().ok_or_else(|| bad("no parent id"))?;
        let _dev = fields.next().ok_or_else(|| bad("no device number"))?;
        let root = fields.next().ok_or_else(|| bad("no root"))?;
        let mount_point = fields.next().ok_or_else(|| bad("no mount point"))?;
        let options = fields.next().ok_or_else(|| bad("no mount options"))?;
        mounts.push(Mount {
            id,
            root: unescape(root),
            mount_point: unescape(mount_point),
            options: String::from_utf8_lossy(options).into_owned(),
        });
    }
    Ok(mounts)
}

/// Reads and parses this process's mountinfo.
pub fn read() -> Result<Vec<Mount>, ReadError> {
    let text = std::fs::read(PROC_SELF_MOUNTINFO).map_err(ReadError::Io)?;
    parse(&text).map_err(ReadError::Parse)
}

/// Failure to read [`PROC_SELF_MOUNTINFO`].
#[derive(Debug, Error)]
pub enum ReadError {
    /// The file could not be read (is `/proc` mounted?).
    #[error("cannot read {PROC_SELF_MOUNTINFO}")]
    Io(#[source] std::io::Error),
    /// The file is not in the kernel's format.
    #[error("cannot parse {PROC_SELF_MOUNTINFO}")]
    Parse(#[source] MountinfoError),
}

/// The first mount whose mount point is `dir` or lies beneath it.
pub fn first_at_or_below<'a>(mounts: &'a [Mount], dir: &Path) -> Option<&'a Mount> {
    mounts.iter().find(|m| m.mount_point.starts_with(dir))
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Undoes the kernel's `\ooo` octal escapes.
fn unescape(s: &[u8]) -> PathBuf {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && let Some(byte) = s.get(i + 1..i + 4).and_then(octal_byte)
        {
            out.push(byte);
            i += 4;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    PathBuf::from(OsString::from_vec(out))
}

fn octal_byte(digits: &[u8]) -> Option<u8> {
    digits.iter().try_fold(0u8, |acc, &d| match d {
        b'0'..=b'7' => acc.checked_mul(8)?.checked_add(d - b'0'),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
90 27 0:50 / /var/tmp/with\\040space rw,relatime shared:7 - tmpfs tmpfs rw
91 90 0:50 /sysroot/ostree/deploy/os/deploy/c.0/usr /var/tmp/with\\040space/usr ro,nosuid,relatime - tmpfs tmpfs rw
92 27 0:51 / /odd\\134name\\011tab rw - tmpfs tmpfs rw
";

    #[test]
    fn parses_and_unescapes() {
        let mounts = parse(SAMPLE).expect("the sample is well-formed");
        let points: Vec<&Path> = mounts.iter().map(|m| m.mount_point.as_path()).collect();
        assert_eq!(
            points,
            [
                Path::new("/proc"),
                Path::new("/"),
                Path::new("/var/tmp/with space"),
                Path::new("/var/tmp/with space/usr"),
                Path::new("/odd\\name\ttab"),
            ]
        );
        assert_eq!(mounts[3].root, Path::new("/sysroot/ostree/deploy/os/deploy/c.0/usr"));
        assert_eq!(mounts[3].id, 91);
        assert!(mounts[3].is_read_only());
        assert!(!mounts[2].is_read_only());
    }

    #[test]
    fn finds_mounts_at_or_below() {
        let mounts = parse(SAMPLE).expect("the sample is well-formed");
        let cases: &[(&str, Option<u64>)] = &[
            ("/var/tmp/with space", Some(90)),
            ("/var/tmp/with space/usr", Some(91)),
            ("/var/tmp", Some(90)),
            ("/var/tmp/with", None),
            ("/var/tmp/with space/etc", None),
            ("/proc/self", None),
        ];
        for (dir, want) in cases {
            assert_eq!(first_at_or_below(&mounts, Path::new(dir)).map(|m| m.id), *want, "{dir}");
        }
    }

    #[test]
    fn refuses_short_lines() {
        let cases: &[(&[u8], MountinfoError)] = &[
            (b"x 1 0:1 / / rw\n", MountinfoError { line: 1, reason: "no mount id" }),
            (b"1 1 0:1 / / rw\n2 1 0:1 /\n", MountinfoError { line: 2, reason: "no mount point" }),
            (b"1 1 0:1 / /\n", MountinfoError { line: 1, reason: "no mount options" }),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).as_ref(), Err(want));
        }
    }

    #[test]
    fn keeps_bad_escapes_verbatim() {
        assert_eq!(unescape(b"a\\9zz\\04"), PathBuf::from("a\\9zz\\04"));
        assert_eq!(unescape(b"\\777"), PathBuf::from("\\777"));
    }
}
