//! Package changes between two commits, for `upgrade --preview`: read from
//! the dpkg database in the trees (`var/lib/dpkg/status`). Trees with an
//! rpm database (sqlite or Berkeley DB) are not read; the preview then
//! lists files only.

use std::collections::BTreeMap;

use anyhow::Result;
use repo_format::Checksum;

use crate::repo::Repo;

/// Where dpkg keeps its database in a tree.
const DPKG_STATUS: &str = "var/lib/dpkg/status";
/// Largest status file read (Debian's with ~3000 packages is ~3 MiB).
const MAX_STATUS: u64 = 64 << 20;

/// One package that changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PackageChange {
    /// Package name (with `:arch` when not the main architecture).
    pub name: String,
    /// Version before (absent: added).
    pub old: Option<String>,
    /// Version after (absent: removed).
    pub new: Option<String>,
}

/// Installed packages and versions from a dpkg status file.
pub fn parse_dpkg_status(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for para in text.split("\n\n") {
        let (mut name, mut version, mut arch, mut installed) = (None, None, None, false);
        for line in para.lines() {
            if let Some(v) = line.strip_prefix("Package: ") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Version: ") {
                version = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Architecture: ") {
                arch = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Status: ") {
                installed = v.trim().ends_with(" installed");
            }
        }
        if let (Some(n), Some(v), true) = (name, version, installed) {
            let key = match arch {
                Some(a) if a != "all" && out.contains_key(n) => format!("{n}:{a}"),
                _ => n.to_owned(),
            };
            out.insert(key, v.to_owned());
        }
    }
    out
}

/// The installed packages of `commit`, if its tree has a dpkg database.
pub fn dpkg_packages(repo: &Repo, commit: &Checksum) -> Result<Option<BTreeMap<String, String>>> {
    Ok(repo.read_tree_file(commit, DPKG_STATUS, MAX_STATUS)?.map(|d| parse_dpkg_status(&String::from_utf8_lossy(&d))))
}

/// Packages added, removed or changed from `old` to `new`.
pub fn diff(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<PackageChange> {
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| old.get(*n) != new.get(*n))
        .map(|n| PackageChange { name: n.clone(), old: old.get(n).cloned(), new: new.get(n).cloned() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_diff() {
        let a = "Package: curl\nStatus: install ok installed\nVersion: 7.88.1-10\nArchitecture: amd64\n\nPackage: jq\nStatus: deinstall ok config-files\nVersion: 1.6\n\nPackage: less\nStatus: install ok installed\nVersion: 590-2\n";
        let b = "Package: curl\nStatus: install ok installed\nVersion: 7.88.1-11\nArchitecture: amd64\n\nPackage: jq\nStatus: install ok installed\nVersion: 1.6-2\n";
        let (pa, pb) = (parse_dpkg_status(a), parse_dpkg_status(b));
        assert_eq!(pa.len(), 2, "{pa:?}");
        let d = diff(&pa, &pb);
        assert_eq!(
            d,
            vec![
                PackageChange { name: "curl".into(), old: Some("7.88.1-10".into()), new: Some("7.88.1-11".into()) },
                PackageChange { name: "jq".into(), old: None, new: Some("1.6-2".into()) },
                PackageChange { name: "less".into(), old: Some("590-2".into()), new: None },
            ]
        );
    }
}
