//! `Metadata::from_bytes` (`a{sv}`): no panic in the parser, the typed getters,
//! `Value::decode` or `Debug`; an accepted dictionary is in normal form; and a
//! value a getter accepts re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_format::{Metadata, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(md) = Metadata::from_bytes(data) else { return };
    let bytes = md.to_bytes();
    assert_eq!(bytes, data, "re-encoding accepted metadata changed its bytes");
    assert_eq!(Metadata::from_bytes(&bytes).as_ref(), Ok(&md), "re-parse differs");
    for (key, value) in &md {
        let _ = value.decode();
        let same = |v: Value| assert_eq!(&v, value, "typed value of {key:?} re-encodes differently");
        if let Ok(Some(s)) = md.get_str(key) {
            same(Value::new_str(&s));
        }
        if let Ok(Some(s)) = md.get_strs(key) {
            same(Value::new_strs(&s));
        }
        if let Ok(Some(t)) = md.get_u64_be(key) {
            same(Value::new_u64(t.to_be()));
        }
        if let Ok(Some(b)) = md.get_bool(key) {
            same(Value::new_bool(b));
        }
        if let Ok(Some(b)) = md.get_bytes(key) {
            same(Value::new_bytes(&b));
        }
        if let Ok(Some(b)) = md.get_byte_arrays(key) {
            same(Value::new_byte_arrays(&b));
        }
        if let Some(d) = value.as_dict() {
            same(Value::new_dict(&d));
        }
    }
    let _ = format!("{md:?}");
});
