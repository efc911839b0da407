//! The decode error shared by every object parser.
//!
//! Variants carry the evidence (which object kind, which field, which name or
//! number) so a caller can print one line that says what was wrong; the caller
//! adds the object id it was reading.

use crate::checksum::ChecksumError;
use crate::name::NameError;

/// Why bytes could not be read as an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Re-encoding the decoded value did not give back the input: framing
    /// offsets, padding, lengths or trailing bytes are not what a correct
    /// writer produces.
    #[error("{object} is malformed: not in GVariant normal form (first bad byte at offset {offset} of {len})")]
    NotNormalForm {
        /// Object kind.
        object: &'static str,
        /// First byte at which the input and its normal form differ.
        offset: usize,
        /// Input length.
        len: usize,
    },
    /// A binary checksum field is not 32 bytes.
    #[error("{object} field {field}")]
    Checksum {
        /// Object kind.
        object: &'static str,
        /// Field name.
        field: &'static str,
        /// The underlying problem.
        source: ChecksumError,
    },
    /// An entry name is not a safe single path component.
    #[error("{object} entry {name:?}")]
    Name {
        /// Object kind.
        object: &'static str,
        /// The offending name (lossy UTF-8).
        name: String,
        /// The rule it broke.
        source: NameError,
    },
    /// Tree entries are not in strictly ascending byte order (or repeat).
    #[error("{object} entries are not sorted or repeat at {name:?}")]
    Unsorted {
        /// Object kind.
        object: &'static str,
        /// First entry out of order.
        name: String,
    },
    /// A name appears both as a file and as a directory.
    #[error("{object} names {name:?} both as a file and as a directory")]
    FileAndDir {
        /// Object kind.
        object: &'static str,
        /// The name.
        name: String,
    },
    /// A mode is not allowed for this kind of object.
    #[error("{object} has invalid mode {mode:#o}: {reason}")]
    Mode {
        /// Object kind.
        object: &'static str,
        /// The mode as stored.
        mode: u32,
        /// The rule it broke.
        reason: &'static str,
    },
    /// An extended attribute entry is malformed.
    #[error("{object} has a bad extended attribute {name:?}: {reason}")]
    Xattr {
        /// Object kind.
        object: &'static str,
        /// The attribute name (lossy UTF-8).
        name: String,
        /// The rule it broke.
        reason: &'static str,
    },
    /// A file header's length prefix does not fit the data.
    #[error("file header declares {declared} bytes but {available} are available")]
    HeaderLength {
        /// Declared header length.
        declared: u64,
        /// Bytes present after the prefix.
        available: usize,
    },
    /// A field breaks a rule that is not about framing.
    #[error("{object} field {field} is invalid: {reason}")]
    Field {
        /// Object kind.
        object: &'static str,
        /// Field name.
        field: &'static str,
        /// The rule it broke.
        reason: &'static str,
    },
    /// A metadata value does not have the type its key requires.
    #[error("metadata key {key:?} has type {found:?}, expected {expected:?}")]
    MetadataType {
        /// The key.
        key: String,
        /// Its required GVariant type.
        expected: &'static str,
        /// The type found.
        found: String,
    },
    /// A metadata dictionary repeats a key.
    #[error("metadata key {key:?} appears more than once")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// A metadata dictionary has an empty key (OSTree refuses these).
    #[error("metadata has an empty key")]
    EmptyKey,
    /// A metadata value is not a normal-form value of its type.
    #[error("metadata key {key:?}: value is not a well-formed {type_str:?}")]
    MetadataValue {
        /// The key.
        key: String,
        /// The value's type string.
        type_str: String,
    },
    /// A variant holds something that is not a single complete GVariant type.
    #[error("metadata key {key:?} holds an invalid GVariant type string {found:?}")]
    TypeString {
        /// The key.
        key: String,
        /// The bad type string (lossy UTF-8).
        found: String,
    },
    /// The input is larger than any object of this kind may be.
    #[error("{object} is {len} bytes, more than the {max}-byte limit")]
    TooLarge {
        /// Object kind.
        object: &'static str,
        /// Input length.
        len: usize,
        /// The limit.
        max: usize,
    },
}
