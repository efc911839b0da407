//! Boot counting in entry file names, and the order in which systemd-boot lists entries.
//!
//! systemd's Automatic Boot Assessment keeps a counter in the file name of a BLS entry:
//! `NAME+LEFT-DONE.conf`, or `NAME+LEFT.conf` (DONE is then 0), or plain `NAME.conf` (no
//! counting). Sources, read for this module:
//! - `docs/AUTOMATIC_BOOT_ASSESSMENT.md` (systemd) and the "Boot counting" section of the UAPI
//!   Boot Loader Specification (`specs/boot_loader_specification.md`): the grammar and the three
//!   states, see [`BootState`];
//! - `boot_entry_parse_tries()` and `boot_entry_bump_counters()` in systemd's `src/boot/boot.c`:
//!   exactly which names carry a counter, and the rename before each boot ([`EntryName::decrement`]);
//! - `make_good()` / `make_bad()` in `src/bless-boot/bless-boot.c`: the renames of
//!   `systemd-bless-boot good|bad` ([`EntryName::bless`], [`EntryName::mark_bad`]);
//! - `boot_entry_compare()` in `src/boot/boot.c` (and its copy in `src/shared/bootspec.c`, used by
//!   `bootctl`): the menu order, whose first entry is the default ([`compare`], [`sort`]); systemd
//!   PR #38897 changed which id it sorts by ([`IdStyle`]).
//!
//! `research/qemu-boot.md` records these rules observed on systemd-boot 252 under OVMF.

use std::cmp::Ordering;
use std::fmt;

use crate::bls::BlsEntry;
use crate::vercmp;

/// The suffix of a type #1 entry file. systemd-boot matches it case-insensitively.
pub const CONF_SUFFIX: &str = ".conf";

/// Largest counter systemd-boot accepts: `INT_MAX`. A bigger number makes
/// `boot_entry_parse_tries()` treat the name as having no counter at all, and the "tries done"
/// counter stops growing there (`MIN(tries_done + 1, INT_MAX)`).
pub const MAX_COUNTER: u32 = i32::MAX as u32;

/// Longest file name the Boot Loader Specification allows (including the suffix).
pub const MAX_FILE_NAME_LEN: usize = 255;

/// Errors about entry file names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The name does not end in `.conf`.
    #[error("boot entry file name {file_name:?} does not end in .conf")]
    NotConf {
        /// The file name.
        file_name: String,
    },
    /// The name cannot be a file in `loader/entries/`.
    #[error("invalid boot entry file name {file_name:?}: {reason}")]
    InvalidFileName {
        /// The file name.
        file_name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A counter is larger than [`MAX_COUNTER`].
    #[error("boot counter {value} is larger than {max}")]
    CounterTooLarge {
        /// The value.
        value: u32,
        /// The limit.
        max: u32,
    },
    /// The name and counter would not parse back the same (`foo+3` without a counter would be
    /// read as `foo` with 3 tries left).
    #[error("boot entry name {name:?} would be read back as a different name or counter from {file_name:?}")]
    Ambiguous {
        /// The name that was given.
        name: String,
        /// The file name it would produce.
        file_name: String,
    },
    /// Blessing or marking bad needs a counter, and the name has none (systemd-bless-boot
    /// refuses too).
    #[error("boot entry {file_name:?} has no boot counter")]
    NoCounter {
        /// The file name.
        file_name: String,
    },
}

/// The counter of an entry: tries left, and tries done if the name shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Counter {
    tries_left: u32,
    tries_done: Option<u32>,
}

impl Counter {
    /// A counter; both numbers must be at most [`MAX_COUNTER`]. A new entry gets
    /// `Counter::new(tries, None)`, written `+TRIES` (as `kernel-install` does with
    /// `/etc/kernel/tries`).
    pub fn new(tries_left: u32, tries_done: Option<u32>) -> Result<Counter, Error> {
        for value in [Some(tries_left), tries_done].into_iter().flatten() {
            if value > MAX_COUNTER {
                return Err(Error::CounterTooLarge { value, max: MAX_COUNTER });
            }
        }
        Ok(Counter { tries_left, tries_done })
    }

    /// How many more times the boot loader will try the entry.
    pub fn tries_left(&self) -> u32 {
        self.tries_left
    }

    /// How many tries were made, if the name shows it (`+LEFT-DONE`); a missing DONE means 0.
    pub fn tries_done(&self) -> Option<u32> {
        self.tries_done
    }
}

impl fmt::Display for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tries_done {
            None => write!(f, "+{}", self.tries_left),
            Some(done) => write!(f, "+{}-{done}", self.tries_left),
        }
    }
}

