//! Result output: plain lines or one JSON document on stdout.
//!
//! # Wire format of `--json`
//!
//! Every command that prints a result with `--json` prints exactly one JSON
//! object: `{"apiVersion": "photon-upgrade/v1", "kind": KIND, ...fields}`.
//! `KIND` names the document (`Commit`, `CommitLog`, `RefList`, `TreeListing`,
//! `Diff`, `FsckReport`, `PruneReport`, `Checkout`, `RevParse`, `Repo`);
//! fields are camelCase; checksums are 64 lowercase hex digits; times are
//! seconds since the epoch. New fields may appear within v1; renames and
//! removals bump the version.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

/// Version tag of every `--json` document.
pub const API_VERSION: &str = "photon-upgrade/v1";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Doc<'a, T: Serialize> {
    api_version: &'static str,
    kind: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

/// Prints one JSON document of `kind`.
pub fn json<T: Serialize>(kind: &str, body: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &Doc { api_version: API_VERSION, kind, body })?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Prints lines to stdout; a closed pipe surfaces as an error that `main`
/// turns into exit 0.
pub fn lines<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for l in items {
        writeln!(out, "{}", l.as_ref())?;
    }
    out.flush()?;
    Ok(())
}

/// Formats seconds since the epoch as `YYYY-MM-DD HH:MM:SS +0000`.
pub fn format_time(secs: u64) -> String {
    match i64::try_from(secs).ok().and_then(|s| jiff::Timestamp::from_second(s).ok()) {
        Some(t) => t.strftime("%Y-%m-%d %H:%M:%S +0000").to_string(),
        None => format!("@{secs}"),
    }
}
