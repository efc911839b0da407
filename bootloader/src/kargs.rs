//! Kernel command lines: the `options` value of a BLS entry.
//!
//! A command line is a list of arguments separated by whitespace. Each argument is `key` or
//! `key=value`. Double quotes group text that contains spaces, either around the value
//! (`dyndbg="file x +p"`) or around the whole argument (`"dyndbg=file x +p"`); this is how
//! Linux's `next_arg()` (`lib/cmdline.c`) splits `/proc/cmdline`, and [`Karg::key`] and
//! [`Karg::value`] return what the kernel would see.
//!
//! [`Kargs`] keeps every argument exactly as written, in order, so that
//! `Kargs::parse(s)?.to_string()` reproduces `s` up to the whitespace between arguments (one
//! space). This matters because OSTree compares command lines as strings when it decides whether
//! a boot entry changed (`deployment_bootconfigs_equal` in `ostree-sysroot-deploy.c`).
//!
//! Differences from what the kernel accepts, on purpose:
//! - an unterminated quote is an error. The kernel lets it run to the end of the line, so
//!   appending an argument after it would silently turn that argument into part of a value;
//! - an argument whose key is empty (`=x`, `""`) is an error;
//! - control characters inside an argument are an error (a newline would split the BLS line).
//!
//! Keys compare byte for byte, as OSTree does. (The kernel itself treats `-` and `_` in
//! parameter names as equal; OSTree, and so this module, does not.)

use std::fmt;
use std::str::FromStr;

/// The key of the argument that points the initramfs at a deployment: `ostree=/ostree/boot.N/…`.
pub const OSTREE_KEY: &str = "ostree";

/// Errors from parsing or editing a kernel command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A `"` opens a quote that is never closed.
    #[error("unterminated double quote at byte {offset} in kernel argument {arg:?}")]
    UnbalancedQuote {
        /// Byte offset of the argument in the parsed text.
        offset: usize,
        /// The argument, from its start to the end of the text.
        arg: String,
    },
    /// An argument has no key, like `=value` or `""`.
    #[error("kernel argument {arg:?} at byte {offset} has an empty key")]
    EmptyKey {
        /// Byte offset of the argument in the parsed text.
        offset: usize,
        /// The argument as written.
        arg: String,
    },
    /// An argument contains a control character (other than whitespace between arguments).
    #[error("kernel argument at byte {offset} contains control character {byte:#04x}")]
    ControlChar {
        /// Byte offset of the character in the parsed text.
        offset: usize,
        /// The character.
        byte: u8,
    },
    /// A single argument was expected, and the text holds none or several.
    #[error("expected exactly one kernel argument, found {count} in {input:?}")]
    NotOneArg {
        /// The text that was parsed.
        input: String,
        /// How many arguments it holds.
        count: usize,
    },
    /// A key given to [`Karg::new`] cannot be written as a kernel argument.
    #[error("invalid kernel argument key {key:?}: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A value given to [`Karg::new`] cannot be written as a kernel argument.
    #[error("invalid value {value:?} for kernel argument {key:?}: {reason}")]
    InvalidValue {
        /// The key the value was for.
        key: String,
        /// The value.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The value of `ostree=` is not `/ostree/boot.N/OSNAME/BOOTCSUM/BOOTSERIAL`.
    #[error("invalid ostree= boot link {value:?}: {reason}")]
    InvalidBootlink {
        /// The value of the `ostree=` argument.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// One kernel argument, kept exactly as written.
///
/// The key and value are slices of the written text, with the quotes the kernel strips removed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Karg {
    raw: String,
    key: (usize, usize),
    value: Option<(usize, usize)>,
}

/// The kernel's `isspace()` for ASCII: what separates arguments.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn is_control(c: u8) -> bool {
    c < 0x20 || c == 0x7f
}

impl Karg {
    /// Parses exactly one argument, such as `quiet`, `root=LABEL=root` or `dyndbg="file x +p"`.
    /// Surrounding whitespace is ignored.
    pub fn parse(input: &str) -> Result<Karg, Error> {
        let mut args = split(input)?;
        match (args.pop(), args.is_empty()) {
            (Some(arg), true) => Ok(arg),
            (arg, _) => {
                Err(Error::NotOneArg { input: input.to_owned(), count: args.len() + usize::from(arg.is_some()) })
            }
        }
    }