/// The boot-assessment state of an entry (`docs/AUTOMATIC_BOOT_ASSESSMENT.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootState {
    /// No counter: the entry booted successfully once and was blessed, or never had counting.
    Good,
    /// Tries left above zero: the boot loader will still try it.
    Indeterminate {
        /// Tries left (at least 1).
        tries_left: u32,
        /// Tries done (0 if the name does not show it).
        tries_done: u32,
    },
    /// No tries left: the boot loader sorts it after every other entry, so it boots only when
    /// nothing else is there.
    Bad {
        /// Tries done (0 if the name does not show it).
        tries_done: u32,
    },
}

/// A type #1 entry file name, split into name and counter: `NAME[+LEFT[-DONE]].conf`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryName {
    file_name: String,
    name_end: usize,
    counter: Option<Counter>,
}

/// The counter part of a file name, as `boot_entry_parse_tries()` finds it.
struct Parsed {
    /// Length of NAME (before the last `+`), or of the whole stem when there is no counter.
    name_end: usize,
    counter: Option<Counter>,
}

/// Parses the decimal number at the start of `s` (at least one digit, no overflow), like
/// systemd's `parse_number16()`; returns it and the rest.
fn leading_number(s: &str) -> Option<(u64, &str)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let value = s[..digits].bytes().try_fold(0u64, |n, c| n.checked_mul(10)?.checked_add(u64::from(c - b'0')))?;
    Some((value, &s[digits..]))
}

fn has_conf_suffix(file_name: &str) -> bool {
    let n = file_name.len();
    n >= CONF_SUFFIX.len()
        && file_name.is_char_boundary(n - CONF_SUFFIX.len())
        && file_name[n - CONF_SUFFIX.len()..].eq_ignore_ascii_case(CONF_SUFFIX)
}

/// The rules of `boot_entry_parse_tries()`: take the *last* `+`; it must be followed by digits,
/// optionally `-` and digits, and then directly by the suffix; each number at most `INT_MAX`.
/// Anything else means the entry has no counter (it is not an error).
fn split_counter(file_name: &str) -> Parsed {
    let stem_end = file_name.len() - CONF_SUFFIX.len();
    let none = Parsed { name_end: stem_end, counter: None };
    let Some(plus) = file_name.rfind('+') else { return none };
    let Some((left, rest)) = leading_number(&file_name[plus + 1..]) else { return none };
    let (done, rest) = match rest.strip_prefix('-') {
        None => (None, rest),
        Some(after) => match leading_number(after) {
            Some((done, rest)) => (Some(done), rest),
            None => return none,
        },
    };
    if !rest.eq_ignore_ascii_case(CONF_SUFFIX) {
        return none;
    }
    let fits = |n: u64| u32::try_from(n).ok().filter(|n| *n <= MAX_COUNTER);
    let (Some(tries_left), Ok(tries_done)) = (fits(left), done.map(|d| fits(d).ok_or(())).transpose()) else {
        return none;
    };
    Parsed { name_end: plus, counter: Some(Counter { tries_left, tries_done }) }
}

impl EntryName {
    /// Splits an existing file name. Only a name that is not `*.conf` or that could not be a file
    /// (`/`, NUL) is an error; a malformed counter (`foo+x.conf`) just means no counter, as in
    /// systemd-boot.
    pub fn parse(file_name: &str) -> Result<EntryName, Error> {
        if file_name.contains(['/', '\0']) {
            return Err(Error::InvalidFileName { file_name: file_name.to_owned(), reason: "contains '/' or NUL" });
        }
        if !has_conf_suffix(file_name) {
            return Err(Error::NotConf { file_name: file_name.to_owned() });
        }
        let Parsed { name_end, counter } = split_counter(file_name);
        Ok(EntryName { file_name: file_name.to_owned(), name_end, counter })
    }

