//! The host side: an OSTree-compatible sysroot (`/ostree/deploy`,
//! `/ostree/boot.N`, `/boot/loader.N`) and the deployments in it.

pub mod etcmerge;
