//! Boot counting with the systemd-boot backend (the partition is a plain
//! directory: this kernel has no vfat; the VM test runs it on a real ESP):
//! a new deployment is counted, the firmware's renames are replayed as
//! systemd-boot 252 does them, a failed deployment is left behind by the
//! fallback boot and recorded failed, a good one is blessed. The menu order
//! is computed with systemd-boot's rules (`bootloader::counting::sort`).

use std::fs;
use std::path::{Path, PathBuf};

use bootloader::{BlsEntry, EntryName, SortEntry, counting};

use crate::util::*;

/// Our entries on the partition: (file name, parsed).
pub fn esp_entries(esp: &Path) -> Vec<(String, BlsEntry)> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(esp.join("loader/entries")) else { return out };
    for e in rd {
        let name = e.expect("entry").file_name().to_string_lossy().into_owned();
        if !name.to_ascii_lowercase().ends_with(".conf") || name.starts_with('.') {
            continue; // systemd-boot reads only *.conf
        }
        let text = fs::read_to_string(esp.join("loader/entries").join(&name)).expect("read entry");
        out.push((name, BlsEntry::parse(&text).expect("entry parses")));
    }
    out
}

/// Checks that every entry on the partition boots a complete deployment
/// and returns the deployment systemd-boot picks (`CSUM.SERIAL`).
pub fn esp_default(root: &Path, esp: &Path, at: &str) -> String {
    let entries = esp_entries(esp);
    assert!(!entries.is_empty(), "{at}: no entry on the partition");
    let mut target = Vec::new();
    for (name, e) in &entries {
        for f in e.linux().into_iter().chain(e.initrds()) {
            assert!(esp.join(f.trim_start_matches('/')).is_file(), "{at}: {name} names {f}, missing on the partition");
        }
        let opts = e.get("options").expect("options");
        let arg = opts.split_whitespace().find_map(|w| w.strip_prefix("ostree=")).expect("ostree=");
        let dir = fs::canonicalize(root.join(arg.trim_start_matches('/')))
            .unwrap_or_else(|err| panic!("{at}: {name}: ostree={arg} dangles: {err}"));
        assert!(dir.join("usr/lib/os-release").exists(), "{at}: {name} boots an incomplete deployment");
        target.push((name.clone(), dir.file_name().expect("name").to_string_lossy().into_owned()));
    }
    let mut menu: Vec<SortEntry<'_>> = entries.iter().map(|(n, e)| SortEntry::from_bls(n, e)).collect();
    counting::sort_with(&mut menu, counting::IdStyle::WithCounter);
    let first = menu[0].file_name;
    target.iter().find(|(n, _)| n == first).expect("first entry").1.clone()
}

/// What systemd-boot does before booting a counted entry: `+L-D` → `+(L-1)-(D+1)`.
fn firmware_tries(esp: &Path, deployment: &str) {
    let dir = esp.join("loader/entries");
    for (name, _) in esp_entries(esp) {
        let n = EntryName::parse(&name).expect("name");
        if name.contains(deployment)
            && let Some(next) = n.decrement()
        {
            fs::rename(dir.join(&name), dir.join(next.file_name())).expect("rename");
        }
    }
}

fn counter_of(esp: &Path, deployment: &str) -> Option<String> {
    esp_entries(esp)
        .into_iter()
        .find(|(n, _)| n.contains(deployment))
        .and_then(|(n, _)| EntryName::parse(&n).expect("name").counter().map(|c| c.to_string()))
}

/// Runs a command on `root` as if booted into `deployment` through its entry on the partition.
fn booted(s: &Scratch, root: &Path, deployment: &str, args: &[&str]) -> Run {
    let entries = esp_entries(&root.join("boot/efi"));
    let (_, e) = entries.iter().find(|(n, _)| n.contains(deployment)).expect("an entry for it");
    booted_with(s, root, deployment, e.get("options").expect("options"), args)
}

/// Runs a command on `root` as if booted into `deployment` with kernel command line `cmdline`.
fn booted_with(s: &Scratch, root: &Path, deployment: &str, cmdline: &str, args: &[&str]) -> Run {
    let file = s.join("cmdline");
    fs::write(&file, cmdline).expect("write");
    let run = s.join("run");
    fs::create_dir_all(&run).expect("mkdir");
    let d = root.join(format!("ostree/deploy/sample/deploy/{deployment}"));
    let mut all = vec![
        "--sysroot",
        root.to_str().expect("utf-8"),
        "--booted-root",
        d.to_str().expect("utf-8"),
        "--cmdline",
        file.to_str().expect("utf-8"),
        "--run-dir",
        run.to_str().expect("utf-8"),
    ];
    all.extend_from_slice(args);
    pu(all)
}

