//! Hostile and broken inputs: each must give one clear error line, exit 1,
//! and leave the mount table as it was.

use std::fs;

use crate::util::{CSUM, Fixture, OS, bootlink, ln, mkdir, write};

/// A case: a name, what to break in a fresh fixture, and a part of the
/// expected error line (`{sysroot}`, `{deploy}`, `{run}` and `{scratch}`
/// are replaced by the fixture's paths).
type Case = (&'static str, fn(&Fixture), &'static str);

const CASES: &[Case] = &[
    (
        "no-ostree",
        |fx| fx.set_cmdline("root=LABEL=root rw quiet\n"),
        ": no ostree= argument on the kernel command line",
    ),
    (
        "two-ostree",
        |fx| fx.set_cmdline(&format!("ostree={} quiet ostree=/ostree/boot.0/x/y/0\n", bootlink())),
        "the kernel command line has 2 ostree= arguments",
    ),
    (
        "not-ostree",
        |fx| fx.set_cmdline(&format!("xostree={} ostree_x=/a\n", bootlink())),
        ": no ostree= argument on the kernel command line",
    ),
    ("empty-ostree", |fx| fx.set_cmdline("ostree= quiet\n"), "has no value"),
    (
        "no-cmdline",
        |fx| fs::remove_file(&fx.cmdline).expect("rm cmdline"),
        "cannot read the kernel command line {scratch}/cmdline: No such file or directory",
    ),
    (
        "no-sysroot",
        |fx| fs::rename(&fx.sysroot, fx.scratch.path().join("elsewhere")).expect("mv sysroot"),
        "cannot open the sysroot {sysroot}: No such file or directory",
    ),
    // An absolute link is resolved as if SYSROOT were `/`: this names
    // SYSROOT/etc, never the initramfs's /etc.
    (
        "absolute-etc",
        |fx| {
            mkdir(&fx.sysroot.join("etc"));
            fx.set_bootlink("/etc");
        },
        "resolves to {sysroot}/etc, which is not a deployment directory",
    ),
    // ... and a valid deployment outside SYSROOT, named absolutely, is
    // looked for inside it.
    (
        "absolute-outside",
        |fx| {
            let outside = outside_deployment(fx);
            fx.set_bootlink(outside.to_str().expect("utf-8 path"));
        },
        "cannot resolve it beneath {sysroot} (a bootlink or the deployment is missing)",
    ),
    // `..` stops at SYSROOT.
    (
        "dotdot-root",
        |fx| fx.set_bootlink("../../../../../../../../.."),
        "resolves to {sysroot}, which is not a deployment directory",
    ),
    (
        "dotdot-outside",
        |fx| {
            outside_deployment(fx);
            fx.set_bootlink(&format!("../../../../../outside/ostree/deploy/{OS}/deploy/{CSUM}.0"));
        },
        "cannot resolve it beneath {sysroot}",
    ),
    (
        "dangling",
        |fx| fx.set_bootlink("../../../deploy/photon/deploy/nothing"),
        "(a bootlink or the deployment is missing)",
    ),
    ("loop", |fx| fx.set_bootlink("0"), "Too many levels of symbolic links"),
    (
        "file",
        |fx| {
            write(&fx.sysroot.join(format!("ostree/deploy/{OS}/deploy/{CSUM}.1")), "not a directory\n");
            fx.set_bootlink(&format!("../../../deploy/{OS}/deploy/{CSUM}.1"));
        },
        "resolves to {sysroot}/ostree/deploy/photon/deploy/c7ed75e837255175cd215f2166ee652fdd4b3eb269cc13826d39a77e988530e4.1, which is not a directory",
    ),
    (
        "stateroot-var-dir",
        |fx| fx.set_bootlink(&format!("../../../deploy/{OS}/var")),
        "/ostree/deploy/photon/var, which is not a deployment directory",
    ),
    (
        "deploy-parent",
        |fx| fx.set_bootlink(&format!("../../../deploy/{OS}/deploy")),
        "which is not a deployment directory",
    ),
    (
        "inside-deployment",
        |fx| fx.set_bootlink(&format!("../../../deploy/{OS}/deploy/{CSUM}.0/usr")),
        "which is not a deployment directory",
    ),
    (
        "bad-name",
        |fx| {
            mkdir(&fx.sysroot.join(format!("ostree/deploy/{OS}/deploy/latest")));
            fx.set_bootlink(&format!("../../../deploy/{OS}/deploy/latest"));
        },
        "whose name is not CHECKSUM.SERIAL",
    ),
    (
        "repo-not-deploy",
        |fx| {
            mkdir(&fx.sysroot.join(format!("ostree/repo/{OS}/deploy/{CSUM}.0")));
            fx.set_bootlink(&format!("../../../repo/{OS}/deploy/{CSUM}.0"));
        },
        "which is not a deployment directory",
    ),
    (
        "no-stateroot-var",
        |fx| fs::remove_dir_all(fx.stateroot_var()).expect("rm var"),
        "cannot find stateroot /var {sysroot}/ostree/deploy/photon/var: No such file or directory",
    ),
    (
        "stateroot-var-symlink",
        |fx| {
            fs::remove_dir_all(fx.stateroot_var()).expect("rm var");
            ln("/", &fx.stateroot_var());
        },
        "stateroot /var {sysroot}/ostree/deploy/photon/var is a symlink, not a directory",
    ),
    (
        "deploy-var-symlink",
        |fx| {
            fs::remove_dir(fx.deploy.join("var")).expect("rm deploy var");
            ln("/", &fx.deploy.join("var"));
        },
        "deployment /var {deploy}/var is a symlink, not a directory",
    ),
    (
        "no-deploy-sysroot",
        |fx| fs::remove_dir(fx.deploy.join("sysroot")).expect("rm deploy sysroot"),
        "cannot find deployment /sysroot {deploy}/sysroot: No such file or directory",
    ),
    (
        "no-deploy-usr",
        |fx| fs::remove_dir_all(fx.deploy.join("usr")).expect("rm usr"),
        "cannot find deployment /usr {deploy}/usr",
    ),
    (
        "already-booted",
        |fx| write(&fx.run.join("ostree-booted"), ""),
        "{run}/ostree-booted exists: this system is already booted into a deployment",
    ),
    ("no-run", |fx| fs::remove_dir(&fx.run).expect("rm run"), "cannot find run directory {run}"),
];

