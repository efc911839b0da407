//! `Summary::from_bytes`: no panic, an accepted summary is in normal form, and
//! `Summary::new`, `get` and the metadata getters agree with the parsed refs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_format::Summary;

fuzz_target!(|data: &[u8]| {
    let Ok(summary) = Summary::from_bytes(data) else { return };
    let bytes = summary.to_bytes();
    assert_eq!(bytes, data, "re-encoding an accepted summary changed its bytes");
    assert_eq!(Summary::from_bytes(&bytes).as_ref(), Ok(&summary), "re-parse differs");
    assert_eq!(Summary::new(summary.refs().to_vec(), summary.metadata.clone()).as_ref(), Ok(&summary));
    for r in summary.refs() {
        assert_eq!(summary.get(&r.name), Some(r));
        let _ = (r.timestamp(), r.version());
    }
    let _ = (summary.last_modified(), summary.expires());
});