    /// Builds `NAME[+LEFT[-DONE]].conf` for a new entry. The name must use the characters the
    /// Boot Loader Specification allows (ASCII letters, digits, `+ - _ .`), the file name must fit
    /// in 255 bytes, and the result must parse back to the same name and counter.
    pub fn new(name: &str, counter: Option<Counter>) -> Result<EntryName, Error> {
        let file_name = match counter {
            None => format!("{name}{CONF_SUFFIX}"),
            Some(c) => format!("{name}{c}{CONF_SUFFIX}"),
        };
        let invalid = |reason| Error::InvalidFileName { file_name: file_name.clone(), reason };
        if name.is_empty() {
            return Err(invalid("the name is empty"));
        }
        if !name.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'_' | b'.')) {
            return Err(invalid("the name has characters outside A-Z a-z 0-9 + - _ ."));
        }
        if file_name.len() > MAX_FILE_NAME_LEN {
            return Err(invalid("longer than 255 bytes"));
        }
        let parsed = EntryName::parse(&file_name)?;
        if parsed.name() != name || parsed.counter != counter {
            return Err(Error::Ambiguous { name: name.to_owned(), file_name });
        }
        Ok(parsed)
    }

    /// NAME: the file name without counter and suffix.
    pub fn name(&self) -> &str {
        &self.file_name[..self.name_end]
    }

    /// The counter, if the name has a valid one.
    pub fn counter(&self) -> Option<Counter> {
        self.counter
    }

    /// Tries left, if the name has a counter.
    pub fn tries_left(&self) -> Option<u32> {
        self.counter.map(|c| c.tries_left)
    }

    /// Tries done, if the name shows it.
    pub fn tries_done(&self) -> Option<u32> {
        self.counter.and_then(|c| c.tries_done)
    }

    /// The file name, exactly as parsed or built.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The `.conf` suffix as written (systemd-boot accepts any case).
    fn suffix(&self) -> &str {
        &self.file_name[self.file_name.len() - CONF_SUFFIX.len()..]
    }

    /// Good, indeterminate or bad.
    pub fn state(&self) -> BootState {
        match self.counter {
            None => BootState::Good,
            Some(Counter { tries_left: 0, tries_done }) => BootState::Bad { tries_done: tries_done.unwrap_or(0) },
            Some(Counter { tries_left, tries_done }) => {
                BootState::Indeterminate { tries_left, tries_done: tries_done.unwrap_or(0) }
            }
        }
    }

    /// The identifier systemd-boot uses for the entry (for `default`, `LoaderEntryDefault`, and
    /// the final sort key): the file name without the counter, with `.conf`, in ASCII lower case.
    /// (systemd-boot before September 2025 kept the counter in it; see [`IdStyle`].)
    pub fn id(&self) -> String {
        let mut id = format!("{}{CONF_SUFFIX}", self.name());
        id.make_ascii_lowercase();
        id
    }

    /// The name systemd-boot renames the file to just before it boots it: one try less (never
    /// below 0), one try more done (at most [`MAX_COUNTER`]), always written `+LEFT-DONE.conf`
    /// with a lower-case suffix. `None` for an entry without a counter, which is never renamed.
    /// An entry that is already bad is still renamed when it is booted (`+0-2` → `+0-3`).
    pub fn decrement(&self) -> Option<EntryName> {
        let c = self.counter?;
        let next = Counter {
            tries_left: c.tries_left.saturating_sub(1),
            tries_done: Some(c.tries_done.unwrap_or(0).saturating_add(1).min(MAX_COUNTER)),
        };
        let file_name = format!("{}{next}{CONF_SUFFIX}", self.name());
        Some(EntryName { file_name, name_end: self.name_end, counter: Some(next) })
    }

    /// The name `systemd-bless-boot good` gives the booted entry: the counter removed, so the
    /// entry is good and never counted again. Errors if there is no counter.
    pub fn bless(&self) -> Result<EntryName, Error> {
        self.require_counter()?;
        let file_name = format!("{}{}", self.name(), self.suffix());
        Ok(EntryName { file_name, name_end: self.name_end, counter: None })
    }

    /// The name `systemd-bless-boot bad` gives the booted entry: no tries left, tries done kept
    /// (`+0-DONE`, or `+0` when DONE is 0). Errors if there is no counter.
    pub fn mark_bad(&self) -> Result<EntryName, Error> {
        let c = self.require_counter()?;
        let done = c.tries_done.unwrap_or(0);
        let bad = Counter { tries_left: 0, tries_done: (done != 0).then_some(done) };
        let file_name = format!("{}{bad}{}", self.name(), self.suffix());
        Ok(EntryName { file_name, name_end: self.name_end, counter: Some(bad) })
    }

    fn require_counter(&self) -> Result<Counter, Error> {
        self.counter.ok_or_else(|| Error::NoCounter { file_name: self.file_name.clone() })
    }
}

impl fmt::Display for EntryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file_name)
    }
}

impl std::str::FromStr for EntryName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntryName::parse(s)
    }
}

/// What systemd-boot looks at when it orders type #1 entries: the file name and three keys.
/// `None` means the key is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SortEntry<'a> {
    /// The file name in `loader/entries/`, with its counter.
    pub file_name: &'a str,
    /// `sort-key`.
    pub sort_key: Option<&'a str>,
    /// `machine-id`.
    pub machine_id: Option<&'a str>,
    /// `version`.
    pub version: Option<&'a str>,
}

impl<'a> SortEntry<'a> {
    /// Takes the keys from a parsed entry the way systemd-boot reads them
    /// (`line_get_key_value()` in `src/boot/efi-string.c`): a key line without a value is skipped,
    /// so the last line *with* a value wins, and a value in double quotes loses them.
    pub fn from_bls(file_name: &'a str, entry: &'a BlsEntry) -> SortEntry<'a> {
        let value =
            |key: &'static str| {
                entry.get_all(key).filter(|v| !v.is_empty()).last().map(|v| {
                    if v.starts_with('"') && v.ends_with('"') { v.get(1..v.len() - 1).unwrap_or("") } else { v }
                })
            };
        SortEntry { file_name, sort_key: value("sort-key"), machine_id: value("machine-id"), version: value("version") }
    }
}

