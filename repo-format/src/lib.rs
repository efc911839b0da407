//! OSTree-compatible object formats, as pure functions over byte slices.
//!
//! Every type here has a `from_bytes` parser that checks lengths, framing,
//! checksums and names and returns a typed [`Error`], and a `to_bytes`
//! writer that produces exactly the bytes OSTree would (GVariant normal
//! form), so object ids agree with the real `ostree`. No filesystem, network
//! or clock: the main crate does I/O and hands bytes in.
//!
//! ```
//! use repo_format::{DirMeta, Xattrs};
//! let root = DirMeta { uid: 0, gid: 0, mode: 0o40755, xattrs: Xattrs::new() };
//! let bytes = root.to_bytes();
//! assert_eq!(DirMeta::from_bytes(&bytes).unwrap(), root);
//! // The id of an empty root-owned 0755 directory, as `ostree` computes it.
//! assert_eq!(root.checksum().to_hex(), "446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488");
//! ```
//!
//! The formats are described in this crate's `SPEC.md`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod checksum;
pub mod commit;
pub mod delta;
pub mod dirmeta;
pub mod dirtree;
mod error;
pub mod file;
mod gv;
pub mod metadata;
pub mod mode;
pub mod name;
pub mod objtype;
pub mod sign;
pub mod sizes;
pub mod summary;
pub mod variant;
pub mod xattrs;

pub use checksum::{Checksum, ChecksumError, Hasher};
pub use commit::Commit;
pub use dirmeta::{DirMeta, FileMeta};
pub use dirtree::{DirTree, TreeDir, TreeFile};
pub use error::Error;
pub use file::{ContentHasher, FileHeader};
pub use gv::{MAX_METADATA_SIZE, is_valid_type_string};
pub use metadata::{Metadata, Value};
pub use name::{NameError, ValidName};
pub use objtype::ObjectType;
pub use summary::{Summary, SummaryRef};
pub use xattrs::Xattrs;
