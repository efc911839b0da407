#!/usr/bin/env bash
# Installs what the test suite needs on Debian 12, then runs it.
# Run as root: the suite makes bare repositories and files owned by other
# users, as a real host does. Everything it starts, it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
[ "$(id -u)" = 0 ] || { echo "error: run as root, e.g. sudo env PATH=\"\$PATH\" $0" >&2; exit 1; }

# The real ostree is the oracle; strace injects crashes; attr, zstd and tar
# build fixtures.
pkgs=(ostree strace attr zstd tar)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo test --workspace --locked "$@"
