#!/usr/bin/env bash
# The main job, end to end, on the built-in sample OS tree, in a scratch
# directory (nothing outside it is touched; no root needed):
#   build server (examples/build-server.sh): commit, sign, signed summary;
#   served on 127.0.0.1;
#   host (examples/host.sh): install into a scratch sysroot, upgrade
#   (verified pull, deploy), status, roll back;
#   then: pull into a second repository, inspect, check out, fsck, and see
#   a commit signed by another key and a damaged object refused.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# PU names a prebuilt binary (the test suite runs the demo with its own).
if [ -z "${PU:-}" ]; then
  cargo build --release --quiet --manifest-path "$here/../Cargo.toml"
fi
pu=${PU:-$here/../target/release/photon-upgrade}
work=$(mktemp -d "${TMPDIR:-/var/tmp}/photon-demo.XXXXXX")
server_pid=
# Deployment roots are immutable (chattr +i) when made as root.
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; find "$work" -type d -exec chattr -i {} + 2>/dev/null; rm -rf "$work"' EXIT
step() { printf '\n== %s\n' "$*"; }
branch=sample/x86_64/stable

step "build server (examples/build-server.sh): sign and publish Sample Photon 1.0"
PU="$pu" "$here/build-server.sh" "$work" 1.0
c1=$("$pu" --repo "$work/build" repo rev-parse $branch)

step "serve the published repository on 127.0.0.1"
"$pu" internals serve "$work/build" > "$work/serve.out" &
server_pid=$!
for _ in $(seq 50); do grep -q http "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/.* on \(http:.*\)/\1/p' "$work/serve.out")
echo "serving at $url"

step "host (examples/host.sh): install 1.0 into a scratch sysroot; no update yet"
PU="$pu" "$here/host.sh" "$work" "$url"

step "build server: publish 1.1 (only what changed is stored)"
PU="$pu" "$here/build-server.sh" "$work" 1.1
c2=$("$pu" --repo "$work/build" repo rev-parse $branch)

step "host: upgrade to 1.1 (pull verified, deploy), status, roll back"
PU="$pu" "$here/host.sh" "$work" "$url"
"$pu" --sysroot "$work/sysroot" --json status | grep -E '"(deployment|version|rollback)"'

step "a second repository pulls the same publish with the publisher's key"
"$pu" --repo "$work/host" repo init --mode bare-user
"$pu" --repo "$work/host" remote add origin "$url" --trusted-key "$work/publisher.key.pub"
"$pu" --repo "$work/host" pull --dry-run origin $branch | tail -1
"$pu" --repo "$work/host" pull --depth 1 origin $branch
"$pu" --repo "$work/host" repo verify origin:$branch --trusted-key "$work/publisher.key.pub"

step "inspect on the host: show, log, diff"
"$pu" --repo "$work/host" repo show origin:$branch
"$pu" --repo "$work/host" repo log origin:$branch | grep -E '^(commit|Version)'
"$pu" --repo "$work/host" repo diff "$c1" "$c2"

step "check out version 1.1 and compare it with its source"
"$pu" --repo "$work/host" repo checkout --user-mode origin:$branch "$work/checkout"
diff -r --no-dereference "$work/tree-1.1" "$work/checkout" && echo "checkout identical to the source tree"

step "fsck: re-hash every object"
"$pu" --repo "$work/host" repo fsck

step "a tampered publish is refused: a commit signed by another key"
"$pu" repo keygen --output "$work/intruder.key" >/dev/null
"$pu" --repo "$work/build" repo commit -b $branch --subject "not from the publisher" \
  --sign-key "$work/intruder.key" "$work/tree-1.1" >/dev/null
"$pu" --repo "$work/build" repo summary --update --sign-key "$work/publisher.key"
if "$pu" --repo "$work/host" pull origin $branch; then echo "the intruder's commit was accepted" >&2; exit 1; fi
"$pu" --repo "$work/host" repo rev-parse origin:$branch

step "damage one object: fsck names it and fails"
victim=$(find "$work/host/objects" -name '*.file' -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
chmod u+w "$victim"; printf 'X' | dd of="$victim" bs=1 seek=200 conv=notrunc status=none
if "$pu" --repo "$work/host" repo fsck; then echo "fsck missed the damage" >&2; exit 1; fi
echo
echo "demo finished: all steps passed"
