#!/usr/bin/env bash
# mkinitramfs.sh KVER PREPARE_ROOT_BIN OUT
#
# The VM test's initramfs: busybox-static, our busybox /init
# (prepare-root/initramfs/busybox/init), photon-prepare-root with its
# shared libraries, and the modules that find and mount the root
# (virtio_pci, virtio_blk, ext4 and their dependencies), listed in
# /etc/modules-load for init to insmod in order.
set -euo pipefail
kver=$1 prepare_root=$2 out=$3
src=$(cd "$(dirname "$0")/../.." && pwd)
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT

mkdir -p "$d"/{bin,dev,proc,sys,run,sysroot,etc,usr/lib/photon-upgrade}
cp /bin/busybox "$d/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$d/bin/$applet"
done
# The kernel opens /dev/console before init runs; without the node init
# has no output until it mounts devtmpfs.
mknod -m 600 "$d/dev/console" c 5 1
install -m 0755 "$src/prepare-root/initramfs/busybox/init" "$d/init"

install -m 0755 "$prepare_root" "$d/usr/lib/photon-upgrade/photon-prepare-root"
# Release builds carry debug info (4 MB of the 4.5); the initramfs is read
# through UEFI on every boot.
strip "$d/usr/lib/photon-upgrade/photon-prepare-root"
# Its shared libraries, at the paths the dynamic loader looks them up.
ldd "$prepare_root" | grep -o '/[^ ]*' | while read -r lib; do
  mkdir -p "$d$(dirname "$lib")"
  cp -L "$lib" "$d$lib"
done

# Modules in dependency order. The arch/x86/crypto ones (crc32c-intel)
# come in through ext4's soft dependency on crc32c, and the TCG CPU has no
# SSE4.2: their insmod fails with ENODEV, which init treats as fatal.
# crc32c_generic serves instead.
: >"$d/etc/modules-load"
for m in virtio_pci virtio_blk ext4; do
  modprobe -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | grep -v '/arch/x86/crypto/' | while read -r ko; do
  mkdir -p "$d$(dirname "$ko")"
  cp "$ko" "$d$ko"
  echo "$ko" >>"$d/etc/modules-load"
done

(cd "$d" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) >"$out"
