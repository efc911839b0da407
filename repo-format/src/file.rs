//! Content objects: the file header and its three encodings (SPEC.md §2.2).
//!
//! * the *stream* form `BE u32 len, 4 NUL, (uuuusa(ayay))`, followed by the
//!   content: its SHA-256 is the object id;
//! * the *archive* form (`.filez`) `BE u32 len, 4 NUL, (tuuuusa(ayay))`,
//!   followed by a raw-deflate stream of the content;
//! * bare modes store the content as a file and the header in the inode
//!   (or in `user.ostreemeta`, see [`crate::DirMeta`]).

use gvariant::{Marker, Structure, gv};

use gvariant::aligned_bytes::AsAligned;

use crate::gv::{MAX_METADATA_SIZE, aligned, c_str, check_normal_form};
use crate::mode::{is_reg, is_symlink, validate_file_mode};
use crate::{Checksum, Error, Hasher, Xattrs};

/// Longest symlink target Linux accepts (`PATH_MAX` less the NUL).
pub const MAX_SYMLINK_TARGET: usize = 4095;
/// Bytes before the header variant: a big-endian u32 length and 4 NULs.
pub const HEADER_PREFIX_LEN: usize = 8;

/// The metadata half of a content object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileHeader {
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// `S_IFREG` or `S_IFLNK` plus permission bits.
    pub mode: u32,
    /// Symlink target; empty for regular files.
    pub symlink_target: String,
    /// Extended attributes.
    pub xattrs: Xattrs,
}

impl FileHeader {
    /// True for a symlink.
    pub fn is_symlink(&self) -> bool {
        is_symlink(self.mode)
    }

    /// Checks the rules every content header must meet: a regular file or
    /// symlink mode, a target only (and always) on symlinks.
    pub fn validate(&self) -> Result<(), Error> {
        let object = "file header";
        validate_file_mode(self.mode).map_err(|reason| Error::Mode { object, mode: self.mode, reason })?;
        let field = |reason| Error::Field { object, field: "symlink target", reason };
        if is_reg(self.mode) && !self.symlink_target.is_empty() {
            return Err(field("regular file with a symlink target"));
        }
        if is_symlink(self.mode) {
            if self.symlink_target.is_empty() {
                return Err(field("symlink with an empty target"));
            }
            if self.symlink_target.contains('\0') {
                return Err(field("contains a NUL byte"));
            }
            if self.symlink_target.len() > MAX_SYMLINK_TARGET {
                return Err(field("longer than PATH_MAX"));
            }
        }
        Ok(())
    }

    fn wire_xattrs(&self) -> Vec<(Vec<u8>, &[u8])> {
        self.xattrs.wire()
    }

    /// The `(uuuusa(ayay))` variant (rdev is always 0).
    pub fn to_variant(&self) -> Vec<u8> {
        let wire = self.wire_xattrs();
        let x: Vec<(&[u8], &[u8])> = wire.iter().map(|(n, v)| (n.as_slice(), *v)).collect();
        gv!("(uuuusa(ayay))").serialize_to_vec(&(
            self.uid.to_be(),
            self.gid.to_be(),
            self.mode.to_be(),
            0u32,
            c_str(&self.symlink_target),
            &x,
        ))
    }

    /// The hashed prefix of the stream form: length, padding, variant.
    pub fn to_stream_prefix(&self) -> Vec<u8> {
        prefixed(self.to_variant())
    }

    /// The header of a `.filez` object whose uncompressed content is `size` bytes.
    pub fn to_archive_header(&self, size: u64) -> Vec<u8> {
        let wire = self.wire_xattrs();
        let x: Vec<(&[u8], &[u8])> = wire.iter().map(|(n, v)| (n.as_slice(), *v)).collect();
        prefixed(gv!("(tuuuusa(ayay))").serialize_to_vec(&(
            size.to_be(),
            self.uid.to_be(),
            self.gid.to_be(),
            self.mode.to_be(),
            0u32,
            c_str(&self.symlink_target),
            &x,
        )))
    }
}

fn prefixed(variant: Vec<u8>) -> Vec<u8> {
    let len = u32::try_from(variant.len()).expect("a header built from bounded fields fits in u32");
    let mut out = Vec::with_capacity(HEADER_PREFIX_LEN + variant.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&variant);
    out
}

/// Reads the 8-byte prefix: returns the variant length. `data` needs at
/// least [`HEADER_PREFIX_LEN`] bytes.
pub fn header_len(data: &[u8]) -> Result<usize, Error> {
    let Some((len, pad)) = data.get(..HEADER_PREFIX_LEN).map(|p| p.split_at(4)) else {
        return Err(Error::HeaderLength { declared: HEADER_PREFIX_LEN as u64, available: data.len() });
    };
    if pad != [0; 4] {
        return Err(Error::Field { object: "file header", field: "padding", reason: "not zero" });
    }
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len > MAX_METADATA_SIZE {
        return Err(Error::TooLarge { object: "file header", len, max: MAX_METADATA_SIZE });
    }
    Ok(len)
}

fn split_header(data: &[u8]) -> Result<(&[u8], usize), Error> {
    let len = header_len(data)?;
    let available = data.len() - HEADER_PREFIX_LEN;
    if len > available {
        return Err(Error::HeaderLength { declared: len as u64, available });
    }
    Ok((&data[HEADER_PREFIX_LEN..HEADER_PREFIX_LEN + len], HEADER_PREFIX_LEN + len))
}

