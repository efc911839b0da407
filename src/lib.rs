//! photon-upgrade: an image-based, immutable OS updater that speaks
//! OSTree's formats.
//!
//! The binary (`src/main.rs`) is a shim around [`cli::run`]. Domain code
//! lives in one folder per concept: [`repo`] (the object store), and the
//! syscall helpers every module uses are in [`fsutil`].

pub mod cli;
pub mod fsutil;
pub mod health;
pub mod progress;
pub mod pull;
pub mod repo;
pub mod sign;
pub mod sysroot;
