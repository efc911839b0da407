#!/usr/bin/env bash
# build-images.sh BASE BINDIR KVER OUT
#
# From the debootstrap tree BASE (read only) and our binaries in BINDIR,
# builds into OUT (an empty directory):
#   repo/                the publisher's archive repository: os/a, os/b, os/c, signed
#   publisher.key.pub
#   disk-systemd-boot.img, disk-grub.img
#                        GPT: ESP (vfat, label ESP, the bootloader and
#                        what `install --bootloader` wrote to /boot/efi),
#                        root (ext4, label photon-root, the sysroot with a
#                        installed; B and C come as updates)
#   updates.img          ext4, label updates: /repo, the published repository
# Versions: a = the base OS with our units; b = a + a failing health
# check; c = a + a passing one. Each has its own VERSION_ID.
set -euo pipefail
base=$1 bindir=$2 kver=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
work=$out/work
mkdir -p "$work"
export MTOOLS_SKIP_CHECK=1

pu() { "$work/photon-upgrade" --progress none "$@"; }
step() { printf '  %-44s' "$*"; t0=$SECONDS; }
done_() { echo "$((SECONDS - t0)) s"; }

# Deployments are chattr +i, as OSTree makes them.
rm_tree() {
  [ -e "$1" ] || return 0
  find "$1" -path '*/ostree/deploy/*/deploy/*' -prune -type d -exec chattr -i {} + 2>/dev/null || true
  rm -rf "$1"
}

install -m 0755 "$bindir/photon-upgrade" "$work/photon-upgrade"
strip "$work/photon-upgrade"

# ---------------------------------------------------------------- the tree
step "tree (base, kernel, initramfs, units)"
tree=$work/tree
cp -a "$base" "$tree"
rm -rf "${tree:?}"/{dev,proc,sys,run,tmp}
mkdir -p "$tree"/{dev,proc,sys,run,sysroot,mnt/updates} && install -d -m 1777 "$tree/tmp"
# OSTree's layout of a deployment: the physical root is bound at /sysroot
# (photon-prepare-root), /ostree reaches its repository and deployments,
# and photon-upgrade works on /sysroot behind it.
ln -s sysroot/ostree "$tree/ostree"

# The kernel, the few modules the guest needs (all of them would be 400 MB
# in every image), and our initramfs.
mdir=$tree/usr/lib/modules/$kver
mkdir -p "$mdir"
cp "/boot/vmlinuz-$kver" "$mdir/vmlinuz"
for m in virtio_pci virtio_blk virtio_console ext4 vfat nls_cp437 nls_ascii nls_utf8 efivarfs crc32c_generic; do
  modprobe -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | sort -u | while read -r ko; do
  mkdir -p "$tree$(dirname "$ko")"
  cp "$ko" "$tree$ko"
done
cp /lib/modules/"$kver"/modules.{order,builtin,builtin.modinfo} "$mdir/"
depmod -b "$tree" "$kver"
"$here/mkinitramfs.sh" "$kver" "$bindir/photon-prepare-root" "$mdir/initramfs.img"

# Our binaries.
install -m 0755 "$work/photon-upgrade" "$tree/usr/bin/photon-upgrade"
install -D -m 0755 "$bindir/photon-prepare-root" "$tree/usr/lib/photon-upgrade/photon-prepare-root"
strip "$tree/usr/lib/photon-upgrade/photon-prepare-root"

