//! Glue around the `gvariant` crate.
//!
//! `gvariant` follows GLib: it reads any byte string, substituting default
//! values where framing is broken. That is fine for GLib's trusted callers but
//! not for us, so every parser here decodes with `gvariant`, re-encodes the
//! decoded value, and refuses the input unless the two are byte-identical
//! ([`check_normal_form`]). That one comparison catches every bad offset,
//! length, padding byte and trailing byte without hand-written framing code.

use gvariant::aligned_bytes::AlignedBuf;

use crate::Error;

/// Largest metadata object we read. OSTree 2022.7 used 10 MiB and later
/// releases raised it to 128 MiB for very large directories
/// (`OSTREE_MAX_METADATA_SIZE`); we accept what current OSTree accepts.
pub const MAX_METADATA_SIZE: usize = 128 * 1024 * 1024;

/// Copies `data` into an 8-aligned buffer, as `gvariant` requires.
pub(crate) fn aligned(object: &'static str, data: &[u8]) -> Result<AlignedBuf, Error> {
    if data.len() > MAX_METADATA_SIZE {
        return Err(Error::TooLarge { object, len: data.len(), max: MAX_METADATA_SIZE });
    }
    Ok(data.to_vec().into())
}

/// Refuses `input` unless it equals `normal`, its re-encoding.
pub(crate) fn check_normal_form(object: &'static str, input: &[u8], normal: &[u8]) -> Result<(), Error> {
    if input == normal {
        return Ok(());
    }
    let offset = input.iter().zip(normal).position(|(a, b)| a != b).unwrap_or(input.len().min(normal.len()));
    Err(Error::NotNormalForm { object, offset, len: input.len() })
}

/// The part of `s` before its first NUL: how C code (and GLib) reads a
/// string. Serializers pass every `s` field through this, so a string that
/// holds a NUL (which a caller should have refused) can never make the
/// `gvariant` serializer fail; parsers refuse such strings anyway.
pub(crate) fn c_str(s: &str) -> &str {
    s.split('\0').next().unwrap_or("")
}

/// True if `t` is exactly one complete GVariant type string.
pub fn is_valid_type_string(t: &[u8]) -> bool {
    matches!(parse_one_type(t, 0), Some(end) if end == t.len())
}

/// Deepest container nesting accepted in a type string (GLib's
/// `G_VARIANT_MAX_RECURSION_DEPTH` is 128).
const MAX_TYPE_DEPTH: usize = 128;

fn parse_one_type(t: &[u8], depth: usize) -> Option<usize> {
    if depth > MAX_TYPE_DEPTH {
        return None;
    }
    match *t.first()? {
        b'b' | b'y' | b'n' | b'q' | b'i' | b'u' | b'x' | b't' | b'h' | b'd' | b's' | b'o' | b'g' | b'v' => Some(1),
        b'a' | b'm' => parse_one_type(&t[1..], depth + 1).map(|n| n + 1),
        b'(' => {
            let mut pos = 1;
            loop {
                if *t.get(pos)? == b')' {
                    return Some(pos + 1);
                }
                pos += parse_one_type(&t[pos..], depth + 1)?;
            }
        }
        b'{' => {
            // A dict entry: one basic key type, one value type.
            if !matches!(
                *t.get(1)?,
                b'b' | b'y' | b'n' | b'q' | b'i' | b'u' | b'x' | b't' | b'h' | b'd' | b's' | b'o' | b'g'
            ) {
                return None;
            }
            let value_len = parse_one_type(&t[2..], depth + 1)?;
            (*t.get(2 + value_len)? == b'}').then_some(3 + value_len)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_strings() {
        for good in ["s", "as", "a{sv}", "(a{sv}aya(say)sstayay)", "()", "maay", "a{s(ii)}"] {
            assert!(is_valid_type_string(good.as_bytes()), "{good}");
        }
        for bad in ["", "ss", "a", "(", "(s", "{sv}x", "{vs}", "z", "a{s}", "(i))"] {
            assert!(!is_valid_type_string(bad.as_bytes()), "{bad}");
        }
        let deep = format!("{}s", "a".repeat(200));
        assert!(!is_valid_type_string(deep.as_bytes()));
    }
}
