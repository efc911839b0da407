#!/usr/bin/env bash
# Builds an ed25519-capable `ostree` from Debian 12's own source package
# (Debian's binary is built without libsodium, so `ostree sign` cannot do
# ed25519). Recipe: ../shared/research/ostree-ed25519.md. About 2.5 minutes
# on 2 cores; idempotent. Nothing is installed over the system ostree.
# Prints the path of the build tree's `ostree` wrapper (libtool script that
# finds its own libostree).
# Usage: tests/build-ostree-ed25519.sh [DIR]   (default /var/tmp/ostree-ed25519; run as root)
set -euo pipefail
dir=${1:-/var/tmp/ostree-ed25519}
export DEBIAN_FRONTEND=noninteractive
wrapper() { ls -d "$dir"/ostree-*/ostree 2>/dev/null | head -1; }
if [ -n "$(wrapper)" ] && [ -e "$dir/.built" ]; then wrapper; exit 0; fi
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  cat > /etc/apt/sources.list.d/photon-upgrade-deb-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
{
  apt-get update -qq
  apt-get build-dep -y -qq ostree
  apt-get install -y -qq libsodium-dev dpkg-dev
} >&2
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
apt-get source -qq ostree >&2
cd ostree-*/
{
  autoreconf -fi
  ./configure --prefix=/usr --sysconfdir=/etc --localstatedir=/var --libdir=/usr/lib/x86_64-linux-gnu \
    --with-curl --with-libarchive --with-libsystemd --with-libmount --with-soup --with-selinux \
    --without-smack --with-ed25519-libsodium --disable-gtk-doc --disable-man --disable-introspection \
    --with-systemdsystemgeneratordir=/lib/systemd/system-generators --with-systemdsystemunitdir=/lib/systemd/system
  grep -q 'ed25519 signatures): *yes' config.log || grep -q 'HAVE_LIBSODIUM 1' config.h
  make -j"$(nproc)" libglnx-config.h src/libostree/ostree-enumtypes.h src/libostree/ostree-enumtypes.c
  make -j"$(nproc)" ostree
} >&2
touch "$dir/.built"
wrapper