/// Parses the header at the start of a `.filez` object. Returns the header,
/// the declared uncompressed size and the number of bytes consumed (the
/// compressed stream follows).
pub fn parse_archive_header(data: &[u8]) -> Result<(FileHeader, u64, usize), Error> {
    let object = "archive file header";
    let (variant, consumed) = split_header(data)?;
    let buf = aligned(object, variant)?;
    let (size, uid, gid, mode, rdev, target, x) = gv!("(tuuuusa(ayay))").cast(buf.as_aligned()).to_tuple();
    if *rdev != 0 {
        return Err(Error::Field { object, field: "rdev", reason: "device nodes are not content" });
    }
    let header = FileHeader {
        uid: u32::from_be(*uid),
        gid: u32::from_be(*gid),
        mode: u32::from_be(*mode),
        symlink_target: target.to_str().to_owned(),
        xattrs: Xattrs::from_wire(object, x.iter().map(|i| i.to_tuple()))?,
    };
    let size = u64::from_be(*size);
    check_normal_form(object, variant, &header.to_archive_header(size)[HEADER_PREFIX_LEN..])?;
    header.validate()?;
    if header.is_symlink() && size != 0 {
        return Err(Error::Field { object, field: "size", reason: "symlinks have no content" });
    }
    Ok((header, size, consumed))
}

/// Parses the header at the start of the stream form; returns the header and
/// the number of bytes consumed (the content follows).
pub fn parse_stream_header(data: &[u8]) -> Result<(FileHeader, usize), Error> {
    let object = "file header";
    let (variant, consumed) = split_header(data)?;
    let buf = aligned(object, variant)?;
    let (uid, gid, mode, rdev, target, x) = gv!("(uuuusa(ayay))").cast(buf.as_aligned()).to_tuple();
    if *rdev != 0 {
        return Err(Error::Field { object, field: "rdev", reason: "device nodes are not content" });
    }
    let header = FileHeader {
        uid: u32::from_be(*uid),
        gid: u32::from_be(*gid),
        mode: u32::from_be(*mode),
        symlink_target: target.to_str().to_owned(),
        xattrs: Xattrs::from_wire(object, x.iter().map(|i| i.to_tuple()))?,
    };
    check_normal_form(object, variant, &header.to_variant())?;
    header.validate()?;
    Ok((header, consumed))
}

/// Hashes a content object: header prefix first, then content bytes.
#[derive(Clone)]
pub struct ContentHasher(Hasher);

impl ContentHasher {
    /// Starts with the header.
    pub fn new(header: &FileHeader) -> Self {
        let mut h = Hasher::new();
        h.update(&header.to_stream_prefix());
        Self(h)
    }
    /// Feeds content bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    /// The object id.
    pub fn finish(self) -> Checksum {
        self.0.finish()
    }
}

impl std::io::Write for ContentHasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The object id of a content object held in memory.
pub fn content_checksum(header: &FileHeader, content: &[u8]) -> Checksum {
    let mut h = ContentHasher::new(header);
    h.update(content);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(mode: u32) -> FileHeader {
        FileHeader { uid: 0, gid: 0, mode, symlink_target: String::new(), xattrs: Xattrs::new() }
    }

    // Object ids measured with the real `ostree` 2022.7 (research note
    // ostree-formats.md §2, "Verified examples").
    #[test]
    fn known_ids() {
        assert!(content_checksum(&reg(0o100644), b"a=1\n").to_hex().starts_with("7a28d48d"));
        let link = FileHeader { mode: 0o120777, symlink_target: "hello".into(), ..reg(0) };
        assert!(content_checksum(&link, b"").to_hex().starts_with("73baaba0"));
    }

    #[test]
    fn archive_header_round_trip_and_rules() {
        let h = reg(0o104755);
        let bytes = h.to_archive_header(42);
        assert_eq!(parse_archive_header(&bytes), Ok((h.clone(), 42, bytes.len())));
        let (back, used) = parse_stream_header(&h.to_stream_prefix()).expect("valid stream header");
        assert_eq!((back, used), (h, h_len(&reg(0o104755))));
        let bad = [
            reg(0o020644),
            reg(0o100644 | 0o200000),
            FileHeader { symlink_target: "x".into(), ..reg(0o100644) },
            reg(0o120777),
        ];
        for b in bad {
            assert!(parse_archive_header(&b.to_archive_header(0)).is_err(), "{b:?}");
        }
        let link = FileHeader { mode: 0o120777, symlink_target: "t".into(), ..reg(0) };
        assert!(parse_archive_header(&link.to_archive_header(5)).is_err(), "symlink with content");
    }

    fn h_len(h: &FileHeader) -> usize {
        h.to_stream_prefix().len()
    }

    #[test]
    fn prefix_lengths_are_checked() {
        let bytes = reg(0o100644).to_archive_header(1);
        assert!(matches!(parse_archive_header(&bytes[..bytes.len() - 1]), Err(Error::HeaderLength { .. })));
        assert!(parse_archive_header(&bytes[..4]).is_err());
        let mut padded = bytes.clone();
        padded[5] = 1;
        assert!(parse_archive_header(&padded).is_err());
        let mut huge = bytes;
        huge[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(parse_archive_header(&huge), Err(Error::TooLarge { .. })));
    }
}