    /// Builds `key` or `key=value`, quoting the value when it contains whitespace.
    ///
    /// The key must be non-empty and free of whitespace, `=`, `"` and control characters; the
    /// value must be free of `"` and control characters (the kernel has no way to escape a quote).
    pub fn new(key: &str, value: Option<&str>) -> Result<Karg, Error> {
        let bad_key = |reason| Error::InvalidKey { key: key.to_owned(), reason };
        if key.is_empty() {
            return Err(bad_key("empty"));
        }
        if key.bytes().any(|c| is_space(c) || c == b'=' || c == b'"' || is_control(c)) {
            return Err(bad_key("contains whitespace, '=', '\"' or a control character"));
        }
        let raw = match value {
            None => key.to_owned(),
            Some(v) => {
                if v.bytes().any(|c| c == b'"' || is_control(c)) {
                    return Err(Error::InvalidValue {
                        key: key.to_owned(),
                        value: v.to_owned(),
                        reason: "contains '\"' or a control character",
                    });
                }
                if v.bytes().any(is_space) { format!("{key}=\"{v}\"") } else { format!("{key}={v}") }
            }
        };
        Karg::parse(&raw)
    }

    /// The key, as the kernel sees it (without a leading quote).
    pub fn key(&self) -> &str {
        &self.raw[self.key.0..self.key.1]
    }

    /// The value, without the quotes the kernel strips; `None` for a bare `key`, `Some("")` for
    /// `key=`.
    pub fn value(&self) -> Option<&str> {
        self.value.map(|(s, e)| &self.raw[s..e])
    }

    /// The argument exactly as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether two arguments mean the same to the kernel (`a="b"` and `a=b` do).
    pub fn same_as(&self, other: &Karg) -> bool {
        self.key() == other.key() && self.value() == other.value()
    }
}

impl fmt::Display for Karg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl FromStr for Karg {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Karg::parse(s)
    }
}

/// Splits a command line into arguments, following the kernel's `next_arg()`.
fn split(input: &str) -> Result<Vec<Karg>, Error> {
    let bytes = input.as_bytes();
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        while pos < bytes.len() && is_space(bytes[pos]) {
            pos += 1;
        }
        if pos == bytes.len() {
            return Ok(out);
        }
        let start = pos;
        let quoted = bytes[pos] == b'"';
        let body = if quoted { pos + 1 } else { pos };
        let mut in_quote = quoted;
        // Offset of the first '=' after the first byte of the body, as in next_arg(): an '=' at
        // the very start does not count (and such a key is refused below).
        let mut equals = None;
        let mut i = body;
        while i < bytes.len() {
            let c = bytes[i];
            if is_space(c) && !in_quote {
                break;
            }
            if is_control(c) {
                return Err(Error::ControlChar { offset: i, byte: c });
            }
            if equals.is_none() && c == b'=' && i > body {
                equals = Some(i);
            }
            if c == b'"' {
                in_quote = !in_quote;
            }
            i += 1;
        }
        let end = i;
        let arg = &input[start..end];
        if in_quote {
            return Err(Error::UnbalancedQuote { offset: start, arg: arg.to_owned() });
        }
        // The kernel drops the closing quote of a quoted argument or a quoted value.
        let ends_in_quote = end > body && bytes[end - 1] == b'"';
        let (key, value) = match equals {
            None => ((body, if quoted && ends_in_quote { end - 1 } else { end }), None),
            Some(eq) => {
                let mut vstart = eq + 1;
                let mut vend = end;
                if vstart < end && bytes[vstart] == b'"' {
                    vstart += 1;
                    if ends_in_quote && vend > vstart {
                        vend -= 1;
                    }
                } else if quoted && ends_in_quote {
                    vend -= 1;
                }
                ((body, eq), Some((vstart, vend.max(vstart))))
            }
        };
        if key.0 >= key.1 || bytes[body] == b'=' {
            return Err(Error::EmptyKey { offset: start, arg: arg.to_owned() });
        }
        let shift = |(s, e): (usize, usize)| (s - start, e - start);
        out.push(Karg { raw: arg.to_owned(), key: shift(key), value: value.map(shift) });
        pos = end;
    }
}

