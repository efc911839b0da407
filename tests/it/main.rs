//! Integration tests: drive the built binary, with the real `ostree` CLI as
//! the oracle (STYLE.md "Tests"). One test binary, one module per area.

mod server;
mod util;

mod boot;
mod delta;
mod examples;
mod health;
mod hostile;
mod linkcut;
mod pull;
mod repo_cli;
mod repo_crash;
mod repo_fsck;
mod repo_interop;
mod sysroot;
mod sysroot_crash;
