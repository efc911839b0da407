//! Command-line arguments, parsed by hand (no clap in an initramfs).

use std::ffi::OsString;
use std::path::PathBuf;

use thiserror::Error;

/// Where the running kernel's command line is read from by default.
pub const DEFAULT_CMDLINE: &str = "/proc/cmdline";
/// The initramfs's `/run`, which the booted system inherits (the
/// initramfs moves it into the new root before switching).
pub const DEFAULT_RUN: &str = "/run";

/// The usage text for `--help` and usage errors.
pub const USAGE: &str = "\
usage: photon-prepare-root [--cmdline FILE] [--run DIR] SYSROOT

Mounts the deployment named by ostree= on the kernel command line, below
SYSROOT (the physical root filesystem, usually /sysroot), and prints its
path for switch_root.

  --cmdline FILE  read the kernel command line from FILE (default /proc/cmdline)
  --run DIR       write the ostree-booted marker into DIR (default /run)
  -h, --help      print this help";

/// Validated arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// Where the initramfs mounted the physical root filesystem.
    pub sysroot: PathBuf,
    /// The file holding the kernel command line.
    pub cmdline: PathBuf,
    /// The directory that gets the `ostree-booted` marker.
    pub run: PathBuf,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Prepare the root.
    Run(Args),
    /// Print [`USAGE`] and exit 0.
    Help,
}

/// A command line that cannot be understood.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UsageError {
    /// An option that needs a value came last.
    #[error("option {0} needs a value")]
    MissingValue(String),
    /// An option we do not know.
    #[error("unknown option {0:?}")]
    UnknownOption(OsString),
    /// No SYSROOT argument.
    #[error("missing SYSROOT")]
    MissingSysroot,
    /// More than one positional argument.
    #[error("unexpected argument {0:?}")]
    Extra(OsString),
    /// The same option twice.
    #[error("option {0} given twice")]
    Repeated(String),
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut args = args.into_iter();
    let mut sysroot = None;
    let mut cmdline = None;
    let mut run = None;
    let mut only_positional = false;
    while let Some(arg) = args.next() {
        let text = arg.to_str().unwrap_or_default();
        if only_positional || !text.starts_with('-') || text == "-" {
            if sysroot.is_some() {
                return Err(UsageError::Extra(arg));
            }
            sysroot = Some(PathBuf::from(arg));
            continue;
        }
        let (name, inline) = match text.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(OsString::from(v))),
            _ => (text, None),
        };
        let slot = match name {
            "-h" | "--help" => return Ok(Command::Help),
            "--" => {
                only_positional = true;
                continue;
            }
            "--cmdline" => &mut cmdline,
            "--run" => &mut run,
            _ => return Err(UsageError::UnknownOption(arg)),
        };
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or_else(|| UsageError::MissingValue(name.to_owned()))?,
        };
        if slot.replace(PathBuf::from(value)).is_some() {
            return Err(UsageError::Repeated(name.to_owned()));
        }
    }
    Ok(Command::Run(Args {
        sysroot: sysroot.ok_or(UsageError::MissingSysroot)?,
        cmdline: cmdline.unwrap_or_else(|| PathBuf::from(DEFAULT_CMDLINE)),
        run: run.unwrap_or_else(|| PathBuf::from(DEFAULT_RUN)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    fn run(sysroot: &str, cmdline: &str, run: &str) -> Result<Command, UsageError> {
        Ok(Command::Run(Args { sysroot: sysroot.into(), cmdline: cmdline.into(), run: run.into() }))
    }

    #[test]
    fn table() {
        let cases: &[(&[&str], Result<Command, UsageError>)] = &[
            (&["/sysroot"], run("/sysroot", DEFAULT_CMDLINE, DEFAULT_RUN)),
            (&["--cmdline", "c", "--run", "r", "/s"], run("/s", "c", "r")),
            (&["/s", "--cmdline=c", "--run=r"], run("/s", "c", "r")),
            (&["--", "-odd"], run("-odd", DEFAULT_CMDLINE, DEFAULT_RUN)),
            (&["--help"], Ok(Command::Help)),
            (&["/s", "-h"], Ok(Command::Help)),
            (&[], Err(UsageError::MissingSysroot)),
            (&["--cmdline", "c"], Err(UsageError::MissingSysroot)),
            (&["/s", "--cmdline"], Err(UsageError::MissingValue("--cmdline".into()))),
            (&["/s", "/t"], Err(UsageError::Extra("/t".into()))),
            (&["/s", "--bogus"], Err(UsageError::UnknownOption("--bogus".into()))),
            (&["/s", "-x=1"], Err(UsageError::UnknownOption("-x=1".into()))),
            (&["/s", "--run", "a", "--run=b"], Err(UsageError::Repeated("--run".into()))),
        ];
        for (args, want) in cases {
            assert_eq!(&p(args), want, "{args:?}");
        }
    }
}