/// A kernel command line: ordered arguments, kept as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Kargs {
    args: Vec<Karg>,
}

impl Kargs {
    /// An empty command line.
    pub fn new() -> Kargs {
        Kargs::default()
    }

    /// Parses a command line such as `root=LABEL=root quiet ostree=/ostree/boot.1/os/…/0`.
    pub fn parse(input: &str) -> Result<Kargs, Error> {
        Ok(Kargs { args: split(input)? })
    }

    /// The arguments in order.
    pub fn iter(&self) -> impl Iterator<Item = &Karg> {
        self.args.iter()
    }

    /// How many arguments there are.
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// Whether there are no arguments.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    /// The value of the last argument with this key (the one the kernel and most programs act on),
    /// as OSTree's `ostree_kernel_args_get_last_value` returns it: `Some("")` for a bare `key` (and
    /// for `key=`), `None` when the key is absent. [`Kargs::get_karg`] tells the two apart.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.get_karg(key).map(|a| a.value().unwrap_or(""))
    }

    /// The last argument with this key.
    pub fn get_karg(&self, key: &str) -> Option<&Karg> {
        self.args.iter().rev().find(|a| a.key() == key)
    }

    /// Whether an argument with this key is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get_karg(key).is_some()
    }

    /// Every argument with this key, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Karg> + 'a {
        self.args.iter().filter(move |a| a.key() == key)
    }

    /// Appends an argument unless one with the same key and value is already present. Returns
    /// whether it was added.
    pub fn append(&mut self, arg: &str) -> Result<bool, Error> {
        Ok(self.push(Karg::parse(arg)?))
    }

    /// Like [`Kargs::append`], with an argument that is already parsed.
    pub fn push(&mut self, arg: Karg) -> bool {
        if self.args.iter().any(|a| a.same_as(&arg)) {
            return false;
        }
        self.args.push(arg);
        true
    }

    /// Removes every argument with this key. Returns how many were removed.
    pub fn delete(&mut self, key: &str) -> usize {
        let before = self.args.len();
        self.args.retain(|a| a.key() != key);
        before - self.args.len()
    }

    /// Removes every argument with the same key and value as `arg` (`key` alone matches only a
    /// bare `key`, not `key=…`; `a=b` also matches `a="b"`). Returns how many were removed. Text
    /// that is not exactly one valid argument cannot be present, so it removes nothing.
    pub fn delete_exact(&mut self, arg: &str) -> usize {
        let Ok(arg) = Karg::parse(arg) else { return 0 };
        let before = self.args.len();
        self.args.retain(|a| !a.same_as(&arg));
        before - self.args.len()
    }

    /// Sets `key=value` (or bare `key`): the first argument with that key is replaced in place and
    /// the others are removed; without one, the argument is appended. This is how OSTree updates
    /// `ostree=` (`ostree_kernel_args_replace_take`).
    pub fn replace(&mut self, arg: &str) -> Result<(), Error> {
        self.replace_karg(Karg::parse(arg)?);
        Ok(())
    }

    /// Like [`Kargs::replace`], with an argument that is already parsed.
    pub fn replace_karg(&mut self, arg: Karg) {
        match self.args.iter().position(|a| a.key() == arg.key()) {
            None => self.args.push(arg),
            Some(first) => {
                let key = arg.key().to_owned();
                self.args[first] = arg;
                let mut i = 0;
                self.args.retain(|a| {
                    i += 1;
                    i - 1 <= first || a.key() != key
                });
            }
        }
    }

    /// The deployment this command line boots, from its last `ostree=` argument; `Ok(None)` when
    /// there is none.
    pub fn ostree_bootlink(&self) -> Result<Option<OstreeBootlink>, Error> {
        let Some(arg) = self.get_karg(OSTREE_KEY) else { return Ok(None) };
        let value = arg.value().ok_or_else(|| Error::InvalidBootlink {
            value: String::new(),
            reason: "the ostree argument has no value",
        })?;
        value.parse().map(Some)
    }

    /// Points `ostree=` at `link`, replacing any previous `ostree=` in place.
    pub fn set_ostree_bootlink(&mut self, link: &OstreeBootlink) {
        // A validated bootlink has no whitespace, quotes or control characters, so the argument
        // needs no quoting and its spans are known.
        let raw = format!("{OSTREE_KEY}={link}");
        let value = (OSTREE_KEY.len() + 1, raw.len());
        self.replace_karg(Karg { key: (0, OSTREE_KEY.len()), value: Some(value), raw });
    }
}

