//! Name rules for tree entries, refs and remotes (SPEC.md §5 "Names").
//!
//! Every name that comes out of an object passes through here before it is
//! used as a path component, so a hostile tree cannot name `..`, `/` or
//! anything else that could escape a checkout.

use std::fmt;

/// Why a name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("name is empty")]
    Empty,
    /// The name is `.` or `..`.
    #[error("name is '.' or '..'")]
    Dot,
    /// The name contains `/`.
    #[error("name contains '/'")]
    Slash,
    /// The name contains a NUL byte.
    #[error("name contains a NUL byte")]
    Nul,
    /// The name is not valid UTF-8.
    #[error("name is not valid UTF-8")]
    NotUtf8,
    /// A ref or remote name has a character that is not a letter, digit,
    /// `_`, `.` or `-`, or a component starts with `.` or `-`.
    #[error("ref components must be letters, digits, '_', '.' or '-', not starting with '.' or '-'")]
    BadRefChar,
    /// The name is longer than the filesystem allows for one component.
    #[error("name is longer than {MAX_NAME_LEN} bytes")]
    TooLong,
}

/// Longest file name component Linux accepts (`NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;

/// Checks one tree entry name (a single path component), as OSTree's
/// `ot_util_filename_validate` does, plus the `NAME_MAX` limit.
pub fn validate_filename(name: &[u8]) -> Result<&str, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name == b"." || name == b".." {
        return Err(NameError::Dot);
    }
    if name.contains(&b'/') {
        return Err(NameError::Slash);
    }
    if name.contains(&0) {
        return Err(NameError::Nul);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    std::str::from_utf8(name).map_err(|_| NameError::NotUtf8)
}

/// GLib's `\w` (PCRE with Unicode properties): letters, digits, underscore.
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn validate_ref_fragment(part: &str) -> Result<(), NameError> {
    let mut chars = part.chars();
    let first = chars.next().ok_or(NameError::Empty)?;
    if !is_word(first) {
        return Err(NameError::BadRefChar);
    }
    if chars.all(|c| is_word(c) || matches!(c, '-' | '.')) { Ok(()) } else { Err(NameError::BadRefChar) }
}

/// Checks a ref name such as `os/x86_64/stable` (OSTree's `OSTREE_REF_REGEXP`:
/// `/`-separated components, each `[\w\d][-._\w\d]*`, where GLib's `\w`
/// includes non-ASCII letters, so `café/x` is a valid ref).
pub fn validate_ref(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    name.split('/').try_for_each(validate_ref_fragment)
}

/// Checks a remote name (one ref component).
pub fn validate_remote_name(name: &str) -> Result<(), NameError> {
    validate_ref_fragment(name)
}

/// A tree entry name that has passed [`validate_filename`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValidName(String);

impl ValidName {
    /// Validates and wraps a name.
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        validate_filename(name.as_bytes())?;
        Ok(Self(name))
    }
    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ValidName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ValidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ValidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames() {
        let long = "x".repeat(256);
        let cases: &[(&[u8], Result<(), NameError>)] = &[
            (b"usr", Ok(())),
            (b".hidden", Ok(())),
            (b"...", Ok(())),
            (b"with space", Ok(())),
            ("\u{e9}t\u{e9}".as_bytes(), Ok(())),
            (b"", Err(NameError::Empty)),
            (b".", Err(NameError::Dot)),
            (b"..", Err(NameError::Dot)),
            (b"a/b", Err(NameError::Slash)),
            (b"/", Err(NameError::Slash)),
            (b"a\0b", Err(NameError::Nul)),
            (b"\xff", Err(NameError::NotUtf8)),
            (long.as_bytes(), Err(NameError::TooLong)),
        ];
        for (name, want) in cases {
            assert_eq!(validate_filename(name).map(|_| ()), *want, "{name:?}");
        }
    }

    #[test]
    fn refs() {
        let cases: &[(&str, bool)] = &[
            ("os/x86_64/stable", true),
            ("a", true),
            ("_x.y-z", true),
            ("ostree/0/1/0", true),
            ("", false),
            ("/a", false),
            ("a/", false),
            ("a//b", false),
            ("-a", false),
            (".a", false),
            ("a b", false),
            ("a:b", false),
            ("a/../b", false),
            ("caf\u{e9}/x", true),
            ("a\u{2028}", false),
        ];
        for (name, ok) in cases {
            assert_eq!(validate_ref(name).is_ok(), *ok, "{name:?}");
        }
        assert!(validate_remote_name("origin").is_ok());
        assert!(validate_remote_name("a/b").is_err());
    }
}
