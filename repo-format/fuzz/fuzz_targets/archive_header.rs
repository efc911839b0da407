//! `file::parse_archive_header` (`.filez`): no panic, and the consumed prefix
//! of an accepted input is exactly the header's normal form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_format::file::parse_archive_header;

fuzz_target!(|data: &[u8]| {
    let Ok((header, size, used)) = parse_archive_header(data) else { return };
    let bytes = header.to_archive_header(size);
    assert_eq!(bytes, data[..used], "re-encoding an accepted archive header changed its bytes");
    assert_eq!(parse_archive_header(&bytes), Ok((header.clone(), size, used)), "re-parse differs");
    assert_eq!(header.validate(), Ok(()));
});
