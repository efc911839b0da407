//! Directory metadata `(uuua(ayay))`, and the same layout as the
//! `user.ostreemeta` xattr of bare-user repositories (SPEC.md §2.3, §4.2).

use gvariant::{Marker, Structure, gv};

use gvariant::aligned_bytes::AsAligned;

use crate::gv::{aligned, check_normal_form};
use crate::mode::{validate_dir_mode, validate_file_mode};
use crate::{Checksum, Error, Xattrs};

/// Owner, mode and xattrs of a directory (`.dirmeta`), or of a content
/// object in a bare-user repository (`user.ostreemeta`). uid, gid and mode
/// are big-endian on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DirMeta {
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Type and permission bits (`S_IFDIR | 0o755` for a directory).
    pub mode: u32,
    /// Extended attributes.
    pub xattrs: Xattrs,
}

/// The `user.ostreemeta` value: the same layout as [`DirMeta`], with a file mode.
pub type FileMeta = DirMeta;

impl DirMeta {
    /// Serializes to normal form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let wire = self.xattrs.wire();
        let x: Vec<(&[u8], &[u8])> = wire.iter().map(|(n, v)| (n.as_slice(), *v)).collect();
        gv!("(uuua(ayay))").serialize_to_vec(&(self.uid.to_be(), self.gid.to_be(), self.mode.to_be(), &x))
    }

    /// The object id of this dirmeta.
    pub fn checksum(&self) -> Checksum {
        Checksum::of(&self.to_bytes())
    }

    fn decode(object: &'static str, data: &[u8]) -> Result<Self, Error> {
        let buf = aligned(object, data)?;
        let (uid, gid, mode, x) = gv!("(uuua(ayay))").cast(buf.as_aligned()).to_tuple();
        let xattrs = Xattrs::from_wire(object, x.iter().map(|i| i.to_tuple()))?;
        let meta = Self { uid: u32::from_be(*uid), gid: u32::from_be(*gid), mode: u32::from_be(*mode), xattrs };
        check_normal_form(object, data, &meta.to_bytes())?;
        Ok(meta)
    }

    /// Parses and validates a `.dirmeta` object: must be a directory mode.
    pub fn from_bytes(data: &[u8]) -> Result<Self, Error> {
        let meta = Self::decode("dirmeta", data)?;
        validate_dir_mode(meta.mode).map_err(|reason| Error::Mode { object: "dirmeta", mode: meta.mode, reason })?;
        Ok(meta)
    }

    /// Parses a `user.ostreemeta` xattr value: must be a file or symlink mode.
    pub fn file_meta_from_bytes(data: &[u8]) -> Result<Self, Error> {
        let meta = Self::decode("user.ostreemeta", data)?;
        validate_file_mode(meta.mode).map_err(|reason| Error::Mode {
            object: "user.ostreemeta",
            mode: meta.mode,
            reason,
        })?;
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirmeta_rules() {
        let root = DirMeta { uid: 0, gid: 0, mode: 0o40755, xattrs: Xattrs::new() };
        assert_eq!(DirMeta::from_bytes(&root.to_bytes()), Ok(root.clone()));
        let file = DirMeta { mode: 0o100644, ..root.clone() };
        assert!(matches!(DirMeta::from_bytes(&file.to_bytes()), Err(Error::Mode { .. })));
        assert_eq!(DirMeta::file_meta_from_bytes(&file.to_bytes()), Ok(file));
        let weird = DirMeta { mode: 0o240755, ..root };
        assert!(DirMeta::from_bytes(&weird.to_bytes()).is_err());
    }
}
