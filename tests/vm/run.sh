#!/usr/bin/env bash
# tests/vm/run.sh [systemd-boot|grub|all]   (default: all)
#
# Boots a photon-upgrade host in QEMU (OVMF, the real bootloader, Debian's
# kernel, our busybox initramfs, systemd with our units) and proves the
# automatic fallback: a deployed update whose health check fails is
# rebooted by our units until its tries run out, the firmware boots the
# previous deployment again, which records the update failed; a good
# update is blessed and stays. See tests/vm/README.md.
#
# Run as root. Exit 0 only if every scenario passed. Environment:
#   PU_VM_BIN_DIR   directory with photon-upgrade and photon-prepare-root
#                   (default: build them, cargo build --release)
#   PU_VM_TIMEOUT   seconds one bootloader's scenario may take (default 900)
#   PU_VM_STALL     seconds without serial output that count as a hang (default 300)
#   PU_VM_ACCEL     kvm or tcg to skip the probe
#   PU_VM_CACHE     cache directory (default /var/tmp/pu-vm-cache)
#   PU_VM_LOGS      where serial logs are kept (default /var/tmp/pu-vm-logs)
#   PU_VM_MIRROR    Debian mirror for debootstrap (default: the apt source's)
#   PU_VM_KEEP      set: keep the final disk images in the log directory
#                   (the ESP alone is always kept when a scenario fails)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
export MTOOLS_SKIP_CHECK=1

die() {
  echo "VM TEST FAILED: $*" >&2
  exit 1
}
note() { echo "== $*"; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, mkfs -d with owners, chattr)"
case ${1:-all} in
all) bootloaders=(systemd-boot grub) ;;
systemd-boot | grub) bootloaders=("$1") ;;
*)
  echo "usage: $0 [systemd-boot|grub|all]" >&2
  exit 2
  ;;
esac

