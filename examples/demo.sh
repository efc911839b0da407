#!/usr/bin/env bash
# The main job, end to end, on the built-in sample OS tree, in a scratch
# directory (nothing outside it is touched; no root needed):
#   build server: commit two versions of the tree into an archive repository
#   then: show, log, diff, check out, fsck.
# Later stages (sign, publish, pull, deploy, roll back) join as they land.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cargo build --release --quiet --manifest-path "$here/../Cargo.toml"
pu="$here/../target/release/photon-upgrade"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/photon-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
step() { printf '\n== %s\n' "$*"; }
branch=sample/x86_64/stable

step "build server: make the sample OS tree, version 1.0, and commit it"
"$here/sample-os.sh" "$work/tree-1.0" 1.0
"$pu" --repo "$work/build" repo init --mode archive
c1=$("$pu" --repo "$work/build" repo commit -b $branch --version 1.0 --subject "Sample Photon 1.0" "$work/tree-1.0")
echo "committed $c1"

step "version 1.1: a changed file, a new file; only those are stored again"
"$here/sample-os.sh" "$work/tree-1.1" 1.1
c2=$("$pu" --repo "$work/build" --json repo commit -b $branch --version 1.1 --subject "Sample Photon 1.1" "$work/tree-1.1" \
  | tee "$work/commit.json" | sed -n 's/.*"commit": "\([0-9a-f]*\)".*/\1/p')
grep -A3 "\"written\"" "$work/commit.json"

step "inspect: show, log, diff"
"$pu" --repo "$work/build" repo show $branch
"$pu" --repo "$work/build" repo log $branch | grep -E '^(commit|Version)'
"$pu" --repo "$work/build" repo diff "$c1" "$c2"

step "check out version 1.1 and compare it with its source"
"$pu" --repo "$work/build" repo checkout --user-mode $branch "$work/checkout"
diff -r --no-dereference "$work/tree-1.1" "$work/checkout" && echo "checkout identical to the source tree"

step "fsck: re-hash every object"
"$pu" --repo "$work/build" repo fsck

step "damage one object: fsck names it and fails"
victim=$(find "$work/build/objects" -name '*.filez' -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
printf 'X' | dd of="$victim" bs=1 seek=200 conv=notrunc status=none
if "$pu" --repo "$work/build" repo fsck; then echo "fsck missed the damage" >&2; exit 1; fi
echo
echo "demo finished: all steps passed"
