#!/usr/bin/env bash
# Installs what the test suite needs on Debian 12, then runs it.
# Run as root: the suite makes bare repositories and files owned by other
# users, as a real host does. Everything it starts, it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
[ "$(id -u)" = 0 ] || { echo "error: run as root, e.g. sudo env PATH=\"\$PATH\" $0" >&2; exit 1; }

# The real ostree is the oracle; nginx is the static web server pulls are
# tested against; strace injects crashes; attr, zstd, tar, openssl build
# fixtures; build-essential builds the fuzzers (libFuzzer is C++).
pkgs=(ostree nginx-light strace attr zstd tar openssl build-essential dosfstools mtools grub-common grub-emu busybox-static)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The package starts a system nginx on port 80; tests start their own.
  if [[ " ${missing[*]} " == *" nginx-light "* ]]; then service nginx stop >/dev/null 2>&1 || true; fi
fi

# Debian's ostree cannot do ed25519: build one from Debian's source package
# (cached under /var/tmp; about 2.5 minutes the first time).
OSTREE_ED25519=$(tests/build-ostree-ed25519.sh)
export OSTREE_ED25519

cargo test --workspace --locked "$@"

# Fuzz smoke: replay the committed crash inputs, then fuzz every parser
# for a few seconds (nightly toolchain and cargo-fuzz, installed if absent).
# FUZZ_SECONDS=0 skips it.
secs=${FUZZ_SECONDS:-10}
if [ "$secs" != 0 ] && ! command -v rustup >/dev/null; then
  echo "skipping the fuzz smoke: it needs rustup for a nightly toolchain" >&2
elif [ "$secs" != 0 ]; then
  rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
  command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
  repo-format/fuzz/smoke.sh "$secs"
fi

# The VM boot test (tests/vm/README.md): a disk image booted in QEMU with
# systemd-boot, then with GRUB; an update whose health check fails is left
# behind by the firmware, a good one is blessed. VM=0 skips it.
if [ "${VM:-1}" = 0 ]; then
  echo "VM test: skipped (VM=0)"
else
  vm_start=$SECONDS
  if tests/vm/run.sh all; then
    echo "VM test: PASSED in $((SECONDS - vm_start)) s"
  else
    echo "VM test: FAILED after $((SECONDS - vm_start)) s (serial logs: /var/tmp/pu-vm-logs/; tests/vm/README.md says how to read them)" >&2
    exit 1
  fi
fi
