//! `file::parse_stream_header` (the hashed form of a content object): no
//! panic, and the consumed prefix of an accepted input is exactly the
//! header's normal form, which is what the object id covers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_format::Checksum;
use repo_format::file::{content_checksum, parse_stream_header};

fuzz_target!(|data: &[u8]| {
    let Ok((header, used)) = parse_stream_header(data) else { return };
    let bytes = header.to_stream_prefix();
    assert_eq!(bytes, data[..used], "re-encoding an accepted stream header changed its bytes");
    assert_eq!(parse_stream_header(&bytes), Ok((header.clone(), used)), "re-parse differs");
    assert_eq!(content_checksum(&header, &data[used..]), Checksum::of(data));
});