/// Compares as `strcmp16()` does on the UCS-2 strings systemd-boot holds: by UTF-16 code unit,
/// with an absent string before any present one.
fn cmp_utf16(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.encode_utf16().cmp(b.encode_utf16()),
        (a, b) => a.is_some().cmp(&b.is_some()),
    }
}

/// Which entry id systemd-boot sorts by (and matches `default` patterns against).
///
/// systemd-boot lower-cases the file name (`strtolower16()`); since systemd PR #38897
/// (September 2025, "boot: Strip boot counter from entry id") it also drops the counter, as
/// `bootctl` always did. Before that, including systemd 252 in Debian 12, the counter was part of
/// the id. The two orders differ only between files whose names differ only in the counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IdStyle {
    /// `name.conf`, lower-cased: current systemd-boot, and [`EntryName::id`].
    #[default]
    WithoutCounter,
    /// The whole file name, lower-cased: systemd-boot before PR #38897 (e.g. 252).
    WithCounter,
}

/// The counter and id of a file name, as systemd-boot derives them (a name that is not `*.conf`
/// has no counter and is its own id).
fn counter_and_id(file_name: &str, style: IdStyle) -> (Option<Counter>, String) {
    match (EntryName::parse(file_name), style) {
        (Ok(name), IdStyle::WithoutCounter) => (name.counter, name.id()),
        (Ok(name), IdStyle::WithCounter) => (name.counter, file_name.to_ascii_lowercase()),
        (Err(_), _) => (None, file_name.to_ascii_lowercase()),
    }
}

/// The order of systemd-boot's menu (`boot_entry_compare()` in `src/boot/boot.c`), with the
/// current [`IdStyle`]; the first entry is the default when nothing else (`default`,
/// `LoaderEntryDefault`, one-shot) picks one:
/// 1. bad entries (counter with 0 tries left) after all others;
/// 2. entries with a `sort-key` before entries without;
/// 3. if both have one: `sort-key` ascending, then `machine-id` ascending (absent first), then
///    `version` descending in [`vercmp`] order;
/// 4. then the id (see [`IdStyle`]; `.conf` kept, lower-cased) descending in version order, so
///    `ostree-2-os.conf` comes before `ostree-1-os.conf`;
/// 5. then, if both are counted: more tries left first, then fewer tries done first.
///
/// Note 4 keeps the `.conf` suffix, as systemd-boot does, while the Boot Loader Specification
/// says "with the suffix removed". It matters for names such as `foo.conf` and `foo-1.conf`
/// (systemd-boot puts `foo.conf` first). And `version` only counts when both entries have a
/// `sort-key`.
pub fn compare(a: &SortEntry<'_>, b: &SortEntry<'_>) -> Ordering {
    compare_with(a, b, IdStyle::default())
}

/// [`compare`] with a chosen [`IdStyle`].
pub fn compare_with(a: &SortEntry<'_>, b: &SortEntry<'_>, style: IdStyle) -> Ordering {
    let (counter_a, id_a) = counter_and_id(a.file_name, style);
    let (counter_b, id_b) = counter_and_id(b.file_name, style);
    let bad = |c: Option<Counter>| c.is_some_and(|c| c.tries_left == 0);
    bad(counter_a)
        .cmp(&bad(counter_b))
        .then_with(|| a.sort_key.is_none().cmp(&b.sort_key.is_none()))
        .then_with(|| {
            if a.sort_key.is_none() || b.sort_key.is_none() {
                return Ordering::Equal;
            }
            cmp_utf16(a.sort_key, b.sort_key)
                .then_with(|| cmp_utf16(a.machine_id, b.machine_id))
                .then_with(|| vercmp::compare(b.version.unwrap_or(""), a.version.unwrap_or("")))
        })
        .then_with(|| vercmp::compare(&id_b, &id_a))
        .then_with(|| match (counter_a, counter_b) {
            (Some(ca), Some(cb)) => cb
                .tries_left
                .cmp(&ca.tries_left)
                .then_with(|| ca.tries_done.unwrap_or(0).cmp(&cb.tries_done.unwrap_or(0))),
            _ => Ordering::Equal,
        })
}