fn boot_state(root: &Path) -> Vec<(String, String, Option<u64>)> {
    let doc: serde_json::Value =
        serde_json::from_str(&pu(["--sysroot", root.to_str().expect("utf-8"), "--json", "status"]).ok()).expect("json");
    doc["deployments"]
        .as_array()
        .expect("deployments")
        .iter()
        .map(|d| {
            (
                d["deployment"].as_str().expect("name").to_owned(),
                d["boot"]["state"].as_str().expect("state").to_owned(),
                d["boot"]["triesLeft"].as_u64(),
            )
        })
        .collect()
}

/// A build and an empty sysroot with its boot partition (a directory).
fn host(s: &Scratch) -> (Build, PathBuf, PathBuf) {
    let root = s.join("sysroot");
    let esp = root.join("boot/efi");
    fs::create_dir_all(&esp).expect("mkdir");
    (build(s), root, esp)
}

/// `install --os sample --karg root=LABEL=root --bootloader BOOTLOADER_ARGS...`.
fn install(b: &Build, root: &Path, bootloader_args: &[&str]) -> String {
    let r = root.to_str().expect("utf-8");
    let args = ["--sysroot", r, "install", "--os", "sample", "--karg", "root=LABEL=root", "--bootloader"];
    pur(&b.repo, [&args[..], bootloader_args].concat()).ok()
}

#[test]
fn systemd_boot_counts_falls_back_and_blesses() {
    require_root();
    let s = Scratch::new();
    let (b, root, esp) = host(&s);
    let r = root.to_str().expect("utf-8");
    let install = |rev: &str| install(&b, &root, &["systemd-boot", "--esp", "/boot/efi", "--boot-tries", "3", rev]);
    let (d1, d2) = (format!("{}.0", b.v1), format!("{}.0", b.v2));

    // The first deployment is good: nothing to fall back to.
    install(&b.v1);
    assert_eq!(esp_default(&root, &esp, "after install"), d1);
    assert_eq!(counter_of(&esp, &d1), None);
    assert_eq!(boot_state(&root), [(d1.clone(), "good".into(), None)]);

    // v2 is counted: three tries, and the default.
    install(&b.v2);
    assert_eq!(esp_default(&root, &esp, "after deploy"), d2);
    assert_eq!(counter_of(&esp, &d2).as_deref(), Some("+3"));
    assert_eq!(counter_of(&esp, &d1), None);
    assert_eq!(boot_state(&root)[0], (d2.clone(), "unproven".into(), Some(3)));
    // ostree reads the same boot configuration.
    let theirs = ostree(["admin", "status", &format!("--sysroot={r}")]).ok();
    assert!(theirs.find(&d2) < theirs.find(&d1), "{theirs}");

    // Three boots of v2, each failing its health checks.
    for left in [2, 1, 0] {
        firmware_tries(&esp, &d2);
        let out =
            booted(&s, &root, &d2, &["--json", "boot", "failed", "--no-reboot", "--reason", "docker.service failed"]);
        let doc: serde_json::Value = serde_json::from_str(&out.ok()).expect("json");
        assert_eq!(doc["reboot"], false, "--no-reboot: {doc}");
        assert_eq!(boot_state(&root)[0].2, Some(left));
    }
    // Spent: systemd-boot sorts it last and boots v1, whose boot is good.
    assert_eq!(esp_default(&root, &esp, "tries spent"), d1);
    let out = booted(&s, &root, &d1, &["--json", "boot", "mark-good"]).ok();
    let doc: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(doc["failed"], d2.as_str(), "{doc}");
    assert!(s.join("run/photon-upgrade/boot-good").exists());
    // v1 is the default again in the truth, in ostree's eyes, and on the partition;
    // v2 is listed failed, with why, and never retried.
    let st = boot_state(&root);
    assert_eq!(st[0], (d1.clone(), "good".into(), None));
    assert_eq!((st[1].0.as_str(), st[1].1.as_str()), (d2.as_str(), "failed"));
    let text = pu(["--sysroot", r, "status"]).ok();
    assert!(text.contains("Boot: FAILED") && text.contains("docker.service failed"), "{text}");
    let theirs = ostree(["admin", "status", &format!("--sysroot={r}")]).ok();
    assert!(theirs.find(&d1) < theirs.find(&d2), "{theirs}");
    assert_eq!(esp_default(&root, &esp, "after fallback"), d1);
    assert_eq!(counter_of(&esp, &d2).map(|c| c.starts_with("+0")), Some(true));
    // Reboots change nothing: the counted entry is spent, v1 is uncounted.
    firmware_tries(&esp, &d2);
    assert_eq!(esp_default(&root, &esp, "another reboot"), d1);
    booted(&s, &root, &d1, &["boot", "mark-good"]).ok();
    assert_eq!(boot_state(&root)[0].0, d1);

    // A good update: counted, booted once, blessed, stays the default.
    pu(["--sysroot", r, "deploy", "--os", "sample", &b.v2]).ok();
    let d3 = format!("{}.1", b.v2);
    assert_eq!(esp_default(&root, &esp, "third deploy"), d3);
    firmware_tries(&esp, &d3);
    let doc: serde_json::Value =
        serde_json::from_str(&booted(&s, &root, &d3, &["--json", "boot", "mark-good"]).ok()).expect("json");
    assert_eq!(doc["blessed"], true, "{doc}");
    assert_eq!(counter_of(&esp, &d3), None);
    for _ in 0..2 {
        firmware_tries(&esp, &d3);
        assert_eq!(esp_default(&root, &esp, "reboots after blessing"), d3);
    }
    assert_eq!(boot_state(&root)[0], (d3.clone(), "good".into(), None));
    // Only the kernels the entries name are on the partition.
    let doc: serde_json::Value = serde_json::from_str(&pu(["--sysroot", r, "--json", "status"]).ok()).expect("json");
    let mut want: Vec<String> = doc["deployments"]
        .as_array()
        .expect("deployments")
        .iter()
        .map(|d| format!("sample-{}", d["bootcsum"].as_str().expect("bootcsum")))
        .collect();
    want.sort();
    want.dedup();
    let mut have: Vec<String> = fs::read_dir(esp.join("photon"))
        .expect("kernels")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    have.sort();
    assert_eq!(have, want);
}

