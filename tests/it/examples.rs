//! The README's first command and the two walkthroughs in examples/ run
//! end to end (with the binary under test).

use std::process::Command;

use crate::util::*;

#[test]
fn demo_runs_end_to_end() {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo.sh"))
        .env("PU", bin())
        .env("TMPDIR", "/var/tmp")
        .output()
        .expect("run examples/demo.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for must in [
        "installed sample",
        "deployed sample",
        "is the default again",
        "good ed25519 signature",
        "none of its 1 signature(s) is from a trusted key",
        "demo finished: all steps passed",
    ] {
        assert!(
            stdout.contains(must) || String::from_utf8_lossy(&out.stderr).contains(must),
            "demo output lacks {must:?}:\n{stdout}"
        );
    }
}