/// Sorts entries into systemd-boot's menu order (see [`compare`]). The sort is stable, like
/// systemd-boot's insertion sort, so entries that compare equal keep their input order.
pub fn sort(entries: &mut [SortEntry<'_>]) {
    entries.sort_by(compare);
}

/// [`sort`] with a chosen [`IdStyle`].
pub fn sort_with(entries: &mut [SortEntry<'_>], style: IdStyle) {
    entries.sort_by(|a, b| compare_with(a, b, style));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (file name, name, tries left, tries done)
    const PARSE: &[(&str, &str, Option<u32>, Option<u32>)] = &[
        ("foo.conf", "foo", None, None),
        ("foo+3.conf", "foo", Some(3), None),
        ("foo+3-0.conf", "foo", Some(3), Some(0)),
        ("foo+2-1.conf", "foo", Some(2), Some(1)),
        ("foo+0-3.conf", "foo", Some(0), Some(3)),
        ("4.14.11-300.fc27.x86_64+3.conf", "4.14.11-300.fc27.x86_64", Some(3), None),
        ("ostree-2-sample+1-1.conf", "ostree-2-sample", Some(1), Some(1)),
        // The last '+' is the counter's.
        ("a+b+2.conf", "a+b", Some(2), None),
        ("6.1.0+deb12+1.conf", "6.1.0+deb12", Some(1), None),
        // Not a counter: the whole stem is the name.
        ("foo+.conf", "foo+", None, None),
        ("foo+x.conf", "foo+x", None, None),
        ("foo+3x.conf", "foo+3x", None, None),
        ("foo+3-.conf", "foo+3-", None, None),
        ("foo+-1.conf", "foo+-1", None, None),
        ("foo+3-1-2.conf", "foo+3-1-2", None, None),
        ("foo+3.conf.conf", "foo+3.conf", None, None),
        ("foo+1+x.conf", "foo+1+x", None, None),
        // Numbers: leading zeros are fine, INT_MAX is the limit, overflow means no counter.
        ("foo+03-007.conf", "foo", Some(3), Some(7)),
        ("foo+2147483647.conf", "foo", Some(2147483647), None),
        ("foo+2147483648.conf", "foo+2147483648", None, None),
        ("foo+1-2147483648.conf", "foo+1-2147483648", None, None),
        ("foo+99999999999999999999.conf", "foo+99999999999999999999", None, None),
        // The suffix is matched without regard to case.
        ("FOO+3.CONF", "FOO", Some(3), None),
        ("+3.conf", "", Some(3), None),
    ];

    #[test]
    fn parse_table() {
        for &(file, name, left, done) in PARSE {
            let parsed = EntryName::parse(file).expect("table names end in .conf");
            let got = (parsed.name(), parsed.tries_left(), parsed.tries_done());
            assert_eq!(got, (name, left, done), "{file}");
            assert_eq!(parsed.to_string(), file, "Display gives the file name back");
        }
    }

    #[test]
    fn parse_errors() {
        let cases = [
            ("foo", Error::NotConf { file_name: "foo".into() }),
            ("foo.con", Error::NotConf { file_name: "foo.con".into() }),
            ("foo+3.efi", Error::NotConf { file_name: "foo+3.efi".into() }),
            ("", Error::NotConf { file_name: "".into() }),
            ("a/b.conf", Error::InvalidFileName { file_name: "a/b.conf".into(), reason: "contains '/' or NUL" }),
            ("a\0.conf", Error::InvalidFileName { file_name: "a\0.conf".into(), reason: "contains '/' or NUL" }),
        ];
        for (file, want) in cases {
            assert_eq!(EntryName::parse(file), Err(want), "{file:?}");
        }
        // Non-ASCII names are read (systemd-boot reads them), just not created by new().
        assert_eq!(EntryName::parse("é+1.conf").map(|n| n.tries_left()), Ok(Some(1)));
    }

    #[test]
    fn new_formats_and_round_trips() {
        let c = |l, d| Counter::new(l, d).expect("small counter");
        let cases: &[(&str, Option<Counter>, Result<&str, &str>)] = &[
            ("ostree-2-sample", None, Ok("ostree-2-sample.conf")),
            ("ostree-2-sample", Some(c(3, None)), Ok("ostree-2-sample+3.conf")),
            ("ostree-2-sample", Some(c(1, Some(2))), Ok("ostree-2-sample+1-2.conf")),
            ("a+b", Some(c(0, Some(0))), Ok("a+b+0-0.conf")),
            ("foo+3", None, Err("ambiguous")),
            ("foo+3-1", None, Err("ambiguous")),
            ("foo+3", Some(c(1, None)), Ok("foo+3+1.conf")),
            ("", None, Err("empty")),
            ("a b", None, Err("charset")),
            ("a/b", None, Err("charset")),
            ("é", None, Err("charset")),
        ];
        for &(name, counter, want) in cases {
            let got = EntryName::new(name, counter);
            match want {
                Ok(file) => {
                    let got = got.expect("valid name");
                    assert_eq!((got.file_name(), got.name(), got.counter()), (file, name, counter));
                    assert_eq!(EntryName::parse(file).as_ref(), Ok(&got));
                }
                Err("ambiguous") => assert!(matches!(got, Err(Error::Ambiguous { .. })), "{name}: {got:?}"),
                Err(_) => assert!(matches!(got, Err(Error::InvalidFileName { .. })), "{name}: {got:?}"),
            }
        }
        let long = "x".repeat(MAX_FILE_NAME_LEN - CONF_SUFFIX.len());
        assert!(EntryName::new(&long, None).is_ok());
        assert!(matches!(EntryName::new(&format!("{long}x"), None), Err(Error::InvalidFileName { .. })));
        assert_eq!(
            Counter::new(MAX_COUNTER + 1, None),
            Err(Error::CounterTooLarge { value: MAX_COUNTER + 1, max: MAX_COUNTER })
        );
        assert!(Counter::new(1, Some(MAX_COUNTER + 1)).is_err());
    }

    #[test]
    fn states() {
        let cases = [
            ("foo.conf", BootState::Good),
            ("foo+3.conf", BootState::Indeterminate { tries_left: 3, tries_done: 0 }),
            ("foo+1-2.conf", BootState::Indeterminate { tries_left: 1, tries_done: 2 }),
            ("foo+0-3.conf", BootState::Bad { tries_done: 3 }),
            ("foo+0.conf", BootState::Bad { tries_done: 0 }),
            ("foo+x.conf", BootState::Good),
        ];
        for (file, want) in cases {
            assert_eq!(EntryName::parse(file).expect("valid").state(), want, "{file}");
        }
    }

    #[test]
    fn decrement_table() {
        // The series from the comment in boot_entry_parse_tries(), the walkthrough in
        // AUTOMATIC_BOOT_ASSESSMENT.md, and the qemu-boot.md observations.
        let cases: &[(&str, Option<&str>)] = &[
            ("foobar+3.conf", Some("foobar+2-1.conf")),
            ("foobar+2-1.conf", Some("foobar+1-2.conf")),
            ("foobar+1-2.conf", Some("foobar+0-3.conf")),
            ("foobar+4-0.conf", Some("foobar+3-1.conf")),
            ("4.14.11-300.fc27.x86_64+3.conf", Some("4.14.11-300.fc27.x86_64+2-1.conf")),
            ("ostree-2+2.conf", Some("ostree-2+1-1.conf")),
            // An exhausted entry that is booted anyway keeps counting tries.
            ("ostree-2+0-2.conf", Some("ostree-2+0-3.conf")),
            ("foo+0.conf", Some("foo+0-1.conf")),
            ("foo+03-007.conf", Some("foo+2-8.conf")),
            ("foo+5-2147483647.conf", Some("foo+4-2147483647.conf")),
            // systemd-boot writes a lower-case suffix.
            ("FOO+3.CONF", Some("FOO+2-1.conf")),
            ("foo.conf", None),
            ("foo+x.conf", None),
        ];
        for &(from, to) in cases {
            let got = EntryName::parse(from).expect("valid").decrement();
            assert_eq!(got.as_ref().map(EntryName::file_name), to, "{from}");
            if let Some(next) = got {
                assert_eq!(EntryName::parse(next.file_name()).as_ref(), Ok(&next), "{from}");
            }
        }
    }

    #[test]
    fn bless_and_mark_bad_table() {
        // (booted file, after `bless-boot good`, after `bless-boot bad`)
        type Case = (&'static str, Option<(&'static str, &'static str)>);
        let cases: &[Case] = &[
            (
                "4.14.11-300.fc27.x86_64+1-2.conf",
                Some(("4.14.11-300.fc27.x86_64.conf", "4.14.11-300.fc27.x86_64+0-2.conf")),
            ),
            ("ostree-2+2-1.conf", Some(("ostree-2.conf", "ostree-2+0-1.conf"))),
            ("foo+3.conf", Some(("foo.conf", "foo+0.conf"))),
            ("foo+3-0.conf", Some(("foo.conf", "foo+0.conf"))),
            ("foo+0-3.conf", Some(("foo.conf", "foo+0-3.conf"))),
            ("a+b+1-1.conf", Some(("a+b.conf", "a+b+0-1.conf"))),
            // bless-boot keeps whatever suffix the name has.
            ("FOO+1-1.CONF", Some(("FOO.CONF", "FOO+0-1.CONF"))),
            ("foo.conf", None),
            ("foo+x.conf", None),
        ];
        for &(from, want) in cases {
            let name = EntryName::parse(from).expect("valid");
            match want {
                Some((good, bad)) => {
                    let blessed = name.bless().expect("has a counter");
                    assert_eq!((blessed.file_name(), blessed.state()), (good, BootState::Good), "{from}");
                    let marked = name.mark_bad().expect("has a counter");
                    assert_eq!(marked.file_name(), bad, "{from}");
                    assert!(matches!(marked.state(), BootState::Bad { .. }), "{from}");
                    assert_eq!(EntryName::parse(bad).as_ref(), Ok(&marked), "{from}");
                }
                None => {
                    let no_counter = Err(Error::NoCounter { file_name: from.to_owned() });
                    assert_eq!(name.bless(), no_counter, "{from}");
                    assert_eq!(name.mark_bad(), no_counter, "{from}");
                }
            }
        }
    }

    #[test]
    fn ids() {
        let cases = [
            ("foo.conf", "foo.conf"),
            ("Foo+3-1.CONF", "foo.conf"),
            ("ostree-2-sample+1.conf", "ostree-2-sample.conf"),
            ("a+x.conf", "a+x.conf"),
        ];
        for (file, id) in cases {
            assert_eq!(EntryName::parse(file).expect("valid").id(), id, "{file}");
        }
    }

    fn entry<'a>(file_name: &'a str, sort_key: Option<&'a str>, version: Option<&'a str>) -> SortEntry<'a> {
        SortEntry { file_name, sort_key, machine_id: None, version }
    }

    #[test]
    fn sort_table() {
        let os = Some("ostree");
        let mid = |file_name, machine_id| SortEntry { file_name, sort_key: os, machine_id, version: Some("1") };
        // (entries in input order, file names in menu order)
        let cases: &[(&[SortEntry<'_>], &[&str])] = &[
            // qemu-boot.md step 2: the counted new entry first; once exhausted, the old one.
            (
                &[entry("ostree-1.conf", os, Some("1")), entry("ostree-2+2.conf", os, Some("2"))],
                &["ostree-2+2.conf", "ostree-1.conf"],
            ),
            (
                &[entry("ostree-2+0-2.conf", os, Some("2")), entry("ostree-1.conf", os, Some("1"))],
                &["ostree-1.conf", "ostree-2+0-2.conf"],
            ),
            // Indeterminate is not bad.
            (
                &[entry("ostree-1.conf", os, Some("1")), entry("ostree-2+1-2.conf", os, Some("2"))],
                &["ostree-2+1-2.conf", "ostree-1.conf"],
            ),
            // Bad sorts last even against entries without sort-key.
            (&[entry("z+0.conf", os, Some("9")), entry("a.conf", None, None)], &["a.conf", "z+0.conf"]),
            // Entries with a sort-key come first.
            (&[entry("b.conf", None, Some("9")), entry("a.conf", Some("x"), Some("1"))], &["a.conf", "b.conf"]),
            // sort-key ascending, then version descending.
            (
                &[entry("f.conf", Some("fedora"), Some("1")), entry("d.conf", Some("debian"), Some("1"))],
                &["d.conf", "f.conf"],
            ),
            (&[entry("a.conf", os, Some("6.1.0-9")), entry("b.conf", os, Some("6.1.0-13"))], &["b.conf", "a.conf"]),
            // Without a sort-key on both, version is ignored: the file name decides.
            (&[entry("a.conf", None, Some("9")), entry("b.conf", None, Some("1"))], &["b.conf", "a.conf"]),
            (&[entry("a.conf", os, Some("9")), entry("b.conf", None, Some("1"))], &["a.conf", "b.conf"]),
            // The OSTree names: newest (highest version in the name) first, 10 after 9.
            (
                &[
                    entry("ostree-1-os.conf", None, Some("1")),
                    entry("ostree-10-os.conf", None, Some("10")),
                    entry("ostree-9-os.conf", None, Some("9")),
                ],
                &["ostree-10-os.conf", "ostree-9-os.conf", "ostree-1-os.conf"],
            ),
            // The id keeps ".conf" and is lower-cased.
            (&[entry("foo-1.conf", None, None), entry("foo.conf", None, None)], &["foo.conf", "foo-1.conf"]),
            (&[entry("a.conf", None, None), entry("B.conf", None, None)], &["B.conf", "a.conf"]),
            // Same id: more tries left first, then fewer tries done.
            (&[entry("k+1-2.conf", None, None), entry("k+3.conf", None, None)], &["k+3.conf", "k+1-2.conf"]),
            (&[entry("k+2-5.conf", None, None), entry("k+2-1.conf", None, None)], &["k+2-1.conf", "k+2-5.conf"]),
            // Same id, one uncounted: equal, so the input order stays.
            (&[entry("k+3.conf", None, None), entry("k.conf", None, None)], &["k+3.conf", "k.conf"]),
            (&[entry("k.conf", None, None), entry("k+3.conf", None, None)], &["k.conf", "k+3.conf"]),
            // machine-id: absent first, then ascending.
            (
                &[mid("x.conf", Some("bb")), mid("y.conf", Some("aa")), mid("z.conf", None)],
                &["z.conf", "y.conf", "x.conf"],
            ),
        ];
        for (input, want) in cases {
            let mut entries = input.to_vec();
            sort(&mut entries);
            let got: Vec<_> = entries.iter().map(|e| e.file_name).collect();
            assert_eq!(got, *want, "sorting {:?}", input.iter().map(|e| e.file_name).collect::<Vec<_>>());
        }
    }

    #[test]
    fn id_styles() {
        // (input order, order without counter in the id, order with it)
        type Case = (&'static [&'static str], &'static [&'static str], &'static [&'static str]);
        let cases: &[Case] = &[
            (&["k+2-5.conf", "k+2-1.conf"], &["k+2-1.conf", "k+2-5.conf"], &["k+2-5.conf", "k+2-1.conf"]),
            (&["k.conf", "k+3.conf"], &["k.conf", "k+3.conf"], &["k+3.conf", "k.conf"]),
            (&["K+1.conf", "k-2.conf"], &["K+1.conf", "k-2.conf"], &["K+1.conf", "k-2.conf"]),
            (
                &["ostree-1.conf", "ostree-2+1-1.conf"],
                &["ostree-2+1-1.conf", "ostree-1.conf"],
                &["ostree-2+1-1.conf", "ostree-1.conf"],
            ),
        ];
        for (input, without, with) in cases {
            for (style, want) in [(IdStyle::WithoutCounter, without), (IdStyle::WithCounter, with)] {
                let mut entries: Vec<_> = input.iter().map(|f| entry(f, None, None)).collect();
                sort_with(&mut entries, style);
                let got: Vec<_> = entries.iter().map(|e| e.file_name).collect();
                assert_eq!(got, *want, "{style:?} {input:?}");
            }
        }
    }

    #[test]
    fn sort_entry_reads_keys_like_systemd_boot() {
        let bls = BlsEntry::parse("sort-key \"photon\"\nversion 2\nversion\nmachine-id\nlinux /k\n").expect("valid");
        let e = SortEntry::from_bls("ostree-2.conf", &bls);
        assert_eq!((e.sort_key, e.machine_id, e.version), (Some("photon"), None, Some("2")));
        let bls = BlsEntry::parse("sort-key \"\"\nversion \"\n").expect("valid");
        let e = SortEntry::from_bls("x.conf", &bls);
        assert_eq!((e.sort_key, e.version), (Some(""), Some("")));
    }

    #[test]
    fn sort_golden_ostree_entries() {
        let files = [
            ("ostree-1-sample.conf", include_str!("../tests/fixtures/ostree-entries/b/ostree-1-sample.conf")),
            ("ostree-3-other.conf", include_str!("../tests/fixtures/ostree-entries/b/ostree-3-other.conf")),
            ("ostree-2-sample.conf", include_str!("../tests/fixtures/ostree-entries/b/ostree-2-sample.conf")),
        ];
        let parsed: Vec<_> = files.iter().map(|(f, t)| (*f, BlsEntry::parse(t).expect("ostree wrote it"))).collect();
        let mut entries: Vec<_> = parsed.iter().map(|(f, e)| SortEntry::from_bls(f, e)).collect();
        sort(&mut entries);
        let order: Vec<_> = entries.iter().map(|e| e.file_name).collect();
        // The deployment at index 0 (highest version) is the default.
        assert_eq!(order, ["ostree-3-other.conf", "ostree-2-sample.conf", "ostree-1-sample.conf"]);
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(stem in "[a-z0-9+.-]{0,12}", upper in proptest::bool::ANY) {
            let file = format!("{stem}{}", if upper { ".CONF" } else { ".conf" });
            let parsed = EntryName::parse(&file).expect("ends in .conf");
            proptest::prop_assert_eq!(parsed.file_name(), file.as_str());
            if let Some(next) = parsed.decrement() {
                proptest::prop_assert_eq!(EntryName::parse(next.file_name()), Ok(next.clone()));
                proptest::prop_assert_eq!(next.name(), parsed.name());
            }
        }

        #[test]
        fn compare_is_antisymmetric(a in "[a-c+0-2-]{1,5}", b in "[a-c+0-2-]{1,5}", ka in proptest::bool::ANY, kb in proptest::bool::ANY) {
            let (fa, fb) = (format!("{a}.conf"), format!("{b}.conf"));
            let ea = entry(&fa, ka.then_some("k"), Some(&a));
            let eb = entry(&fb, kb.then_some("k"), Some(&b));
            proptest::prop_assert_eq!(compare(&ea, &eb), compare(&eb, &ea).reverse());
        }

        #[test]
        fn any_file_name_parses_or_errors(name in proptest::prelude::any::<String>()) {
            if let Ok(parsed) = EntryName::parse(&name) {
                proptest::prop_assert_eq!(parsed.file_name(), name.as_str());
                let _ = (parsed.decrement(), parsed.bless(), parsed.mark_bad(), parsed.id());
            }
        }
    }
}