/// A complete, valid deployment next to SYSROOT (not under it).
fn outside_deployment(fx: &Fixture) -> std::path::PathBuf {
    let dir = fx.scratch.path().join(format!("outside/ostree/deploy/{OS}/deploy/{CSUM}.0"));
    for sub in ["usr", "etc", "var", "sysroot"] {
        mkdir(&dir.join(sub));
    }
    mkdir(&fx.scratch.path().join(format!("outside/ostree/deploy/{OS}/var")));
    dir
}

#[test]
fn hostile_inputs_fail_cleanly() {
    for (name, breakit, want) in CASES {
        let fx = Fixture::new(&format!("hostile-{name}"));
        breakit(&fx);
        let want = want
            .replace("{sysroot}", &fx.sysroot.display().to_string())
            .replace("{deploy}", &fx.deploy.display().to_string())
            .replace("{run}", &fx.run.display().to_string())
            .replace("{scratch}", &fx.scratch.path().display().to_string());
        let outcome = fx.run_in_namespace("", 1, "");
        let run = &outcome.runs[0];
        eprintln!("{name}: {}", run.stderr.trim_end());
        run.assert_clean_failure(&want);
        let marker = fx.run.join("ostree-booted");
        assert_eq!(marker.exists(), *name == "already-booted", "{name}: the marker is written only on success");
    }
}
