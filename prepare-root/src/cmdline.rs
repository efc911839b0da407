//! The kernel command line: splitting it as the kernel does, and finding
//! the one `ostree=` argument. Pure: bytes in, bytes out.
//!
//! The kernel (`lib/cmdline.c`, `next_arg`) splits on unquoted whitespace;
//! a double quote anywhere toggles quoting, and one pair of quotes around
//! the whole argument (`"ostree=/a b"`) or around the value
//! (`ostree="/a b"`) is removed. Parameter names match whole: `xostree=`
//! and `ostree.x=` are other parameters.

use thiserror::Error;

/// The kernel parameter that names the deployment's bootlink.
pub const OSTREE_KARG: &[u8] = b"ostree";

/// Why the command line names no usable deployment.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CmdlineError {
    /// No `ostree=` argument at all: this boot is not an OSTree boot.
    #[error("no ostree= argument on the kernel command line")]
    Missing,
    /// More than one `ostree=` argument: which one the kernel or systemd
    /// would honour differs, so we pick neither.
    #[error("the kernel command line has {count} ostree= arguments ({first:?} and {second:?}); exactly one is allowed")]
    Duplicate {
        /// How many `ostree` arguments there are.
        count: usize,
        /// The first value (lossily decoded, for the message).
        first: String,
        /// The second value.
        second: String,
    },
    /// `ostree` without `=VALUE`, or with an empty value.
    #[error("the ostree= argument on the kernel command line has no value")]
    Empty,
}

/// One kernel argument, quotes removed: `name` and, after the first `=`,
/// `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg<'a> {
    /// The parameter name (before the first `=`).
    pub name: &'a [u8],
    /// The value after the first `=`, or `None` for a bare flag.
    pub value: Option<&'a [u8]>,
}

/// Splits `cmdline` (the bytes of `/proc/cmdline`) into arguments the way
/// the kernel does.
pub fn parse_args(cmdline: &[u8]) -> Vec<Arg<'_>> {
    let mut args = Vec::new();
    let mut rest = cmdline;
    loop {
        rest = trim_start(rest);
        if rest.is_empty() {
            return args;
        }
        let end = arg_end(rest);
        args.push(split_arg(&rest[..end]));
        rest = &rest[end..];
    }
}

/// Finds the value of the single `ostree=` argument.
pub fn ostree_target(cmdline: &[u8]) -> Result<&[u8], CmdlineError> {
    let values: Vec<Option<&[u8]>> =
        parse_args(cmdline).into_iter().filter(|a| a.name == OSTREE_KARG).map(|a| a.value).collect();
    match values.as_slice() {
        [] => Err(CmdlineError::Missing),
        [Some(v)] if !v.is_empty() => Ok(v),
        [_] => Err(CmdlineError::Empty),
        [first, second, ..] => {
            Err(CmdlineError::Duplicate { count: values.len(), first: lossy(*first), second: lossy(*second) })
        }
    }
}

fn lossy(v: Option<&[u8]>) -> String {
    String::from_utf8_lossy(v.unwrap_or_default()).into_owned()
}

fn trim_start(s: &[u8]) -> &[u8] {
    let skip = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &s[skip..]
}

/// Index of the first unquoted whitespace (or the end).
fn arg_end(s: &[u8]) -> usize {
    let mut in_quote = false;
    for (i, &b) in s.iter().enumerate() {
        if b == b'"' {
            in_quote = !in_quote;
        } else if b.is_ascii_whitespace() && !in_quote {
            return i;
        }
    }
    s.len()
}