impl fmt::Display for Kargs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, arg) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(arg.as_str())?;
        }
        Ok(())
    }
}

impl FromStr for Kargs {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kargs::parse(s)
    }
}

/// Appends every argument as is, keeping duplicates (unlike [`Kargs::push`]): for joining command
/// lines whose repetitions must reach the kernel.
impl Extend<Karg> for Kargs {
    fn extend<I: IntoIterator<Item = Karg>>(&mut self, iter: I) {
        self.args.extend(iter);
    }
}

impl FromIterator<Karg> for Kargs {
    fn from_iter<I: IntoIterator<Item = Karg>>(iter: I) -> Self {
        Kargs { args: iter.into_iter().collect() }
    }
}

impl IntoIterator for Kargs {
    type Item = Karg;
    type IntoIter = std::vec::IntoIter<Karg>;
    fn into_iter(self) -> Self::IntoIter {
        self.args.into_iter()
    }
}

impl<'a> IntoIterator for &'a Kargs {
    type Item = &'a Karg;
    type IntoIter = std::slice::Iter<'a, Karg>;
    fn into_iter(self) -> Self::IntoIter {
        self.args.iter()
    }
}

/// Length of a boot checksum in hex: SHA-256 (`ostree-sysroot-deploy.c`, `get_kernel_from_tree`).
const BOOTCSUM_HEX_LEN: usize = 64;

/// The value of `ostree=`: `/ostree/boot.BOOTVERSION/OSNAME/BOOTCSUM/BOOTSERIAL`.
///
/// OSTree writes it in `install_deployment_kernel` (`ostree-sysroot-deploy.c`), and the
/// initramfs (`ostree-prepare-root`) follows that symlink chain to the deployment to mount. See
/// `research/ostree-formats.md` §6 for the layout.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OstreeBootlink {
    bootversion: u8,
    osname: String,
    bootcsum: String,
    bootserial: u32,
}

impl OstreeBootlink {
    /// Builds a boot link, checking each part: `bootversion` is 0 or 1, `osname` is a single
    /// path component, `bootcsum` is 64 lower-case hex digits.
    pub fn new(bootversion: u8, osname: &str, bootcsum: &str, bootserial: u32) -> Result<OstreeBootlink, Error> {
        let value = || format!("/ostree/boot.{bootversion}/{osname}/{bootcsum}/{bootserial}");
        let bad = |reason| Error::InvalidBootlink { value: value(), reason };
        if bootversion > 1 {
            return Err(bad("the boot version must be 0 or 1"));
        }
        if osname.is_empty()
            || osname == "."
            || osname == ".."
            || osname.bytes().any(|c| c == b'/' || c == b'"' || is_space(c) || is_control(c))
        {
            return Err(bad("the osname must be one path component without whitespace or quotes"));
        }
        if bootcsum.len() != BOOTCSUM_HEX_LEN || !bootcsum.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad("the boot checksum must be 64 lower-case hex digits"));
        }
        Ok(OstreeBootlink { bootversion, osname: osname.to_owned(), bootcsum: bootcsum.to_owned(), bootserial })
    }

    /// 0 or 1: which `/boot/loader.N` and `/ostree/boot.N` set this entry belongs to.
    pub fn bootversion(&self) -> u8 {
        self.bootversion
    }

    /// The stateroot (`/ostree/deploy/OSNAME`).
    pub fn osname(&self) -> &str {
        &self.osname
    }

    /// SHA-256 over kernel, initramfs and devicetree, in hex.
    pub fn bootcsum(&self) -> &str {
        &self.bootcsum
    }

    /// Counts deployments that share this boot checksum (`assign_bootserials`).
    pub fn bootserial(&self) -> u32 {
        self.bootserial
    }

    /// The `init=` value OSTree sets when the kernel has no initramfs:
    /// `/ostree/boot.N/OSNAME/BOOTCSUM/SERIAL/usr/lib/ostree/ostree-prepare-root`.
    pub fn prepare_root_init(&self) -> String {
        format!("{self}/usr/lib/ostree/ostree-prepare-root")
    }
}