/// A booted host reaches its sysroot through the deployment's
/// `/ostree -> sysroot/ostree` (OSTree's layout), with the physical root
/// bound at `/sysroot` and `/boot` bound from `/sysroot/boot`. Found by the
/// VM test: every command failed there (ELOOP, symlinks are not followed
/// below the sysroot).
#[test]
fn booted_through_the_ostree_symlink() {
    require_root();
    let s = Scratch::new();
    let (b, root, esp) = host(&s);
    install(&b, &root, &["systemd-boot", "--esp", "/boot/efi", "--boot-tries", "2", &b.v1]);
    install(&b, &root, &["systemd-boot", "--esp", "/boot/efi", "--boot-tries", "2", &b.v2]);
    let d2 = format!("{}.0", b.v2);
    // The running system's root as the deployment lays it out.
    let view = s.join("view");
    let v = view.to_str().expect("utf-8");
    for d in ["sysroot", "boot"] {
        fs::create_dir_all(view.join(d)).expect("mkdir");
    }
    std::os::unix::fs::symlink("sysroot/ostree", view.join("ostree")).expect("symlink");
    let _physical = Bind::mount(&root, &view.join("sysroot"));
    // /boot is not the physical root's: refused, not silently ignored.
    let err = pu(["--sysroot", v, "status"]).error_line();
    assert!(err.contains(&format!("{v}/boot is not {v}/sysroot/boot")), "{err}");
    let _boot = Bind::mount(&root.join("boot"), &view.join("boot"));

    assert_eq!(boot_state(&view)[0], (d2.clone(), "unproven".into(), Some(2)));
    firmware_tries(&esp, &d2);
    let doc: serde_json::Value =
        serde_json::from_str(&booted(&s, &view, &d2, &["--json", "boot", "mark-good"]).ok()).expect("json");
    assert_eq!(doc["blessed"], true, "{doc}");
    assert_eq!(counter_of(&esp, &d2), None);
    assert_eq!(boot_state(&view)[0], (d2.clone(), "good".into(), None));

    // A boot partition mounted at /boot/efi only is not written behind its back.
    sh("mount", &["--make-private", &format!("{v}/boot")]).ok();
    let _esp = Tmpfs::mount(&view.join("boot/efi"), "1m");
    let err = pu(["--sysroot", v, "status"]).error_line();
    assert!(err.contains(&format!("{v}/boot/efi is not {v}/sysroot/boot/efi")), "{err}");
}