/// Removes the quotes the kernel removes and splits at the first `=`.
fn split_arg(raw: &[u8]) -> Arg<'_> {
    // `"name=value"`: the kernel drops the leading quote and one trailing one.
    let (raw, whole_quoted) = match raw.strip_prefix(b"\"") {
        Some(inner) => (inner.strip_suffix(b"\"").unwrap_or(inner), true),
        None => (raw, false),
    };
    let Some(eq) = raw.iter().position(|&b| b == b'=') else {
        return Arg { name: raw, value: None };
    };
    let (name, value) = (&raw[..eq], &raw[eq + 1..]);
    // `name="value"`: the quotes around the value go too (not when the
    // whole argument was quoted: its closing quote is already gone).
    let value = match value.strip_prefix(b"\"") {
        Some(inner) if !whole_quoted => inner.strip_suffix(b"\"").unwrap_or(inner),
        Some(inner) => inner,
        None => value,
    };
    Arg { name, value: Some(value) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOTLINK: &[u8] = b"/ostree/boot.1/photon/abc/0";

    #[test]
    fn finds_the_target() {
        let cases: &[(&str, &[u8])] = &[
            ("ostree=/ostree/boot.1/photon/abc/0", BOOTLINK),
            ("root=LABEL=root ro ostree=/ostree/boot.1/photon/abc/0 quiet", BOOTLINK),
            ("  ostree=/ostree/boot.1/photon/abc/0\n", BOOTLINK),
            ("quiet\tostree=/ostree/boot.1/photon/abc/0\t", BOOTLINK),
            ("ostree=\"/ostree/boot.1/photon/abc/0\"", BOOTLINK),
            ("\"ostree=/ostree/boot.1/photon/abc/0\"", BOOTLINK),
            ("ostree=\"/ostree/boot 1/x\" quiet", b"/ostree/boot 1/x"),
            ("\"ostree=/ostree/boot 1/x\" quiet", b"/ostree/boot 1/x"),
            ("xostree=/bad ostree.x=/bad ostree_x=/bad ostree=/good", b"/good"),
            ("ostree=/a=b", b"/a=b"),
            ("init=/bin/sh foo=\"ostree=/not-me\" ostree=/me", b"/me"),
        ];
        for (cmdline, want) in cases {
            assert_eq!(ostree_target(cmdline.as_bytes()), Ok(*want), "{cmdline:?}");
        }
    }

    #[test]
    fn refuses_none_empty_and_two() {
        let cases: &[(&str, CmdlineError)] = &[
            ("", CmdlineError::Missing),
            ("root=/dev/vda1 quiet", CmdlineError::Missing),
            ("xostree=/a OSTREE=/b ostreex=/c", CmdlineError::Missing),
            ("\"foo ostree=/a\"", CmdlineError::Missing),
            ("ostree", CmdlineError::Empty),
            ("ostree=", CmdlineError::Empty),
            ("ostree=\"\"", CmdlineError::Empty),
            (
                "ostree=/a quiet ostree=/b",
                CmdlineError::Duplicate { count: 2, first: "/a".into(), second: "/b".into() },
            ),
            (
                "ostree=/a ostree=/a ostree",
                CmdlineError::Duplicate { count: 3, first: "/a".into(), second: "/a".into() },
            ),
        ];
        for (cmdline, want) in cases {
            assert_eq!(ostree_target(cmdline.as_bytes()).as_ref(), Err(want), "{cmdline:?}");
        }
    }

    #[test]
    fn splits_like_the_kernel() {
        let args = parse_args(b"a b=c \"d=e f\" g=\"h i\" \"j\" k=");
        let got: Vec<(&[u8], Option<&[u8]>)> = args.iter().map(|a| (a.name, a.value)).collect();
        let want: Vec<(&[u8], Option<&[u8]>)> = vec![
            (b"a", None),
            (b"b", Some(b"c")),
            (b"d", Some(b"e f")),
            (b"g", Some(b"h i")),
            (b"j", None),
            (b"k", Some(b"")),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn unterminated_quote_runs_to_the_end() {
        let args = parse_args(b"ostree=\"/a b");
        assert_eq!(args, vec![Arg { name: b"ostree", value: Some(b"/a b") }]);
    }
}
