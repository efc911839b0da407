//! `DirMeta::from_bytes`: no panic, and an accepted dirmeta is in normal form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_format::DirMeta;

fuzz_target!(|data: &[u8]| {
    let Ok(meta) = DirMeta::from_bytes(data) else { return };
    let bytes = meta.to_bytes();
    assert_eq!(bytes, data, "re-encoding an accepted dirmeta changed its bytes");
    assert_eq!(DirMeta::from_bytes(&bytes).as_ref(), Ok(&meta), "re-parse differs");
    assert!(repo_format::mode::is_dir(meta.mode));
});
