#!/usr/bin/env bash
# Walkthrough 1, the build server: commit a version of the sample OS tree,
# sign it, make deltas, write a signed summary. Run it again with another version to
# publish an update. Serve WORK/build with any static web server (the
# demo uses `photon-upgrade internals serve`).
# Usage: build-server.sh WORK VERSION   (no root needed)
set -euo pipefail
work=$1 version=$2
here=$(cd "$(dirname "$0")" && pwd)
pu=${PU:-$here/../target/release/photon-upgrade}
branch=sample/x86_64/stable
repo=$work/build
key=$work/publisher.key

# One signing key for the life of the product; its .pub goes to every host.
[ -e "$key" ] || "$pu" repo keygen --output "$key" >/dev/null
[ -e "$repo/config" ] || "$pu" --repo "$repo" repo init --mode archive

# The OS tree of this version (a real build would run its image builder here).
rm -rf "$work/tree-$version"
"$here/sample-os.sh" "$work/tree-$version" "$version"

# Commit: only objects the repository lacks are stored; the commit is
# signed before the branch moves.
"$pu" --repo "$repo" repo commit -b $branch --version "$version" \
  --subject "Sample Photon $version" --sign-key "$key" "$work/tree-$version"

# Deltas: from nothing (first installs) and from the previous version
# (updates); hosts take them when the summary lists them.
"$pu" --repo "$repo" repo delta generate --empty --to $branch --sign-key "$key"
if "$pu" --repo "$repo" repo rev-parse $branch^ >/dev/null 2>&1; then
  "$pu" --repo "$repo" repo delta generate --from $branch^ --to $branch --sign-key "$key"
fi

# Publish: the summary lists refs and deltas for clients, signed, valid 30 days.
"$pu" --repo "$repo" repo summary --update --sign-key "$key"
"$pu" --repo "$repo" repo log $branch | grep -E '^(commit|Version)'