#[test]
fn mark_good_needs_a_system_booted_through_our_entries() {
    require_root();
    let s = Scratch::new();
    let b = build(&s);
    let root = s.join("sysroot");
    fs::create_dir_all(root.join("boot/efi")).expect("mkdir");
    let r = root.to_str().expect("utf-8");
    pur(&b.repo, ["--sysroot", r, "install", "--os", "sample", "--bootloader", "systemd-boot", &b.v1]).ok();
    let cmdline = s.join("cmdline");
    fs::write(&cmdline, "root=/dev/vda2 quiet").expect("write");
    let err = pu(["--sysroot", r, "--cmdline", cmdline.to_str().expect("utf-8"), "boot", "mark-good"]).error_line();
    assert!(err.contains("not booted through") && err.contains("no ostree="), "{err}");
    // A partition that is not there is named, with what to do.
    let err = pur(
        &b.repo,
        [
            "--sysroot",
            s.join("other").to_str().expect("utf-8"),
            "install",
            "--os",
            "sample",
            "--bootloader",
            "grub",
            &b.v1,
        ],
    )
    .error_line();
    assert!(err.contains("boot/efi") && err.contains("does not exist"), "{err}");
}

/// One boot by GRUB itself (`grub-emu`): the generated `grub.cfg` on the
/// partition runs against its grubenv (on a FAT image labelled ESP, as the
/// script searches for it); grubenv comes back changed as GRUB left it.
/// Returns the id of the entry GRUB chose.
fn grub_boot(s: &Scratch, esp: &Path) -> String {
    let image = s.join("grub-esp.img");
    let img = image.to_str().expect("utf-8");
    if !image.exists() {
        sh("mkfs.vfat", &["-C", "-n", "ESP", img, "2048"]).ok();
        sh("mmd", &["-i", img, "::/grub"]).ok();
        fs::write(s.join("device.map"), format!("(hd0) {img}\n")).expect("device map");
        fs::create_dir_all(s.join("grubdir")).expect("mkdir");
    }
    let env = esp.join("grub/grubenv");
    let _ = std::process::Command::new("mdel").args(["-i", img, "::/grub/grubenv"]).status();
    sh("mcopy", &["-i", img, env.to_str().expect("utf-8"), "::/grub/grubenv"]).ok();
    let cfg = esp.join("grub/grub.cfg");
    fs::write(
        s.join("grubdir/grub.cfg"),
        format!("source (host){}\necho \"PHOTON-DEFAULT=[$default]\"\nhalt\n", cfg.display()),
    )
    .expect("write");
    let out = sh(
        "timeout",
        &[
            "20",
            "grub-emu",
            "-m",
            s.join("device.map").to_str().expect("utf-8"),
            "-d",
            s.join("grubdir").to_str().expect("utf-8"),
        ],
    );
    let text = out.stdout().replace('\r', "");
    let chosen = text
        .split_once("PHOTON-DEFAULT=[")
        .and_then(|(_, r)| r.split_once(']'))
        // grub-emu wraps its output at 80 columns.
        .map(|(d, _)| d.replace('\n', ""))
        .unwrap_or_else(|| panic!("grub-emu did not run the script:\n{text}"));
    let back = sh("mtype", &["-i", img, "::/grub/grubenv"]);
    fs::write(&env, back.out.stdout.as_slice()).expect("write grubenv");
    chosen
}

