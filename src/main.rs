//! The `photon-upgrade` binary: everything happens in the library.

fn main() -> std::process::ExitCode {
    photon_upgrade::cli::main()
}
