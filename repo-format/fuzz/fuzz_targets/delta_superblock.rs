//! `delta::SignedSuperblock` and `delta::Superblock`: no panic, and an
//! accepted input re-encodes to exactly its bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_format::delta::{SignedSuperblock, Superblock};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = SignedSuperblock::from_bytes(data) {
        assert_eq!(s.to_bytes(), data, "re-encoding an accepted superblock file changed its bytes");
    }
    if let Ok(sb) = Superblock::from_bytes(data) {
        assert_eq!(sb.to_bytes(), data, "re-encoding an accepted superblock body changed its bytes");
    }
});
