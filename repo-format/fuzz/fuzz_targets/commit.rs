//! `Commit::from_bytes`: no panic, and an accepted commit is in normal form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_format::{Checksum, Commit};

fuzz_target!(|data: &[u8]| {
    let Ok(commit) = Commit::from_bytes(data) else { return };
    let bytes = commit.to_bytes();
    assert_eq!(bytes, data, "re-encoding an accepted commit changed its bytes");
    assert_eq!(Commit::from_bytes(&bytes).as_ref(), Ok(&commit), "re-parse differs");
    assert_eq!(commit.checksum(), Checksum::of(data));
    let _ = commit.version();
});
