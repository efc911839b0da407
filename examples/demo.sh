#!/usr/bin/env bash
# The main job, end to end, on the built-in sample OS tree, in a scratch
# directory (nothing outside it is touched; no root needed):
#   build server: commit, sign, publish a signed summary, serve on 127.0.0.1
#   host: add the remote with the publisher's key, pull (verified), update,
#         check out, fsck; then watch a tampered publish get refused.
# Later stages (deploy, roll back) join as they land.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cargo build --release --quiet --manifest-path "$here/../Cargo.toml"
pu="$here/../target/release/photon-upgrade"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/photon-demo.XXXXXX")
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"' EXIT
step() { printf '\n== %s\n' "$*"; }
branch=sample/x86_64/stable

step "build server: a signing key, the sample OS tree 1.0, a signed commit"
"$pu" repo keygen --output "$work/publisher.key"
"$here/sample-os.sh" "$work/tree-1.0" 1.0
"$pu" --repo "$work/build" repo init --mode archive
c1=$("$pu" --repo "$work/build" repo commit -b $branch --version 1.0 --subject "Sample Photon 1.0" \
  --sign-key "$work/publisher.key" "$work/tree-1.0")
echo "committed $c1"

step "publish: signed summary, served over HTTP on 127.0.0.1"
"$pu" --repo "$work/build" repo summary --update --sign-key "$work/publisher.key"
"$pu" internals serve "$work/build" > "$work/serve.out" &
server_pid=$!
for _ in $(seq 50); do grep -q http "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/.* on \(http:.*\)/\1/p' "$work/serve.out")
echo "serving at $url"

step "host: add the remote with the publisher's public key, pull, verify"
"$pu" --repo "$work/host" repo init --mode bare-user
"$pu" --repo "$work/host" remote add origin "$url" --trusted-key "$work/publisher.key.pub"
"$pu" --repo "$work/host" pull origin $branch
"$pu" --repo "$work/host" repo verify origin:$branch --trusted-key "$work/publisher.key.pub"

step "version 1.1: the build server commits only what changed; the host pulls only that"
"$here/sample-os.sh" "$work/tree-1.1" 1.1
c2=$("$pu" --repo "$work/build" --json repo commit -b $branch --version 1.1 --subject "Sample Photon 1.1" \
  --sign-key "$work/publisher.key" "$work/tree-1.1" | tee "$work/commit.json" | sed -n 's/.*"commit": "\([0-9a-f]*\)".*/\1/p')
grep -A3 '"written"' "$work/commit.json"
"$pu" --repo "$work/build" repo summary --update --sign-key "$work/publisher.key"
"$pu" --repo "$work/host" pull --dry-run origin $branch | tail -1
"$pu" --repo "$work/host" pull origin $branch

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
