#!/usr/bin/env bash
# Deploy benchmark, ours vs `ostree admin deploy`, same corpus, one run:
# each tool gets its own sysroot holding corpus v1 deployed, with v2's
# commit already in the sysroot repository; the time to deploy v2 over v1
# is measured (hardlink checkout, /etc merge, kernel into /boot, boot
# entries, the switch, cleanup).
# The corpus trees keep their kernel in /boot (Debian); both tools want it
# in usr/lib/modules/KVER/, so the script prepares hardlinked copies with
# the kernel moved there and /etc moved to /usr/etc, as an OSTree compose
# does (`ostree admin deploy` refuses a tree without usr/etc).
# Usage: bench/deploy.sh [CORPUS [RUNS]]   (run as root)
set -euo pipefail
corpus=${1:-/var/tmp/corpus} runs=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
cargo build --release --quiet --manifest-path "$here/../Cargo.toml"
pu="$here/../target/release/photon-upgrade"
work=$(mktemp -d /var/tmp/pu-deploybench.XXXXXX)
trap 'umount "$work"/sysroot-* 2>/dev/null; find "$work" -maxdepth 6 -type d -exec chattr -i {} + 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"

prepare() { # TREE -> prepared copy
  local v=$1 kver
  cp -al "$corpus/$v" "$v"
  kver=$(ls "$v/usr/lib/modules" | head -1)
  cp "$v/boot/vmlinuz-$kver" "$v/usr/lib/modules/$kver/vmlinuz"
  cp "$v/boot/initrd.img-$kver" "$v/usr/lib/modules/$kver/initramfs.img"
  rm -f "$v"/boot/* "$v"/vmlinuz* "$v"/initrd.img*
  mv "$v/etc" "$v/usr/etc"
}
prepare v1; prepare v2
"$pu" --repo build repo init --mode bare
c1=$("$pu" --repo build repo commit -b os --timestamp 1 v1)
c2=$("$pu" --repo build repo commit -b os --timestamp 2 v2)

median() { sort -n | sed -n "$(( (runs + 1) / 2 ))p"; }
ours=() theirs=()
# Each sysroot gets a fresh ext4 filesystem (a loop-mounted image): on a
# filesystem where many inodes were just deleted, ext4's inode allocator
# (recently_deleted) dominated both tools' time and made runs vary 2x.
fresh_fs() { # DIR
  umount "$1" 2>/dev/null || true
  rm -rf "$1" "$1.img" && mkdir "$1"
  truncate -s 4G "$1.img" && mkfs.ext4 -q -F "$1.img" && mount -o loop "$1.img" "$1"
}
for _ in $(seq "$runs"); do
  fresh_fs sysroot-ours
  fresh_fs sysroot-ostree
  # ours
  "$pu" --repo build --sysroot sysroot-ours install --os bench --karg root=LABEL=root "$c1" >/dev/null
  ostree --repo=sysroot-ours/ostree/repo pull-local build "$c2" >/dev/null
  sync
  /usr/bin/time -f "%e %M" -o t "$pu" --sysroot sysroot-ours deploy --os bench "$c2" >/dev/null
  ours+=("$(cat t)")
  # ostree
  ostree admin init-fs --modern sysroot-ostree >/dev/null
  ostree admin os-init --sysroot=sysroot-ostree bench >/dev/null
  ostree --repo=sysroot-ostree/ostree/repo pull-local build "$c1" "$c2" >/dev/null
  ostree admin deploy --sysroot=sysroot-ostree --os=bench --karg=root=LABEL=root "$c1" >/dev/null
  ostree --repo=sysroot-ostree/ostree/repo pull-local build "$c2" >/dev/null
  sync
  /usr/bin/time -f "%e %M" -o t ostree admin deploy --sysroot=sysroot-ostree --os=bench "$c2" >/dev/null
  theirs+=("$(cat t)")
done
to=$(printf '%s\n' "${ours[@]}" | cut -d' ' -f1 | median)
tt=$(printf '%s\n' "${theirs[@]}" | cut -d' ' -f1 | median)
ro=$(printf '%s\n' "${ours[@]}" | cut -d' ' -f2 | sort -n | tail -1)
rt=$(printf '%s\n' "${theirs[@]}" | cut -d' ' -f2 | sort -n | tail -1)
echo "runs: ours ${ours[*]} | ostree ${theirs[*]} (wall s, max RSS KB)" >&2
echo "| operation | ours | ostree | ratio | our RSS | ostree RSS |"
echo "|---|---|---|---|---|---|"
printf '| deploy v2 over v1 (corpus, bare sysroot) | %.2f s | %.2f s | %.2f | %d MB | %d MB |\n' "$to" "$tt" "$(echo "$to / $tt" | bc -l)" $((ro / 1024)) $((rt / 1024))
