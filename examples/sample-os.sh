#!/usr/bin/env bash
# Builds the built-in sample OS tree: a tiny Photon-style container host
# laid out the way OSTree expects (/usr holds the OS, /usr/etc the default
# configuration, a kernel and initramfs under /usr/lib/modules/KVER).
# The kernel and initramfs are placeholders; the VM test builds real ones.
# Usage: sample-os.sh DEST VERSION      (DEST must not exist)
set -euo pipefail
dest=$1 version=$2
[ ! -e "$dest" ] || { echo "error: $dest exists" >&2; exit 1; }
kver=6.1.0-sample
mkdir -p "$dest"/{usr/bin,usr/sbin,usr/lib/systemd/system,usr/lib/modules/$kver,usr/etc/docker,usr/share/doc/sample}
mkdir -p "$dest"/{boot,dev,proc,sys,run,tmp,var,sysroot,home,root,mnt}
chmod 1777 "$dest/tmp"; chmod 0700 "$dest/root"
for l in bin sbin lib; do ln -s "usr/$l" "$dest/$l"; done
ln -s sysroot/ostree "$dest/ostree"
cat > "$dest/usr/lib/os-release" <<OS
NAME="Sample Photon"
ID=sample-photon
VERSION_ID=$version
PRETTY_NAME="Sample Photon $version"
OS
ln -s ../usr/lib/os-release "$dest/usr/etc/os-release"
echo "sample-host" > "$dest/usr/etc/hostname"
echo "Welcome to Sample Photon $version" > "$dest/usr/etc/motd"
printf '{\n  "storage-driver": "overlay2",\n  "log-driver": "journald"\n}\n' > "$dest/usr/etc/docker/daemon.json"
printf '#!/bin/sh\necho "Sample Photon %s"\n' "$version" > "$dest/usr/bin/photon-hello"
chmod 0755 "$dest/usr/bin/photon-hello"
printf 'setuid helper\n' > "$dest/usr/bin/sample-su"; chmod 04755 "$dest/usr/bin/sample-su"
printf '[Unit]\nDescription=Sample container runtime\n[Service]\nExecStart=/usr/bin/photon-hello\n' \
  > "$dest/usr/lib/systemd/system/sample-containerd.service"
# Placeholder kernel and initramfs (1 MiB and 256 KiB of version-specific bytes).
head -c 1048576 /dev/zero | tr '\0' 'K' > "$dest/usr/lib/modules/$kver/vmlinuz"
printf 'kernel %s\n' "$version" >> "$dest/usr/lib/modules/$kver/vmlinuz"
head -c 262144 /dev/zero | tr '\0' 'I' > "$dest/usr/lib/modules/$kver/initramfs.img"
# Some bulk that changes a little between versions, as real updates do.
for i in $(seq 1 40); do
  seq 1 2000 | sed "s/^/sample doc $i line /" > "$dest/usr/share/doc/sample/page$i.txt"
done
echo "release notes for $version" > "$dest/usr/share/doc/sample/NEWS"
