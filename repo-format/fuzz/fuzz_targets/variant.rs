//! The run-time GVariant codec (`repo_format::variant`) on one serialized `v`
//! (value bytes, NUL, type string): no panic, and its normal form is a fixed
//! point (encoding what decodes gives bytes that decode and encode the same).
#![no_main]

use libfuzzer_sys::fuzz_target;
use repo_format::variant::{Type, decode, encode, is_normal_form, to_text};

fuzz_target!(|data: &[u8]| {
    let Some(value) = decode(&Type::Variant, data) else { return };
    let _ = to_text(&value);
    let normal = encode(&Type::Variant, &value).expect("a decoded value encodes");
    assert_eq!(is_normal_form(b"v", data), normal == data, "is_normal_form disagrees with decode+encode");
    let again = decode(&Type::Variant, &normal).expect("the normal form decodes");
    assert_eq!(encode(&Type::Variant, &again).as_ref(), Some(&normal), "normal form is not a fixed point");
    assert!(is_normal_form(b"v", &normal));
});
