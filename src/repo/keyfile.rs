//! GKeyFile, the INI dialect of OSTree's repo `config` and `.origin` files.
//!
//! Only what those files use: `[group]` headers (names may hold spaces and
//! quotes, as in `[remote "origin"]`), `key=value` lines, `#` comments, and
//! GLib's string escapes (`\s \n \t \r \\`). Comments and order survive a
//! rewrite, so editing a repo config by hand and then with us loses nothing.

use std::fmt::Write as _;

/// Why a key file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct KeyFileError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub reason: &'static str,
}

#[derive(Debug, Clone)]
enum Line {
    Entry { key: String, value: String },
    Other(String),
}

#[derive(Debug, Clone)]
struct Group {
    name: String,
    lines: Vec<Line>,
}

/// A parsed key file.
#[derive(Debug, Clone, Default)]
pub struct KeyFile {
    header: Vec<String>,
    groups: Vec<Group>,
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('s') => out.push(' '),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        match c {
            ' ' if i == 0 => out.push_str("\\s"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out
}

impl KeyFile {
    /// An empty key file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses text.
    pub fn parse(text: &str) -> Result<Self, KeyFileError> {
        let mut kf = KeyFile::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_start();
            let err = |reason| KeyFileError { line: i + 1, reason };
            if line.is_empty() || line.starts_with('#') {
                match kf.groups.last_mut() {
                    Some(g) => g.lines.push(Line::Other(raw.to_owned())),
                    None => kf.header.push(raw.to_owned()),
                }
            } else if let Some(rest) = line.strip_prefix('[') {
                let name = rest.trim_end().strip_suffix(']').ok_or_else(|| err("group header without ']'"))?;
                if name.is_empty() || name.contains(['[', ']']) {
                    return Err(err("bad group name"));
                }
                kf.groups.push(Group { name: name.to_owned(), lines: Vec::new() });
            } else {
                let (key, value) = line.split_once('=').ok_or_else(|| err("expected key=value"))?;
                let key = key.trim_end();
                if key.is_empty() {
                    return Err(err("empty key"));
                }
                let group = kf.groups.last_mut().ok_or_else(|| err("key outside any [group]"))?;
                group.lines.push(Line::Entry { key: key.to_owned(), value: unescape(value.trim_start()) });
            }
        }
        Ok(kf)
    }

    fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The value of `key` in `group` (the last one, if repeated, as GLib does).
    pub fn get(&self, group: &str, key: &str) -> Option<&str> {
        self.group(group)?.lines.iter().rev().find_map(|l| match l {
            Line::Entry { key: k, value } if k == key => Some(value.as_str()),
            _ => None,
        })
    }

    /// A boolean (`true`/`false`, also `1`/`0` as GLib accepts); `Err` names
    /// the bad value.
    pub fn get_bool(&self, group: &str, key: &str) -> Result<Option<bool>, String> {
        match self.get(group, key) {
            None => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(other) => Err(format!("[{group}] {key}={other} is not a boolean")),
        }
    }

    /// A `;`-separated list (GLib string list).
    pub fn get_list(&self, group: &str, key: &str) -> Vec<String> {
        self.get(group, key)
            .map(|v| v.split(';').filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Sets `key` in `group`, creating the group at the end if needed.
    pub fn set(&mut self, group: &str, key: &str, value: &str) {
        let idx = match self.groups.iter().position(|g| g.name == group) {
            Some(i) => i,
            None => {
                self.groups.push(Group { name: group.to_owned(), lines: Vec::new() });
                self.groups.len() - 1
            }
        };
        let lines = &mut self.groups[idx].lines;
        for l in lines.iter_mut() {
            if let Line::Entry { key: k, value: v } = l
                && k == key
            {
                *v = value.to_owned();
                return;
            }
        }
        // Insert after the last entry, before trailing blank lines.
        let pos = lines.iter().rposition(|l| matches!(l, Line::Entry { .. })).map_or(0, |p| p + 1);
        lines.insert(pos, Line::Entry { key: key.to_owned(), value: value.to_owned() });
    }

    /// Removes `key` from `group`; true if it was there.
    pub fn remove_key(&mut self, group: &str, key: &str) -> bool {
        let Some(g) = self.groups.iter_mut().find(|g| g.name == group) else { return false };
        let before = g.lines.len();
        g.lines.retain(|l| !matches!(l, Line::Entry { key: k, .. } if k == key));
        before != g.lines.len()
    }

    /// True if the group exists.
    pub fn has_group(&self, group: &str) -> bool {
        self.group(group).is_some()
    }

    /// Removes a whole group; true if it was there.
    pub fn remove_group(&mut self, group: &str) -> bool {
        let before = self.groups.len();
        self.groups.retain(|g| g.name != group);
        before != self.groups.len()
    }

    /// Group names in file order.
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().map(|g| g.name.as_str())
    }

    /// The keys and values of a group, in order.
    pub fn entries(&self, group: &str) -> Vec<(&str, &str)> {
        self.group(group)
            .map(|g| {
                g.lines
                    .iter()
                    .filter_map(|l| match l {
                        Line::Entry { key, value } => Some((key.as_str(), value.as_str())),
                        Line::Other(_) => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Serializes, keeping comments and order.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for h in &self.header {
            let _ = writeln!(out, "{h}");
        }
        for (i, g) in self.groups.iter().enumerate() {
            if i > 0
                && !out.ends_with("\n\n")
                && !matches!(self.groups[i - 1].lines.last(), Some(Line::Other(l)) if l.trim().is_empty())
            {
                out.push('\n');
            }
            let _ = writeln!(out, "[{}]", g.name);
            for l in &g.lines {
                match l {
                    Line::Entry { key, value } => {
                        let _ = writeln!(out, "{key}={}", escape(value));
                    }
                    Line::Other(raw) => {
                        let _ = writeln!(out, "{raw}");
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_edit_round_trip() -> Result<(), KeyFileError> {
        let text = "# top\n[core]\nrepo_version=1\nmode=archive-z2\n\n[remote \"origin\"]\nurl=http://x/repo\n# keep me\ngpg-verify=false\n";
        let mut kf = KeyFile::parse(text)?;
        assert_eq!(kf.get("core", "mode"), Some("archive-z2"));
        assert_eq!(kf.get("remote \"origin\"", "url"), Some("http://x/repo"));
        assert_eq!(kf.get_bool("remote \"origin\"", "gpg-verify"), Ok(Some(false)));
        assert_eq!(kf.to_text(), text);
        kf.set("remote \"origin\"", "sign-verify", "true");
        kf.set("core", "mode", "bare");
        let again = KeyFile::parse(&kf.to_text())?;
        assert_eq!(again.get("core", "mode"), Some("bare"));
        assert_eq!(again.get("remote \"origin\"", "sign-verify"), Some("true"));
        assert!(again.to_text().contains("# keep me"));
        assert!(kf.remove_group("remote \"origin\""));
        assert_eq!(kf.groups().collect::<Vec<_>>(), vec!["core"]);
        Ok(())
    }

    #[test]
    fn escapes_and_errors() {
        let mut kf = KeyFile::new();
        kf.set("g", "k", " lead\\back\nline");
        let back = KeyFile::parse(&kf.to_text()).expect("own output parses");
        assert_eq!(back.get("g", "k"), Some(" lead\\back\nline"));
        for bad in ["k=v\n", "[g\n", "[g]\nnovalue\n", "[g]\n=v\n"] {
            assert!(KeyFile::parse(bad).is_err(), "{bad:?}");
        }
    }
}
