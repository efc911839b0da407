//! The GRUB backend against GRUB's own tools, as oracles (Debian 12, GRUB 2.06):
//! - `grub-editenv` (package `grub-common`): every edit of an environment block gives the bytes
//!   it gives, in both directions (it edits what we wrote, we parse what it wrote);
//! - `grub-script-check` (`grub-common`): every generated `grub.cfg` is valid GRUB script;
//! - `grub-emu` (`grub-emu`), with a FAT image made by `mkfs.vfat` (`dosfstools`) and `mtools`:
//!   GRUB's own interpreter runs the generated script, `search`, `load_env` and `save_env`
//!   included, boot after boot, and what it picks and writes to grubenv must be what
//!   `GrubConfig::simulate_boot` says.
//!
//! A missing tool fails the test and names the package to install.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use bootloader::grub::{self, EntryId, GrubConfig, MenuEntry, Pending, Search, Settings};
use bootloader::grubenv::{self, ENVBLK_SIZE, Envblk};
use bootloader::{BlsEntry, Kargs};
use proptest::prelude::*;

/// Runs a tool and returns its output; a tool that cannot be started fails the test.
fn run(cmd: &mut Command, package: &str) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): install the Debian package {package}"))
}

/// Runs a tool that must succeed.
fn run_ok(cmd: &mut Command, package: &str) -> Output {
    let out = run(cmd, package);
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// A directory removed at the end of the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("bootloader-grub-{}-{name}-{n}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir is writable");
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Leftovers in the temp dir are harmless; a failed test keeps its files for a look.
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim_end_matches('#').to_owned()
}

// ---- grub-editenv -------------------------------------------------------------------------

