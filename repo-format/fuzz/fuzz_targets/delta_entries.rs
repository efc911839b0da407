//! Delta part entry heads (`delta::FileEntry`, `delta::MetaEntry`) read from
//! a stream: no panic, no allocation driven by a declared length, and an
//! accepted head re-encodes to the bytes it was read from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_format::delta::{FileEntry, MetaEntry};

fuzz_target!(|data: &[u8]| {
    let mut r = data;
    if let Ok(Some(e)) = FileEntry::read(&mut r) {
        let used = data.len() - r.len();
        assert_eq!(e.encode(), data[..used], "file entry head re-encodes differently");
    }
    let mut r = data;
    if let Ok(Some(e)) = MetaEntry::read(&mut r) {
        let used = data.len() - r.len();
        assert_eq!(e.encode(), data[..used], "metadata entry head re-encodes differently");
    }
});
