//! `DirMeta::file_meta_from_bytes` (the bare-user `user.ostreemeta` xattr):
//! no panic, and an accepted value is in normal form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_format::DirMeta;

fuzz_target!(|data: &[u8]| {
    let Ok(meta) = DirMeta::file_meta_from_bytes(data) else { return };
    let bytes = meta.to_bytes();
    assert_eq!(bytes, data, "re-encoding an accepted user.ostreemeta changed its bytes");
    assert_eq!(DirMeta::file_meta_from_bytes(&bytes).as_ref(), Ok(&meta), "re-parse differs");
    assert!(repo_format::mode::validate_file_mode(meta.mode).is_ok());
});
