//! `photon-prepare-root [--cmdline FILE] [--run DIR] SYSROOT`: see the
//! library docs. Errors are one line on stderr, `photon-prepare-root: ...`,
//! and exit 1 (2 for a usage error), so the initramfs can drop to a shell.

#![forbid(unsafe_code)]

use std::error::Error as _;
use std::process::ExitCode;

use photon_prepare_root::args::{self, Command};

const NAME: &str = "photon-prepare-root";

fn main() -> ExitCode {
    let args = match args::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{NAME}: {e} (see --help)");
            return ExitCode::from(2);
        }
    };
    match photon_prepare_root::run(&args, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut line = format!("{NAME}: {e}");
            let mut cause = e.source();
            while let Some(c) = cause {
                line.push_str(&format!(": {c}"));
                cause = c.source();
            }
            eprintln!("{line}");
            ExitCode::FAILURE
        }
    }
}
