//! SHA-256 object ids (SPEC.md §2 "Checksums").

use std::fmt;
use std::str::FromStr;

use sha2::Digest;

/// Length of an object id in bytes.
pub const CHECKSUM_LEN: usize = 32;
/// Length of an object id written as lowercase hex.
pub const CHECKSUM_HEX_LEN: usize = 64;

/// A SHA-256 object id: always 32 bytes, printed as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Checksum([u8; CHECKSUM_LEN]);

/// Why a checksum could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    /// A binary checksum field did not hold exactly 32 bytes.
    #[error("checksum must be 32 bytes, found {0}")]
    BadLength(usize),
    /// A hex checksum was not 64 lowercase hex digits.
    #[error("'{0}' is not a 64-digit lowercase hex checksum")]
    BadHex(String),
}

impl Checksum {
    /// Wraps 32 raw bytes.
    pub const fn from_array(bytes: [u8; CHECKSUM_LEN]) -> Self {
        Self(bytes)
    }

    /// Reads a binary checksum field (GVariant `ay`), which must be exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ChecksumError> {
        <[u8; CHECKSUM_LEN]>::try_from(bytes).map(Self).map_err(|_| ChecksumError::BadLength(bytes.len()))
    }

    /// Parses 64 lowercase hex digits (OSTree never writes upper case, and
    /// object file names are case-sensitive, so upper case is refused).
    pub fn from_hex(s: &str) -> Result<Self, ChecksumError> {
        if s.len() != CHECKSUM_HEX_LEN || !s.bytes().all(is_lower_hex) {
            return Err(ChecksumError::BadHex(truncate_for_error(s)));
        }
        let mut out = [0u8; CHECKSUM_LEN];
        hex::decode_to_slice(s, &mut out).map_err(|_| ChecksumError::BadHex(truncate_for_error(s)))?;
        Ok(Self(out))
    }

    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; CHECKSUM_LEN] {
        &self.0
    }

    /// The 64-digit lowercase hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// SHA-256 of `data` in one call.
    pub fn of(data: &[u8]) -> Self {
        let mut h = Hasher::new();
        h.update(data);
        h.finish()
    }
}

/// True for `0-9a-f`.
pub fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

fn truncate_for_error(s: &str) -> String {
    s.chars().take(80).collect()
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({self})")
    }
}

impl FromStr for Checksum {
    type Err = ChecksumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

/// Incremental SHA-256 that yields a [`Checksum`]; also an [`std::io::Write`]
/// sink so data can be hashed while it is written elsewhere.
#[derive(Clone, Default)]
pub struct Hasher(sha2::Sha256);

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self(sha2::Sha256::new())
    }
    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    /// Consumes the hasher.
    pub fn finish(self) -> Checksum {
        Checksum(self.0.finalize().into())
    }
}

impl std::io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Checksum {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejections() {
        let c = Checksum::of(b"a=1\n");
        let hex = c.to_hex();
        assert_eq!(Checksum::from_hex(&hex), Ok(c));
        assert_eq!(format!("{c}"), hex);
        for bad in ["", "00", &hex.to_uppercase(), &format!("{hex}0"), &hex.replace('a', "g")] {
            if bad == hex {
                continue;
            }
            assert!(Checksum::from_hex(bad).is_err(), "accepted {bad:?}");
        }
        assert_eq!(Checksum::from_bytes(&[0; 31]), Err(ChecksumError::BadLength(31)));
    }
}