#[test]
fn grub_counts_falls_back_and_blesses() {
    require_root();
    let s = Scratch::new();
    let (b, root, esp) = host(&s);
    let r = root.to_str().expect("utf-8");
    let install = |rev: &str| install(&b, &root, &["grub", "--boot-tries", "2", "--menu-timeout", "0", rev]);
    let (d1, d2) = (format!("{}.0", b.v1), format!("{}.0", b.v2));
    let id = |d: &str| format!("photon-sample-{d}");
    install(&b.v1);
    sh("grub-script-check", &[esp.join("grub/grub.cfg").to_str().expect("utf-8")]).ok();
    assert_eq!(grub_boot(&s, &esp), id(&d1));
    install(&b.v2);
    sh("grub-script-check", &[esp.join("grub/grub.cfg").to_str().expect("utf-8")]).ok();
    assert_eq!(boot_state(&root)[0], (d2.clone(), "unproven".into(), Some(2)));
    // Two tries of v2, both failing, then GRUB falls back to v1.
    for left in [1, 0] {
        assert_eq!(grub_boot(&s, &esp), id(&d2));
        assert_eq!(boot_state(&root)[0].2, Some(left));
    }
    assert_eq!(grub_boot(&s, &esp), id(&d1));
    let doc: serde_json::Value =
        serde_json::from_str(&booted_grub(&s, &root, &d1, &["--json", "boot", "mark-good"]).ok()).expect("json");
    assert_eq!(doc["failed"], d2.as_str(), "{doc}");
    let st = boot_state(&root);
    assert_eq!((st[0].0.as_str(), st[1].0.as_str(), st[1].1.as_str()), (d1.as_str(), d2.as_str(), "failed"));
    for _ in 0..2 {
        assert_eq!(grub_boot(&s, &esp), id(&d1), "v1 stays the default");
    }
    // A good update: one try, blessed, then booted uncounted.
    pu(["--sysroot", r, "deploy", "--os", "sample", &b.v2]).ok();
    let d3 = format!("{}.1", b.v2);
    assert_eq!(grub_boot(&s, &esp), id(&d3));
    let doc: serde_json::Value =
        serde_json::from_str(&booted_grub(&s, &root, &d3, &["--json", "boot", "mark-good"]).ok()).expect("json");
    assert_eq!(doc["blessed"], true, "{doc}");
    for _ in 0..3 {
        assert_eq!(grub_boot(&s, &esp), id(&d3), "blessed: booted every time");
    }
    assert_eq!(boot_state(&root)[0], (d3.clone(), "good".into(), None));
}

/// As [`booted`], with the command line of the truth's entry (GRUB's menu
/// carries the same options).
fn booted_grub(s: &Scratch, root: &Path, deployment: &str, args: &[&str]) -> Run {
    let doc: serde_json::Value =
        serde_json::from_str(&pu(["--sysroot", root.to_str().expect("utf-8"), "--json", "status"]).ok()).expect("json");
    let d = doc["deployments"]
        .as_array()
        .expect("deployments")
        .iter()
        .find(|d| d["deployment"] == deployment)
        .expect("deployment")
        .clone();
    let bootlink =
        format!("ostree=/ostree/boot.{}/sample/{}/0", doc["bootversion"], d["bootcsum"].as_str().expect("bootcsum"));
    booted_with(s, root, deployment, &format!("{} {bootlink}", d["kargs"].as_str().expect("kargs")), args)
}

/// `boot check-health` runs the checks, keeps the report in the
/// stateroot's /var, and `boot failed` records its summary as the reason.
#[test]
fn health_checks_decide_and_explain_a_failed_boot() {
    require_root();
    let s = Scratch::new();
    let (b, root, _esp) = host(&s);
    install(&b, &root, &["systemd-boot", &b.v1]);
    install(&b, &root, &["systemd-boot", &b.v2]);
    let d2 = format!("{}.0", b.v2);
    let checks = s.join("health.d");
    fs::create_dir_all(&checks).expect("mkdir");
    let script = checks.join("50-docker");
    fs::write(&script, "#!/bin/sh\necho 'docker.service is not running' >&2\nexit 3\n").expect("write");
    sh("chmod", &["0755", script.to_str().expect("utf-8")]).ok();
    let c = checks.to_str().expect("utf-8");
    let err = booted(&s, &root, &d2, &["boot", "check-health", "--check-dir", c]).error_line();
    assert!(err.contains("health checks failed") && err.contains("50-docker"), "{err}");
    let reports = root.join(format!("ostree/deploy/sample/var/lib/photon-upgrade/health/{d2}"));
    assert_eq!(fs::read_dir(&reports).expect("reports").count(), 1);
    booted(&s, &root, &d2, &["boot", "failed", "--no-reboot"]).ok();
    let text = pu(["--sysroot", root.to_str().expect("utf-8"), "boot", "status"]).ok();
    assert!(text.contains("unproven") && text.contains("50-docker"), "{text}");
    // A passing run is reported and the command succeeds.
    fs::write(&script, "#!/bin/sh\nexit 0\n").expect("write");
    booted(&s, &root, &d2, &["boot", "check-health", "--check-dir", c]).ok();
    assert_eq!(fs::read_dir(&reports).expect("reports").count(), 2);
    // Cleanup removes the reports of a deployment it removes: two more
    // deploys push v2 out of the retained pair.
    for _ in 0..2 {
        pu(["--sysroot", root.to_str().expect("utf-8"), "deploy", "--os", "sample", &b.v1]).ok();
    }
    assert!(!reports.exists(), "reports of an undeployed deployment stay behind");
}