impl fmt::Display for OstreeBootlink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/ostree/boot.{}/{}/{}/{}", self.bootversion, self.osname, self.bootcsum, self.bootserial)
    }
}

/// Parses plain decimal digits (no sign, no whitespace), as OSTree prints them with `%d`.
fn number<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl FromStr for OstreeBootlink {
    type Err = Error;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let bad = |reason| Error::InvalidBootlink { value: value.to_owned(), reason };
        let rest = value.strip_prefix("/ostree/boot.").ok_or_else(|| bad("does not start with /ostree/boot."))?;
        let parts: Vec<&str> = rest.split('/').collect();
        let [version, osname, bootcsum, serial] = parts[..] else {
            return Err(bad("expected /ostree/boot.N/OSNAME/BOOTCSUM/BOOTSERIAL"));
        };
        let bootversion: u8 = number(version).ok_or_else(|| bad("the boot version is not a number"))?;
        let bootserial: u32 = number(serial).ok_or_else(|| bad("the boot serial is not a number"))?;
        OstreeBootlink::new(bootversion, osname, bootcsum, bootserial).map_err(|e| match e {
            Error::InvalidBootlink { reason, .. } => bad(reason),
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CSUM: &str = "c7ed75e837255175cd215f2166ee652fdd4b3eb269cc13826d39a77e988530e4";

    /// (command line, [(key, value)], canonical to_string)
    type ParseCase = (&'static str, &'static [(&'static str, Option<&'static str>)], &'static str);
    const PARSE: &[ParseCase] = &[
        ("", &[], ""),
        ("   \t\n", &[], ""),
        ("quiet", &[("quiet", None)], "quiet"),
        ("root=LABEL=root quiet", &[("root", Some("LABEL=root")), ("quiet", None)], "root=LABEL=root quiet"),
        ("  a=1\t\tb  ", &[("a", Some("1")), ("b", None)], "a=1 b"),
        ("empty=", &[("empty", Some(""))], "empty="),
        ("q=\"\"", &[("q", Some(""))], "q=\"\""),
        ("dyndbg=\"file x +p\" b", &[("dyndbg", Some("file x +p")), ("b", None)], "dyndbg=\"file x +p\" b"),
        ("\"dyndbg=file x +p\"", &[("dyndbg", Some("file x +p"))], "\"dyndbg=file x +p\""),
        ("\"quoted key\"", &[("quoted key", None)], "\"quoted key\""),
        ("a=b\"c d\"e", &[("a", Some("b\"c d\"e"))], "a=b\"c d\"e"),
        ("console=ttyS0,115200n8", &[("console", Some("ttyS0,115200n8"))], "console=ttyS0,115200n8"),
        ("a=1 a=2 a", &[("a", Some("1")), ("a", Some("2")), ("a", None)], "a=1 a=2 a"),
        ("x==y", &[("x", Some("=y"))], "x==y"),
        ("π=3.14", &[("π", Some("3.14"))], "π=3.14"),
    ];

    #[test]
    fn parse_table() {
        for &(input, want, canonical) in PARSE {
            let kargs = Kargs::parse(input).expect("table input is valid");
            let got: Vec<_> = kargs.iter().map(|a| (a.key(), a.value())).collect();
            assert_eq!(got, want, "parse({input:?})");
            assert_eq!(kargs.to_string(), canonical, "to_string(parse({input:?}))");
            assert_eq!(Kargs::parse(canonical).expect("canonical form parses"), kargs, "{input:?}");
        }
    }

    #[test]
    fn parse_errors() {
        let cases: &[(&str, Error)] = &[
            ("a \"b c", Error::UnbalancedQuote { offset: 2, arg: "\"b c".into() }),
            ("a=\"x", Error::UnbalancedQuote { offset: 0, arg: "a=\"x".into() }),
            ("ok =x", Error::EmptyKey { offset: 3, arg: "=x".into() }),
            ("\"\"", Error::EmptyKey { offset: 0, arg: "\"\"".into() }),
            ("\"=x\"", Error::EmptyKey { offset: 0, arg: "\"=x\"".into() }),
            ("a\u{7f}", Error::ControlChar { offset: 1, byte: 0x7f }),
            ("a=\"x\ny\"", Error::ControlChar { offset: 4, byte: b'\n' }),
            ("a=\0", Error::ControlChar { offset: 2, byte: 0 }),
        ];
        for (input, want) in cases {
            assert_eq!(Kargs::parse(input).as_ref(), Err(want), "parse({input:?})");
        }
        assert_eq!(Karg::parse("a b"), Err(Error::NotOneArg { input: "a b".into(), count: 2 }));
        assert_eq!(Karg::parse(" "), Err(Error::NotOneArg { input: " ".into(), count: 0 }));
    }

    #[test]
    fn new_quotes_values_with_spaces() {
        let cases: &[(&str, Option<&str>, Result<&str, &str>)] = &[
            ("quiet", None, Ok("quiet")),
            ("root", Some("LABEL=root"), Ok("root=LABEL=root")),
            ("dyndbg", Some("file x +p"), Ok("dyndbg=\"file x +p\"")),
            ("e", Some(""), Ok("e=")),
            ("", None, Err("empty key")),
            ("a b", None, Err("space in key")),
            ("a=b", None, Err("= in key")),
            ("a", Some("say \"hi\""), Err("quote in value")),
            ("a", Some("x\ny"), Err("newline in value")),
        ];
        for &(key, value, want) in cases {
            let got = Karg::new(key, value);
            match want {
                Ok(text) => {
                    let arg = got.expect("valid key and value");
                    assert_eq!(arg.as_str(), text);
                    assert_eq!((arg.key(), arg.value()), (key, value));
                }
                Err(why) => assert!(got.is_err(), "{why}: {key:?} {value:?} gave {got:?}"),
            }
        }
    }

    #[test]
    fn editing() {
        // (start, operation, result)
        type Op = fn(&mut Kargs) -> Result<String, Error>;
        let cases: &[(&str, Op, &str, &str)] = &[
            ("a b", |k| k.append("c").map(|x| x.to_string()), "true", "a b c"),
            ("a b", |k| k.append("a").map(|x| x.to_string()), "false", "a b"),
            ("a=\"1\"", |k| k.append("a=1").map(|x| x.to_string()), "false", "a=\"1\""),
            ("a=1", |k| k.append("a=2").map(|x| x.to_string()), "true", "a=1 a=2"),
            ("a=1", |k| k.append("a").map(|x| x.to_string()), "true", "a=1 a"),
            ("a=1 b a=2 c", |k| Ok(k.delete("a").to_string()), "2", "b c"),
            ("a=1 b", |k| Ok(k.delete("z").to_string()), "0", "a=1 b"),
            ("a=1 a a=2 a=1", |k| Ok(k.delete_exact("a=1").to_string()), "2", "a a=2"),
            ("a=1 a a=2", |k| Ok(k.delete_exact("a").to_string()), "1", "a=1 a=2"),
            ("a=\"x\" b", |k| Ok(k.delete_exact("a=x").to_string()), "1", "b"),
            ("a b", |k| Ok(k.delete_exact("a b").to_string()), "0", "a b"),
            ("x a=1 y a=2 z", |k| k.replace("a=3").map(|()| String::new()), "", "x a=3 y z"),
            ("x y", |k| k.replace("a=3").map(|()| String::new()), "", "x y a=3"),
            ("a=1", |k| k.replace("a").map(|()| String::new()), "", "a"),
            ("a b", |k| k.append("c d").map(|x| x.to_string()), "error", "a b"),
        ];
        for &(start, op, ret, end) in cases {
            let mut kargs = Kargs::parse(start).expect("valid start");
            let got = op(&mut kargs).unwrap_or_else(|_| "error".to_owned());
            assert_eq!((got.as_str(), kargs.to_string().as_str()), (ret, end), "on {start:?}");
        }
    }

    #[test]
    fn get_last_wins() {
        let kargs = Kargs::parse("a=1 b a=2 a=\"x y\"").expect("valid");
        assert_eq!(kargs.get("a"), Some("x y"));
        assert_eq!(kargs.get("b"), Some(""));
        assert_eq!(kargs.get_karg("b").map(|a| (a.key(), a.value())), Some(("b", None)));
        assert_eq!(kargs.get("c"), None);
        assert!(kargs.contains_key("b") && !kargs.contains_key("c"));
        assert_eq!(kargs.get_all("a").count(), 3);
    }

    #[test]
    fn bootlink_round_trip() {
        let text = format!("/ostree/boot.1/sample/{CSUM}/0");
        let link: OstreeBootlink = text.parse().expect("valid bootlink");
        assert_eq!((link.bootversion(), link.osname(), link.bootcsum(), link.bootserial()), (1, "sample", CSUM, 0));
        assert_eq!(link.to_string(), text);
        assert_eq!(link.prepare_root_init(), format!("{text}/usr/lib/ostree/ostree-prepare-root"));
    }

    #[test]
    fn bootlink_errors() {
        let cases = [
            format!("/ostree/boot.2/sample/{CSUM}/0"),
            format!("/ostree/boot.x/sample/{CSUM}/0"),
            format!("/ostree/boot.0/sample/{CSUM}/"),
            format!("/ostree/boot.0/sample/{CSUM}/-1"),
            format!("/ostree/boot.0/sample/{CSUM}/0/extra"),
            format!("/ostree/boot.0//{CSUM}/0"),
            format!("/ostree/boot.0/../{CSUM}/0"),
            format!("/ostree/boot.0/sample/{}/0", CSUM.to_uppercase()),
            "/ostree/boot.0/sample/abc/0".to_owned(),
            format!("/boot.0/sample/{CSUM}/0"),
            format!("/ostree/deploy/sample/deploy/{CSUM}.0"),
        ];
        for value in cases {
            let got = value.parse::<OstreeBootlink>();
            assert!(matches!(&got, Err(Error::InvalidBootlink { value: v, .. }) if *v == value), "{value}: {got:?}");
        }
    }

    #[test]
    fn ostree_arg_helpers() {
        let mut kargs = Kargs::parse("root=LABEL=root quiet").expect("valid");
        assert_eq!(kargs.ostree_bootlink(), Ok(None));
        let old = OstreeBootlink::new(0, "sample", CSUM, 0).expect("valid");
        kargs.set_ostree_bootlink(&old);
        assert_eq!(kargs.to_string(), format!("root=LABEL=root quiet ostree=/ostree/boot.0/sample/{CSUM}/0"));
        // Replacing keeps the position, as OSTree's replace_take does.
        kargs.append("rw").expect("valid");
        let new = OstreeBootlink::new(1, "sample", CSUM, 1).expect("valid");
        kargs.set_ostree_bootlink(&new);
        assert_eq!(kargs.to_string(), format!("root=LABEL=root quiet ostree=/ostree/boot.1/sample/{CSUM}/1 rw"));
        assert_eq!(kargs.ostree_bootlink(), Ok(Some(new)));
        let bare = Kargs::parse("ostree").expect("valid");
        assert!(matches!(bare.ostree_bootlink(), Err(Error::InvalidBootlink { .. })));
    }

    fn karg() -> impl Strategy<Value = Karg> {
        let key = "[a-z_][a-z0-9_.-]{0,8}";
        let value = proptest::option::of("[ -!#-~]{0,10}");
        (key, value).prop_map(|(k, v)| Karg::new(&k, v.as_deref()).expect("strategy only makes valid args"))
    }

    proptest! {
        #[test]
        fn to_string_round_trips(args in proptest::collection::vec(karg(), 0..8)) {
            let kargs = Kargs { args };
            prop_assert_eq!(Kargs::parse(&kargs.to_string()), Ok(kargs.clone()));
        }

        #[test]
        fn parsed_text_round_trips(text in "[ a-c=\"\t.-]{0,24}") {
            if let Ok(kargs) = Kargs::parse(&text) {
                prop_assert_eq!(Kargs::parse(&kargs.to_string()), Ok(kargs));
            }
        }

        #[test]
        fn any_text_parses_or_errors(text in any::<String>()) {
            if let Ok(kargs) = Kargs::parse(&text) {
                prop_assert_eq!(Kargs::parse(&kargs.to_string()), Ok(kargs));
            }
        }
    }
}
