//! Integration tests: the built `photon-prepare-root` against a fake
//! sysroot on a tmpfs, each run in its own private mount namespace
//! (`unshare --mount`), so nothing it mounts outlives the test. Needs root
//! and util-linux's `unshare`; `busybox` also a static busybox.

mod busybox;
mod hostile;
mod prepare;
mod util;
