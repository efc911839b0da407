#!/usr/bin/env bash
# Regenerates the ed25519 signature vectors in sign/ with an ed25519-capable
# ostree (Debian's cannot sign; tests/build-ostree-ed25519.sh builds one):
#   OSTREE=/var/tmp/ostree-ed25519/ostree-2022.7/ostree bash repo-format/tests/vectors/make-sign-vectors.sh
# A fixed key (seed bytes 1..32), tree and timestamp: the key files,
# commit and commitmeta come out identical on a rerun; the summary carries
# the time it was written, so it and its signature change.
set -euo pipefail
ot=${OSTREE:?set OSTREE to an ed25519-capable ostree}
out=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/sign
work=$(mktemp -d /var/tmp/sign-vectors.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
# PKCS#8 wrapping of the raw seed, so openssl derives the public key.
seed=$(python3 -c 'print(bytes(range(1, 33)).hex())')
python3 -c "import sys; sys.stdout.buffer.write(bytes.fromhex('302e020100300506032b657004220420$seed'))" > k.der
openssl pkey -inform DER -in k.der -pubout -outform DER | tail -c32 > pub
python3 -c "import sys; sys.stdout.buffer.write(bytes.fromhex('$seed'))" > seed
base64 -w0 pub > key.pub; echo >> key.pub
cat seed pub | base64 -w0 > key.sec; echo >> key.sec
mkdir -p tree/usr/bin && printf 'signed\n' > tree/usr/bin/hello && chmod 0755 tree/usr/bin/hello
"$ot" init --repo=repo --mode=archive-z2
c=$("$ot" commit --repo=repo -b os/x86_64/stable --timestamp=2024-01-01T00:00:00Z --subject=signed \
  --add-metadata-string=version=1.0 tree)
"$ot" sign --repo=repo "$c" "$(cat key.sec)"
"$ot" sign --repo=repo --verify "$c" "$(cat key.pub)" >/dev/null
"$ot" summary --repo=repo -u --sign-type=ed25519 --sign="$(cat key.sec)"
rm -rf "$out" && mkdir -p "$out"
cp key.pub key.sec "$out/"
cp "repo/objects/${c:0:2}/${c:2}.commit" "$out/commit"
cp "repo/objects/${c:0:2}/${c:2}.commitmeta" "$out/commitmeta"
cp repo/summary repo/summary.sig "$out/"
echo "$c" > "$out/commit.id"
