//! `SizeIndex::from_bytes`: no panic, and an accepted index re-encodes to
//! the same bytes (one encoding per index, so its SHA-256 names it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_format::sizes::SizeIndex;

fuzz_target!(|data: &[u8]| {
    let Ok(idx) = SizeIndex::from_bytes(data) else { return };
    assert_eq!(idx.to_bytes(), data, "re-encoding an accepted index changed its bytes");
    assert_eq!(SizeIndex::from_bytes(&idx.to_bytes()).as_ref(), Ok(&idx));
});