# Our units, installed and enabled as systemd/README.md ("Installing") says.
IMAGE=$tree
units=()
for f in "$src"/systemd/*.service "$src"/systemd/*.timer "$src"/systemd/*.path; do units+=("$(basename "$f")"); done
install -m 0644 "$src"/systemd/*.service "$src"/systemd/*.timer "$src"/systemd/*.path "$IMAGE/usr/lib/systemd/system/"
install -m 0644 -D "$src/systemd/80-photon-upgrade.preset" "$IMAGE/usr/lib/systemd/system-preset/80-photon-upgrade.preset"
install -m 0644 -D "$src/systemd/README.md" "$IMAGE/usr/share/doc/photon-upgrade/systemd/README.md"
install -d "$IMAGE/etc/photon-upgrade/health.d" "$IMAGE/usr/lib/photon-upgrade/health.d"
# `preset UNIT...` for just ours: preset-all would also apply Debian's
# 90-systemd.preset to every unit of the base system.
systemctl --root="$IMAGE" preset "${units[@]}" 2>/dev/null
# Only photon-upgrade renames boot entries (systemd/README.md).
systemctl --root="$IMAGE" mask systemd-bless-boot.service 2>/dev/null

# The test driver (VM test only).
install -D -m 0755 "$here/guest/vmtest.sh" "$tree/usr/lib/photon-vmtest/vmtest"
install -m 0644 "$here/guest/photon-vmtest-boot.service" "$here/guest/photon-vmtest.service" "$tree/usr/lib/systemd/system/"
systemctl --root="$tree" enable photon-vmtest-boot.service photon-vmtest.service 2>/dev/null

# Time: no logins, no periodic jobs. A reboot under TCG costs seconds per
# unit stopped, so stuck stops are cut short too.
systemctl --root="$tree" mask getty@.service serial-getty@.service getty.target \
  apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
  e2scrub_reap.service fstrim.timer systemd-pstore.service 2>/dev/null
mkdir -p "$tree/etc/systemd/system.conf.d"
printf '[Manager]\nDefaultTimeoutStopSec=20s\n' >"$tree/etc/systemd/system.conf.d/10-vmtest.conf"

# /boot is on the root filesystem: bound from the physical root, as
# OSTree's generator does it (boot.mount); the ESP inside it, where
# --bootloader puts what the firmware reads.
cat >"$tree/etc/fstab" <<EOF
/sysroot/boot  /boot      none  bind       0 0
LABEL=ESP      /boot/efi  vfat  umask=0077 0 0
EOF
echo photon-vm >"$tree/etc/hostname"
# A fixed machine id: no first-boot setup (which would apply presets again),
# and one persistent journal directory across deployments and boots.
echo 0123456789abcdef0123456789abcdef >"$tree/etc/machine-id"
rm -rf "$tree"/usr/share/{doc,man,info,locale}/* "$tree"/var/cache/apt/*.bin "$tree"/var/lib/apt/lists/*
done_

# ---------------------------------------------------------------- versions
step "repository: a, b, c, signed"
pu repo keygen --output "$work/publisher.key" >/dev/null
cp "$work/publisher.key.pub" "$out/publisher.key.pub"
install -D -m 0644 "$work/publisher.key.pub" "$tree/usr/share/photon-vmtest/publisher.key.pub"
repo=$out/repo
pu --repo "$repo" repo init --mode archive
hd=$tree/usr/lib/photon-upgrade/health.d
for v in a b c; do
  sed -i -e '/^VERSION_ID=/d' -e '/^VERSION=/d' -e '/^PRETTY_NAME=/d' "$tree/usr/lib/os-release"
  printf 'VERSION_ID=%s\nPRETTY_NAME="photon-upgrade VM test, version %s"\n' "$v" "$v" >>"$tree/usr/lib/os-release"
  rm -f "$hd"/50-vmtest-*
  case $v in
  b) install -m 0755 "$here/guest/health-fail" "$hd/50-vmtest-b-is-broken" ;;
  c) install -m 0755 "$here/guest/health-pass" "$hd/50-vmtest-c-is-healthy" ;;
  esac
  pu --repo "$repo" repo commit -b "os/$v" --version "$v" --subject "VM test version $v" \
    --sign-key "$work/publisher.key" "$tree" >/dev/null
done
# Long expiry: the images are cached, and a pull refuses an expired summary.
pu --repo "$repo" repo summary --update --sign-key "$work/publisher.key" --expires-in 3650d
done_

step "update disk"
mkdir -p "$work/updates"
cp -al "$repo" "$work/updates/repo"
truncate -s 0 "$out/updates.img"
truncate -s 512M "$out/updates.img"
mkfs.ext4 -q -F -L updates -E lazy_itable_init=0,lazy_journal_init=0 -d "$work/updates" "$out/updates.img"
rm -rf "$work/updates"
done_

# ---------------------------------------------------------------- disks
# GPT: 1 MiB gap, ESP 64 MiB, root 1536 MiB.
esp_mib=64 root_mib=1536
for bl in systemd-boot grub; do
  step "disk for $bl"
  sr=$work/sysroot-$bl
  rm_tree "$sr"
  mkdir -p "$sr/boot/efi"
  extra=()
  [ "$bl" = grub ] && extra=(--grub-search label:ESP --menu-timeout 0)
  # panic=-1: a panic reboots at once, and counts as a failed try.
  # fsck.mode=skip: the root is mounted read-write by the initramfs.
  # systemd.gpt_auto=0: the ESP is mounted by fstab only.
  pu --repo "$repo" --sysroot "$sr" install --os photon --origin origin:os/a \
    --karg root=LABEL=photon-root --karg console=ttyS0 --karg quiet --karg panic=-1 \
    --karg fsck.mode=skip --karg systemd.gpt_auto=0 \
    --bootloader "$bl" --esp /boot/efi --boot-tries 2 "${extra[@]}" os/a >/dev/null
  # A persistent journal: the fallback boot shows the failed boots' logs.
  install -d "$sr/ostree/deploy/photon/var/log/journal"

  esp=$work/esp-$bl
  rm -rf "$esp"
  mv "$sr/boot/efi" "$esp"
  mkdir "$sr/boot/efi"
  mkdir -p "$esp/EFI/BOOT"
  if [ "$bl" = systemd-boot ]; then
    cp /usr/lib/systemd/boot/efi/systemd-bootx64.efi "$esp/EFI/BOOT/BOOTX64.EFI"
    # No `default`: it would override systemd-boot's "exhausted entries
    # last" order (bootloader/README.md).
    printf 'timeout 0\neditor no\n' >"$esp/loader/loader.conf"
  else
    # A standalone GRUB whose embedded config finds the ESP by label and
    # reads the grub.cfg photon-upgrade generates there.
    # shellcheck disable=SC2016 # $root is GRUB's variable
    printf 'search --no-floppy --label ESP --set=root\nconfigfile ($root)/grub/grub.cfg\n' >"$work/grub-stub.cfg"
    grub-mkstandalone -O x86_64-efi -o "$esp/EFI/BOOT/BOOTX64.EFI" --locales= --fonts= --themes= \
      --modules="part_gpt fat search search_label loadenv test linux normal echo configfile" \
      "boot/grub/grub.cfg=$work/grub-stub.cfg"
  fi
  rm -f "$work/esp.img"
  mkfs.vfat -C -F 32 -n ESP "$work/esp.img" $((esp_mib * 1024)) >/dev/null
  mcopy -s -Q -i "$work/esp.img" "$esp"/* ::/

  rm -f "$work/root.img"
  truncate -s "${root_mib}M" "$work/root.img"
  mkfs.ext4 -q -F -L photon-root -E lazy_itable_init=0,lazy_journal_init=0 -d "$sr" "$work/root.img"

  disk=$out/disk-$bl.img
  rm -f "$disk"
  truncate -s $((1 + esp_mib + root_mib + 1))M "$disk"
  sfdisk -q "$disk" <<EOF
label: gpt
start=1MiB, size=${esp_mib}MiB, type=U, name="ESP"
start=$((1 + esp_mib))MiB, size=${root_mib}MiB, type=L, name="root"
EOF
  dd if="$work/esp.img" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
  dd if="$work/root.img" of="$disk" bs=1M seek=$((1 + esp_mib)) conv=notrunc,sparse status=none
  rm -f "$work/esp.img" "$work/root.img"
  rm_tree "$sr"
  done_
done
rm_tree "$work"