cache=${PU_VM_CACHE:-/var/tmp/pu-vm-cache}
vm_timeout=${PU_VM_TIMEOUT:-900}
# The longest silence of a good run is a boot's userspace, well under a
# minute even on a busy host; the guest driver itself gives up on b after
# 240 s. A hang (the firmware, a bootloader) is cut short after this.
stall=${PU_VM_STALL:-300}
run_id=$(date +%Y%m%d-%H%M%S)-$$
logs=${PU_VM_LOGS:-/var/tmp/pu-vm-logs}/$run_id
mkdir -p "$cache" "$logs"
tmp=$(mktemp -d /var/tmp/pu-vm.XXXXXX)
qemu_pid=
cleanup() {
  [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
t_start=$SECONDS

# ---------------------------------------------------------------- packages
pkgs=(qemu-system-x86 ovmf systemd-boot-efi grub-efi-amd64-bin linux-image-amd64 busybox-static
  mtools dosfstools fdisk debootstrap e2fsprogs)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  note "installing ${missing[*]}"
  apt-get update -qq -o DPkg::Lock::Timeout=600
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
fi
# The kernel linux-image-amd64 points at.
kpkg=$(dpkg-query -W -f='${Depends}' linux-image-amd64 | grep -o 'linux-image-[^ ,]*' | head -n 1)
kver=${kpkg#linux-image-}
[ -f "/boot/vmlinuz-$kver" ] || die "/boot/vmlinuz-$kver missing ($kpkg)"

# ---------------------------------------------------------------- binaries
if [ -n "${PU_VM_BIN_DIR:-}" ]; then
  bindir=$PU_VM_BIN_DIR
else
  note "building (cargo build --release)"
  (cd "$src" && cargo build --release --locked -q -p photon-upgrade -p photon-prepare-root)
  bindir=${CARGO_TARGET_DIR:-$src/target}/release
fi
for b in photon-upgrade photon-prepare-root; do
  [ -x "$bindir/$b" ] || die "$bindir/$b missing (PU_VM_BIN_DIR?)"
done

# ---------------------------------------------------------------- cache
# Guarded by a lock: two runs share one cache.
exec 9>"$cache/lock"
flock 9
sha() { sha256sum | cut -c1-16; }

# The Debian base: debootstrap from the apt mirror (about a minute).
mirror=${PU_VM_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}
# jq: the guest driver reads `status --json`. No ca-certificates: the
# update disk is a file:/// remote, which needs none.
include=systemd,systemd-sysv,udev,kmod,util-linux,e2fsprogs,jq
base_key=$(echo "base v1 bookworm minbase $include $mirror" | sha)
base=$cache/base-$base_key
if [ ! -e "$base/.complete" ]; then
  note "debootstrap bookworm from $mirror (cached as $base)"
  rm -rf "$cache"/base-*
  t0=$SECONDS
  debootstrap --variant=minbase --include="$include" bookworm "$base" "$mirror" >"$logs/debootstrap.log" 2>&1 ||
    die "debootstrap failed; see $logs/debootstrap.log"
  touch "$base/.complete"
  echo "   debootstrap: $((SECONDS - t0)) s"
fi

# Images: keyed by everything that goes into them.
img_key=$(
  {
    echo "$base_key $kver"
    cat "$bindir/photon-upgrade" "$bindir/photon-prepare-root" "/boot/vmlinuz-$kver" /bin/busybox \
      /usr/lib/systemd/boot/efi/systemd-bootx64.efi
    dpkg-query -W -f='${Version}' grub-efi-amd64-bin
    cat "$here"/build-images.sh "$here"/mkinitramfs.sh "$here"/guest/* \
      "$src"/systemd/*.service "$src"/systemd/*.timer "$src"/systemd/*.path "$src"/systemd/*.preset \
      "$src/prepare-root/initramfs/busybox/init"
  } | sha
)
images=$cache/images-$img_key
if [ ! -e "$images/.complete" ]; then
  note "building the images (cached as $images)"
  for old in "$cache"/images-*; do
    [ -e "$old" ] || continue
    find "$old" -path '*/ostree/deploy/*/deploy/*' -prune -exec chattr -i {} + 2>/dev/null || true
    rm -rf "$old"
  done
  t0=$SECONDS
  mkdir -p "$images"
  "$here/build-images.sh" "$base" "$bindir" "$kver" "$images" 2>&1 | tee "$logs/build-images.log" ||
    die "building the images failed; see $logs/build-images.log"
  touch "$images/.complete"
  echo "   images: $((SECONDS - t0)) s"
fi
flock -u 9
csum() { "$bindir/photon-upgrade" --repo "$images/repo" repo rev-parse "$1"; }
csum_a=$(csum os/a) csum_b=$(csum os/b) csum_c=$(csum os/c)

# ---------------------------------------------------------------- accel
# KVM here may be a paravirtual kvm-pvm that hangs real firmware
# (research/qemu-boot.md): use it only if a marker boot works.
accel=${PU_VM_ACCEL:-}
if [ -z "$accel" ]; then
  accel=tcg
  if [ -e /dev/kvm ] && grep -qE 'vmx|svm' /proc/cpuinfo; then
    d=$tmp/probe
    mkdir -p "$d/bin" "$d/dev"
    cp /bin/busybox "$d/bin/busybox"
    ln -s busybox "$d/bin/sh"
    mknod -m 600 "$d/dev/console" c 5 1
    printf '#!/bin/busybox sh\n/bin/busybox echo PU-KVM-PROBE-OK\n/bin/busybox poweroff -f\n' >"$d/init"
    chmod 755 "$d/init"
    (cd "$d" && find . | cpio -o -H newc --quiet | gzip -1) >"$tmp/probe.gz"
    if timeout 20 qemu-system-x86_64 -accel kvm -m 256 -kernel "/boot/vmlinuz-$kver" -initrd "$tmp/probe.gz" \
      -append "console=ttyS0 panic=-1 quiet" -nographic -no-reboot -nic none </dev/null 2>&1 |
      grep -q PU-KVM-PROBE-OK; then
      accel=kvm
    fi
  fi
fi
note "accelerator: $accel"

# ---------------------------------------------------------------- one VM
# Markers (tests/vm/guest/vmtest.sh): "VMTEST boot n=N booted=V ...",
# "VMTEST step=N ...", "VMTEST FAIL ...", "VMTEST DONE".
markers() { tr -d '\r' <"$1" | grep -ao 'VMTEST [^[:cntrl:]]*' || true; }

# build-images.sh's layout: the ESP starts 1 MiB in and is 64 MiB long.
esp_mib=64
results=()
run_bootloader() {
  local bl=$1
  local log=$logs/serial-$bl.log disk=$tmp/disk-$bl.img vars=$tmp/vars-$bl.fd
  local t0=$SECONDS seen=0 why='' rc size last_size=-1 last_output=$SECONDS
  cp --sparse=always "$images/disk-$bl.img" "$disk"
  cp /usr/share/OVMF/OVMF_VARS.fd "$vars"
  : >"$log"
  note "$bl: booting (serial log: $log)"
  # One QEMU for the whole scenario: the guest's reboots are real resets.
  timeout "$vm_timeout" qemu-system-x86_64 -accel "$accel" -m 1024 -smp 2 \
    -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd \
    -drive if=pflash,format=raw,file="$vars" \
    -drive if=virtio,format=raw,file="$disk" \
    -drive if=virtio,format=raw,readonly=on,file="$images/updates.img" \
    -nic none -display none -monitor none -serial file:"$log" </dev/null &
  qemu_pid=$!
  # Watch the log: print markers as they come (with the host's time), and
  # stop early on what can never recover.
  while kill -0 "$qemu_pid" 2>/dev/null; do
    sleep 1
    mapfile -t m < <(markers "$log")
    while [ "$seen" -lt "${#m[@]}" ]; do
      printf '   %4d s  %s\n' $((SECONDS - t0)) "${m[$seen]}"
      seen=$((seen + 1))
    done
    why=$(tr -d '\r' <"$log" | grep -aoE 'VMTEST FAIL.*|PHOTON-PREPARE-ROOT-FAILED.*|Kernel panic.*|You are in emergency mode.*|Welcome to emergency mode.*' | head -n 1 || true)
    if [ -n "$why" ]; then
      sleep 3
      kill "$qemu_pid" 2>/dev/null || true
      break
    fi
    if [ "$(markers "$log" | grep -c 'VMTEST boot ')" -gt 10 ]; then
      why="more than 10 boots"
      kill "$qemu_pid" 2>/dev/null || true
      break
    fi
    size=$(stat -c %s "$log")
    if [ "$size" != "$last_size" ]; then
      last_size=$size last_output=$SECONDS
    elif [ $((SECONDS - last_output)) -ge "$stall" ]; then
      why="no serial output for $stall s, hung (the last lines show where)"
      kill "$qemu_pid" 2>/dev/null || true
      break
    fi
  done
  rc=0
  wait "$qemu_pid" || rc=$?
  qemu_pid=
  local secs=$((SECONDS - t0))

  # The verdict: the markers, then the ESP as the firmware left it.
  local booted expected="a b b a c c c"
  booted=$(markers "$log" | sed -n 's/^VMTEST boot n=[0-9]* booted=\([^ ]*\).*/\1/p' | tr '\n' ' ' | sed 's/ $//')
  local fail=
  if [ -n "$why" ]; then
    fail=$why
  elif [ "$rc" = 124 ]; then
    fail="timed out after $vm_timeout s"
  elif [ "$rc" != 0 ]; then
    fail="qemu exited with $rc"
  elif [ "$booted" != "$expected" ]; then
    fail="booted versions '$booted', expected '$expected'"
  fi
  if [ -z "$fail" ]; then
    for want in "step=0 booted=a .* ok" "step=0 deployed=b" "step=1 booted=a .*b:failed.* ok" \
      "step=1 deployed=c" "step=2 booted=c .* ok" "step=3 booted=c .* ok" "step=4 booted=c .* ok" "DONE"; do
      markers "$log" | grep -q "^VMTEST $want" || {
        fail="no marker 'VMTEST $want'"
        break
      }
    done
  fi
  # While b had failed and a was back: b's entry exhausted (systemd-boot).
  if [ -z "$fail" ] && [ "$bl" = systemd-boot ]; then
    markers "$log" | grep "^VMTEST step=1 booted=a" | grep -qE "photon-[0-9]+-photon-$csum_b\.0\+0(-[0-9]+)?\.conf" ||
      fail="after the fallback, b's entry was not exhausted (+0): $(markers "$log" | grep '^VMTEST step=1 booted=a')"
  fi
  [ -z "$fail" ] && fail=$(check_esp "$bl" "$disk")
  if [ -n "$fail" ] || [ -n "${PU_VM_KEEP:-}" ]; then
    # The ESP as the guest and the firmware left it (the root stays out:
    # 1.5 GB).
    dd if="$disk" of="$logs/esp-$bl.img" bs=1M skip=1 count="$esp_mib" conv=sparse status=none
    if [ -n "${PU_VM_KEEP:-}" ]; then cp --sparse=always "$disk" "$logs/disk-$bl.img"; fi
  fi
  if [ -n "$fail" ]; then
    echo "   last lines of $log:"
    tr -d '\r' <"$log" | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' | grep -av '^[[:space:]]*$' | tail -n 30 | sed 's/^/   | /'
    echo "   the ESP at the end: $logs/esp-$bl.img (mdir -i $logs/esp-$bl.img -/ ::)"
    results+=("$bl: FAILED in $secs s: $fail")
    return 1
  fi
  results+=("$bl: passed in $secs s (boots: $booted)")
}

# The final ESP, read with mtools: c's entry blessed (no counter), b gone
# or exhausted; for GRUB, c the default and nothing pending.
check_esp() {
  local bl=$1 img=$2@@1M
  if [ "$bl" = systemd-boot ]; then
    local entries
    entries=$(mdir -i "$img" -b ::/loader/entries 2>&1 | sed 's|.*/||')
    echo "   ESP entries: $(echo "$entries" | tr '\n' ' ')" >&2
    echo "$entries" | grep -qE "^photon-[0-9]+-photon-$csum_c\.0\.conf$" ||
      { echo "c's entry is not blessed on the ESP: $entries" | tr '\n' ' '; return; }
    echo "$entries" | grep -qE "^photon-[0-9]+-photon-$csum_a\.0\.conf$" ||
      { echo "a's entry is missing on the ESP: $entries" | tr '\n' ' '; return; }
    if echo "$entries" | grep -q "$csum_b" && ! echo "$entries" | grep -qE "$csum_b\.0\+0(-[0-9]+)?\.conf$"; then
      echo "b's entry is on the ESP and not exhausted: $entries" | tr '\n' ' '
    fi
  else
    local cfg env
    cfg=$(mtype -i "$img" ::/grub/grub.cfg 2>&1)
    env=$(mtype -i "$img" ::/grub/grubenv 2>&1 | grep -v '^#' | tr '\n' ' ')
    echo "   grub.cfg default: $(echo "$cfg" | grep -m1 'default=')  grubenv: $env" >&2
    echo "$cfg" | grep -qE "^set default='?photon-photon-$csum_c\.0'?$" ||
      { echo "c is not the default in grub.cfg: $(echo "$cfg" | grep 'default=')"; return; }
    if echo "$cfg" | grep -q "$VAR_ATTEMPT"; then
      echo "grub.cfg still counts tries of a pending deployment"
    fi
  fi
}
VAR_ATTEMPT=photon_attempts

note "versions: a=${csum_a:0:12} b=${csum_b:0:12} c=${csum_c:0:12}; expect boots: a b b a c c c"
status=0
for bl in "${bootloaders[@]}"; do
  run_bootloader "$bl" || status=1
done
echo
for r in "${results[@]}"; do echo "$r"; done
echo "total: $((SECONDS - t_start)) s; serial logs in $logs"
# Keep the logs of the last 10 runs.
# (Run ids start with the date, so name order is age order.)
find "${PU_VM_LOGS:-/var/tmp/pu-vm-logs}" -mindepth 1 -maxdepth 1 -type d -name '[0-9]*-[0-9]*-[0-9]*' |
  sort -r | tail -n +11 | xargs -r rm -rf
[ "$status" = 0 ] || die "$(printf '%s; ' "${results[@]}" | grep -o '[^;]*FAILED[^;]*' | head -n 1)"
echo "VM TEST PASSED"