/// Runs `grub-editenv FILE ARGS…`; `Err(stderr)` when it refuses.
fn editenv(file: &Path, args: &[&str]) -> Result<(), String> {
    let out = run(Command::new("grub-editenv").arg(file).args(args), "grub-common");
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

#[derive(Debug, Clone)]
enum Op {
    Set(String, String),
    Unset(String),
}

fn set(name: &str, value: &str) -> Op {
    Op::Set(name.to_owned(), value.to_owned())
}

/// Applies `ops` with `grub-editenv` and with [`Envblk`] in lockstep, from `grub-editenv create`
/// on. Before each step the file is rewritten from our bytes, so `grub-editenv` edits what we
/// wrote, and we parse what it wrote.
fn lockstep(ops: &[Op]) -> Envblk {
    let scratch = Scratch::new("editenv");
    let file = scratch.path("grubenv");
    editenv(&file, &["create"]).expect("grub-editenv create");
    let mut ours = Envblk::new();
    assert_eq!(show(&fs::read(&file).expect("created")), show(&ours.to_bytes()), "create");
    for op in ops {
        fs::write(&file, ours.to_bytes()).expect("write grubenv");
        let (theirs, mine) = match op {
            Op::Set(name, value) => (editenv(&file, &["set", &format!("{name}={value}")]), ours.set(name, value)),
            Op::Unset(name) => (editenv(&file, &["unset", name]), {
                ours.unset(name);
                Ok(())
            }),
        };
        match (&theirs, &mine) {
            (Ok(()), Ok(())) => {}
            (Err(msg), Err(grubenv::Error::TooLarge { .. })) => {
                assert!(msg.contains("environment block too small"), "{op:?}: {msg}")
            }
            _ => panic!("{op:?}: grub-editenv gave {theirs:?}, we gave {mine:?}"),
        }
        let bytes = fs::read(&file).expect("read grubenv");
        assert_eq!(bytes.len(), ENVBLK_SIZE);
        assert_eq!(show(&bytes), show(&ours.to_bytes()), "{op:?}");
        assert_eq!(bytes.as_slice(), ours.to_bytes().as_slice(), "{op:?}: padding");
        assert_eq!(Envblk::parse(&bytes).as_ref(), Ok(&ours), "{op:?}: parse of grub-editenv's block");
    }
    ours
}

#[test]
fn editenv_create_is_envblk_new() {
    let scratch = Scratch::new("create");
    let file = scratch.path("grubenv");
    editenv(&file, &["create"]).expect("grub-editenv create");
    let bytes = fs::read(&file).expect("created");
    assert_eq!(bytes.as_slice(), Envblk::new().to_bytes().as_slice());
    assert_eq!(Envblk::parse(&bytes), Ok(Envblk::new()));
}

#[test]
fn editenv_edits_give_the_same_bytes() {
    let ops = [
        set("a", "x y"),
        set("b", "e=f=g"),
        set("c", r"back\slash\"),
        set("d", "two\nlines\n"),
        set("e", ""),
        set("f", "#not a comment"),
        set("g", "quotes ' \" and $dollar"),
        set("h", "ünïcödé"),
        set("i", "\\\n\\\n"),
        set("a", "a much longer value than before, which moves what follows"),
        set("c", "short"),
        Op::Unset("b".into()),
        Op::Unset("b".into()),
        Op::Unset("nothing".into()),
        set("b", "back at the end"),
        Op::Unset("a".into()),
        set("name with spaces", "ok"),
        set(r"name\with\backslashes", "ok"),
        set("photon_attempt_id", "photon-sample-c7ed.0"),
        set("photon_attempts", "1"),
        set("photon_attempts", "2"),
    ];
    let env = lockstep(&ops);
    assert_eq!(env.get("d"), Some("two\nlines\n"));
    assert_eq!(env.get("c"), Some("short"));
    assert_eq!(env.get("b"), Some("back at the end"));
}

#[test]
fn editenv_agrees_on_the_full_block() {
    let free = Envblk::new().free_space();
    // "a=" + value + "\n" takes the whole padding; then nothing more fits.
    let exact = "x".repeat(free - 3);
    let env = lockstep(&[
        set("a", &exact),
        set("b", ""),
        set("a", &format!("{exact}y")),
        set("a", &format!("{}\\", &exact[1..])),
        set("a", &format!("{}\n\\", &exact[2..])),
        set("a", &format!("{}\n", &exact[1..])),
        set("a", &exact),
    ]);
    assert_eq!(env.free_space(), 0);
    // From full to empty and back: the freed bytes become '#' again.
    let env = lockstep(&[set("a", &exact), Op::Unset("a".into()), set("b", "1"), set("c", &"z".repeat(free - 7))]);
    assert_eq!(env.free_space(), 0);
}

#[test]
fn editenv_lists_our_values() {
    let scratch = Scratch::new("list");
    let file = scratch.path("grubenv");
    let mut env = Envblk::new();
    for (name, value) in [("a", "1"), ("b", "x=y z"), ("c", r"a\b"), ("d", "l1\nl2"), ("e", "")] {
        env.set(name, value).expect("fits");
    }
    fs::write(&file, env.to_bytes()).expect("write grubenv");
    let out = run_ok(Command::new("grub-editenv").arg(&file).arg("list"), "grub-common");
    let want: String = env.vars().map(|(n, v)| format!("{n}={v}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let name = prop::sample::select(vec!["a", "b", "photon_attempts", "x y"]);
    prop_oneof![
        4 => (name.clone(), "[a\\\\\n= #'\"ü$]{0,40}").prop_map(|(n, v)| Op::Set(n.to_owned(), v)),
        1 => (name.clone(), 0usize..1000).prop_map(|(n, len)| Op::Set(n.to_owned(), "v".repeat(len))),
        2 => name.prop_map(|n| Op::Unset(n.to_owned())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn editenv_agrees_on_random_edits(ops in prop::collection::vec(op_strategy(), 1..10)) {
        lockstep(&ops);
    }
}

// ---- grub-script-check --------------------------------------------------------------------

/// Runs `grub-script-check` on a script; `Err(output)` when it refuses.
fn script_check(text: &str) -> Result<(), String> {
    let mut child = Command::new("grub-script-check")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run grub-script-check ({e}): install the Debian package grub-common"));
    child.stdin.take().expect("piped stdin").write_all(text.as_bytes()).expect("write script");
    let out = child.wait_with_output().expect("grub-script-check runs");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

const CSUM_A: &str = "c7ed75e837255175cd215f2166ee652fdd4b3eb269cc13826d39a77e988530e4";
const CSUM_B: &str = "c0620b9508ecec86a0e4100899143c4993de648e45606d81edcf1313d67fa1c6";

fn id(s: &str) -> EntryId {
    EntryId::new(s).expect("valid id")
}

fn entry(id_: &str, title: &str, options: &str) -> MenuEntry {
    let kargs = Kargs::parse(options).expect("valid kargs");
    MenuEntry::new(id(id_), title, "/photon/k", &["/photon/i1", "/photon/i2"], &kargs).expect("valid entry")
}

/// Menus of every shape: with and without a pending entry, every number of tries, hostile
/// titles and arguments, every kind of search.
fn configs() -> Vec<GrubConfig> {
    let a = format!("photon-sample-{CSUM_A}.0");
    let b = format!("photon-sample-{CSUM_B}.0");
    let golden = |text: &str, i: &str| {
        MenuEntry::from_bls(id(i), &BlsEntry::parse(text).expect("golden entry")).expect("valid entry")
    };
    let real = vec![
        golden(include_str!("fixtures/ostree-entries/a/ostree-2-sample.conf"), &a),
        golden(include_str!("fixtures/ostree-entries/a/ostree-1-sample.conf"), &b),
    ];
    let hostile = vec![
        entry("h.1", r#"It's "new"; $root {x} # not a comment"#, r#"a="b c" "d=e f" g=$x h=; i=# j=*"#),
        entry("h-2", "multi word title with 'quotes'", "quiet"),
        entry("h_3", "'", ""),
    ];
    let pending = |p: &str, f: &str| Some(Pending { id: id(p), fallback: id(f) });
    let mut out = Vec::new();
    for tries in 1..=grub::MAX_TRIES {
        let settings = Settings { tries, ..Settings::new(Search::Label("ESP".into())) };
        out.push(GrubConfig::new(real.clone(), settings, pending(&a, &b)).expect("valid"));
    }
    let searches = [
        Search::Label("ESP".into()),
        Search::Label("my 'ESP' $x".into()),
        Search::FsUuid("ABCD-1234".into()),
        Search::FsUuid("0f2e6a8c-1d3b-4e5f-8a9b-0c1d2e3f4a5b".into()),
    ];
    for search in searches {
        let settings = Settings { timeout_secs: 0, env_file: "/EFI/my env/grubenv".into(), ..Settings::new(search) };
        out.push(GrubConfig::new(real.clone(), settings.clone(), None).expect("valid"));
        out.push(GrubConfig::new(hostile.clone(), settings.clone(), pending("h.1", "h_3")).expect("valid"));
        out.push(GrubConfig::new(hostile.clone(), settings, None).expect("valid"));
    }
    out
}

#[test]
fn every_generated_config_passes_grub_script_check() {
    // The oracle is alive: it refuses what GRUB cannot parse.
    for broken in ["if true; then\n", "echo 'unterminated\n", "menuentry 'x' {\n"] {
        assert!(script_check(broken).is_err(), "{broken:?}");
    }
    for config in configs() {
        let text = config.render();
        if let Err(out) = script_check(&text) {
            panic!("grub-script-check refused:\n{out}\n{text}");
        }
    }
}

// ---- grub-emu -----------------------------------------------------------------------------

/// The `grub.cfg` `grub-emu` starts with: it sources the generated one, prints `default`, and
/// halts before the menu.
const PRINT_DEFAULT: &str = "source GENERATED\necho \"PHOTON-DEFAULT=[$default]\"\nhalt\n";

/// A `grub.cfg` that boots the default entry at once, with `linux` and `initrd` as functions
/// (2.06's `grub-emu` has no such commands) that print each word they get, then halt.
const PRINT_WORDS: &str = r#"function linux {
  echo "CHOSEN:[$chosen]"
  echo "LINUX:[$1]"
  shift
  while [ "$#" != 0 ]; do echo "ARG:[$1]"; shift; done
}
function initrd {
  while [ "$#" != 0 ]; do echo "INITRD:[$1]"; shift; done
  halt
}
source GENERATED
set timeout=0
"#;

/// A FAT file system labelled `ESP` in an image, as the disk `(hd0)` of `grub-emu`.
struct Emu {
    scratch: Scratch,
}

impl Emu {
    fn new(name: &str) -> Emu {
        let scratch = Scratch::new(name);
        let image = scratch.path("esp.img");
        run_ok(Command::new("mkfs.vfat").arg("-C").args(["-n", "ESP"]).arg(&image).arg("2048"), "dosfstools");
        run_ok(Command::new("mmd").arg("-i").arg(&image).arg("::/grub"), "mtools");
        fs::write(scratch.path("device.map"), format!("(hd0) {}\n", image.display())).expect("write device map");
        fs::create_dir_all(scratch.path("grubdir")).expect("mkdir");
        Emu { scratch }
    }

    fn image(&self) -> PathBuf {
        self.scratch.path("esp.img")
    }

    /// Puts grubenv on the image (or takes it away).
    fn put_env(&self, env: Option<&Envblk>) {
        let local = self.scratch.path("grubenv");
        let _ = run(Command::new("mdel").arg("-i").arg(self.image()).arg("::/grub/grubenv"), "mtools");
        if let Some(env) = env {
            fs::write(&local, env.to_bytes()).expect("write grubenv");
            run_ok(Command::new("mcopy").arg("-i").arg(self.image()).arg(&local).arg("::/grub/grubenv"), "mtools");
        }
    }

    /// grubenv as GRUB left it.
    fn env_bytes(&self) -> Vec<u8> {
        let out = run_ok(Command::new("mtype").arg("-i").arg(self.image()).arg("::/grub/grubenv"), "mtools");
        out.stdout
    }

    /// Runs `grub-emu` with `wrapper` as its `grub.cfg` (`GENERATED` names the generated file);
    /// returns what it printed.
    fn run(&self, config: &GrubConfig, wrapper: &str) -> String {
        let generated = self.scratch.path("generated.cfg");
        fs::write(&generated, config.render()).expect("write generated.cfg");
        let wrapper = wrapper.replace("GENERATED", &format!("(host){}", generated.display()));
        fs::write(self.scratch.path("grubdir/grub.cfg"), wrapper).expect("write grub.cfg");
        let out = run(
            Command::new("timeout")
                .arg("20")
                .arg("grub-emu")
                .arg("-m")
                .arg(self.scratch.path("device.map"))
                .arg("-d")
                .arg(self.scratch.path("grubdir"))
                .stdin(Stdio::null()),
            "grub-emu",
        );
        String::from_utf8_lossy(&out.stdout).replace('\r', "")
    }

    /// Runs the script once; returns the `default` it chose.
    fn boot(&self, config: &GrubConfig) -> String {
        let text = self.run(config, PRINT_DEFAULT);
        let chosen = text
            .split_once("PHOTON-DEFAULT=[")
            .and_then(|(_, rest)| rest.split_once(']'))
            .map(|(default, _)| default.to_owned());
        chosen.unwrap_or_else(|| panic!("grub-emu did not run the script:\n{text}"))
    }

    /// One boot by GRUB and one by `simulate_boot`, from the same grubenv: same entry, same
    /// bytes left behind. Returns the entry.
    fn boot_matches_model(&self, config: &GrubConfig, env: &mut Envblk) -> String {
        self.put_env(Some(env));
        let before = env.clone();
        let want = config.simulate_boot(env);
        let got = self.boot(config);
        assert_eq!(got, want.as_str(), "booted with grubenv {before:?}");
        let after = self.env_bytes();
        assert_eq!(show(&after), show(&env.to_bytes()), "grubenv after booting with {before:?}");
        assert_eq!(after.as_slice(), env.to_bytes().as_slice());
        got
    }
}

fn counted(tries: u8) -> (GrubConfig, String, String) {
    let (a, b) = ("photon-os-aaaa.0", "photon-os-bbbb.0");
    let entries = vec![entry(a, "New", "quiet"), entry(b, "Old", "quiet"), entry("photon-os-cccc.0", "Older", "")];
    let settings = Settings { tries, ..Settings::new(Search::Label("ESP".into())) };
    let pending = Some(Pending { id: id(a), fallback: id(b) });
    (GrubConfig::new(entries, settings, pending).expect("valid"), a.to_owned(), b.to_owned())
}

#[test]
fn grub_emu_counts_tries_then_falls_back() {
    let emu = Emu::new("emu-count");
    for tries in [1, 3, grub::MAX_TRIES] {
        let (config, a, b) = counted(tries);
        let mut env = Envblk::new();
        let booted: Vec<String> = (0..tries + 2).map(|_| emu.boot_matches_model(&config, &mut env)).collect();
        let mut want = vec![a.clone(); usize::from(tries)];
        want.extend([b.clone(), b.clone()]);
        assert_eq!(booted, want, "{tries} tries");
    }
}

#[test]
fn grub_emu_states() {
    let emu = Emu::new("emu-states");
    let (config, a, b) = counted(3);
    let env = |vars: &[(&str, &str)]| {
        let mut env = Envblk::new();
        for (n, v) in vars {
            env.set(n, v).expect("fits");
        }
        env
    };
    // (grubenv, what GRUB boots)
    let cases = [
        (env(&[(grub::VAR_ATTEMPT_ID, "photon-os-cccc.0"), (grub::VAR_ATTEMPTS, "3")]), &a),
        (env(&[(grub::VAR_ATTEMPT_ID, &a), (grub::VAR_ATTEMPTS, "0")]), &a),
        (env(&[(grub::VAR_ATTEMPT_ID, &a), (grub::VAR_ATTEMPTS, "2")]), &a),
        (env(&[(grub::VAR_ATTEMPT_ID, &a), (grub::VAR_ATTEMPTS, "3")]), &b),
        (env(&[(grub::VAR_ATTEMPT_ID, &a), (grub::VAR_ATTEMPTS, "02")]), &b),
        (env(&[(grub::VAR_ATTEMPT_ID, &a), (grub::VAR_ATTEMPTS, "junk")]), &b),
        (env(&[(grub::VAR_ATTEMPT_ID, &a)]), &b),
        (env(&[(grub::VAR_GOOD, &a), (grub::VAR_ATTEMPT_ID, &a), (grub::VAR_ATTEMPTS, "3")]), &a),
        (env(&[(grub::VAR_GOOD, &b), (grub::VAR_ATTEMPT_ID, &a), (grub::VAR_ATTEMPTS, "1")]), &a),
        // Variables outside the whitelist cannot steer the menu.
        (env(&[("default", &b), ("root", "(hd9)"), ("photon_boot", "blessed")]), &a),
    ];
    for (mut env, want) in cases {
        let before = env.clone();
        assert_eq!(&emu.boot_matches_model(&config, &mut env), want, "{before:?}");
    }

    // Blessed during the second try: uncounted from then on.
    let mut env = Envblk::new();
    emu.boot_matches_model(&config, &mut env);
    emu.boot_matches_model(&config, &mut env);
    grub::mark_good(&mut env, &id(&a)).expect("fits");
    let blessed = env.clone();
    for _ in 0..3 {
        assert_eq!(emu.boot_matches_model(&config, &mut env), a);
    }
    assert_eq!(env, blessed);

    // Without a pending entry, the first one boots and grubenv is not touched.
    let plain = GrubConfig::new(config.entries().to_vec(), config.settings().clone(), None).expect("valid");
    let mut env = Envblk::new();
    assert_eq!(emu.boot_matches_model(&plain, &mut env), a);
    assert_eq!(env, Envblk::new());
}

#[test]
fn grub_emu_boots_the_fallback_when_the_counter_cannot_be_saved() {
    let emu = Emu::new("emu-failsafe");
    let (config, _, b) = counted(3);
    // A full block: save_env fails, so the unproven entry is not started uncounted.
    let mut full = Envblk::new();
    full.set("filler", &"x".repeat(full.free_space() - "filler=\n".len())).expect("fits exactly");
    assert_eq!(emu.boot_matches_model(&config, &mut full), b);
    // No grubenv at all: load_env and save_env fail.
    emu.put_env(None);
    assert_eq!(emu.boot(&config), b);
}

#[test]
fn grub_emu_runs_hostile_menus() {
    let emu = Emu::new("emu-hostile");
    let entries = vec![
        entry("h.1", r#"It's "new"; $root {x} # not a comment"#, r#"a="b c" g=$x h=; i=#"#),
        entry("h-2", "'", ""),
    ];
    let settings = Settings::new(Search::Label("ESP".into()));
    let config =
        GrubConfig::new(entries, settings, Some(Pending { id: id("h.1"), fallback: id("h-2") })).expect("valid");
    let mut env = Envblk::new();
    assert_eq!(emu.boot_matches_model(&config, &mut env), "h.1");
}

#[test]
fn grub_emu_passes_each_argument_as_one_word() {
    let emu = Emu::new("emu-words");
    emu.put_env(Some(&Envblk::new()));
    let kargs =
        Kargs::parse(r#"root=LABEL=root a="b c" "d=e f" g=$x h=; i=#x j=* k={} l=a|b ü=ö e="""#).expect("valid kargs");
    let hostile =
        MenuEntry::new(id("h.1"), "It's \"new\"", "/photon/my kernel", &["/i 1", "/i$2"], &kargs).expect("valid entry");
    let other = entry("h-2", "Other", "quiet");
    for pending in [None, Some(Pending { id: id("h.1"), fallback: id("h-2") })] {
        let settings = Settings::new(Search::Label("ESP".into()));
        let config = GrubConfig::new(vec![hostile.clone(), other.clone()], settings, pending).expect("valid");
        let text = emu.run(&config, PRINT_WORDS);
        // Terminal escapes may precede a tag on its line.
        let tags = ["CHOSEN:[", "LINUX:[", "ARG:[", "INITRD:["];
        let words: Vec<&str> =
            text.lines().filter_map(|l| tags.iter().filter_map(|t| l.find(t)).min().map(|i| &l[i..])).collect();
        let mut want = vec!["CHOSEN:[h.1]".to_owned(), "LINUX:[/photon/my kernel]".to_owned()];
        want.extend(hostile.kernel_args().iter().map(|a| format!("ARG:[{a}]")));
        want.extend(hostile.initrds().iter().map(|i| format!("INITRD:[{i}]")));
        assert_eq!(words, want, "{text}");
    }
    assert_eq!(hostile.kernel_args()[1..4], ["a=b c", "d=e f", "g=$x"]);
}
