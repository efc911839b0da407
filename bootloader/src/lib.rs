//! Boot entries as pure functions: BLS type-1 entry files, kernel
//! command lines, and systemd's boot-counting file names. No I/O: callers
//! read and write files through directory handles.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
