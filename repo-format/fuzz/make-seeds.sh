#!/usr/bin/env bash
# Regenerates seeds/<target>/ from objects that the real `ostree` writes, so
# the fuzzers start from well-formed input (Debian 12: apt-get install ostree
# attr python3). Seeds are named by object id; the result is committed.
set -euo pipefail
seeds=$(cd "$(dirname "$0")" && pwd)/seeds
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# A tiny tree: files, an executable, a setuid file, a symlink, an empty
# directory, and user xattrs on a file and a directory.
mkdir -p tree/etc tree/usr/bin tree/empty
printf 'ID=photon\n' >tree/etc/os-release
printf '#!/bin/sh\necho hi\n' >tree/usr/bin/tool && : >tree/usr/bin/empty-file
chmod 0644 tree/etc/os-release tree/usr/bin/empty-file
chmod 0755 tree tree/etc tree/usr tree/usr/bin tree/usr/bin/tool && chmod 0700 tree/empty
cp tree/usr/bin/tool tree/usr/bin/su && chmod 04755 tree/usr/bin/su
ln -s ../usr/bin/tool tree/etc/link
setfattr -n user.comment -v hello tree/etc/os-release && setfattr -n user.dir -v 1 tree/etc

common=(--tree=dir=tree --timestamp=2024-01-01T00:00:00Z)
ostree init --repo=archive --mode=archive
ostree commit --repo=archive "${common[@]}" -b os/x86_64/stable -s first --add-metadata-string=version=1.0 \
  --add-metadata=bool=true --add-metadata='u64=uint64 7' --add-metadata="strs=['a', 'b']" \
  --add-metadata="dict={'k': <'v'>}" --add-metadata="blobs=[b'ab', b'']" --add-metadata='i32=-3' \
  --add-detached-metadata-string=note=detached --generate-sizes >/dev/null
ostree commit --repo=archive "${common[@]}" -b os/x86_64/stable -s second -m 'A body.' \
  --owner-uid=1000 --owner-gid=1000 --bind-ref=extra >/dev/null
ostree static-delta generate --repo=archive os/x86_64/stable >/dev/null 2>&1 # chatty on stderr
ostree summary --repo=archive -u -m 'photon.test=uint32 7' -m "photon.list=[('a', 1), ('b', 2)]"
ostree init --repo=bare-user --mode=bare-user
ostree commit --repo=bare-user "${common[@]}" -b x >/dev/null

rm -rf "$seeds" && mkdir -p "$seeds"/{commit,dirtree,dirmeta,filemeta,archive_header,stream_header,metadata,summary,variant,sizes}
# Object ids are split as objects/ab/cdef...; seeds get the whole id.
copy() { # repo extension target
  for f in $(find "$1/objects" -name "*.$2"); do
    id=$(basename "$(dirname "$f")")$(basename "$f" ".$2")
    if [ "$2" = file ]; then
      getfattr --only-values -n user.ostreemeta "$f" >"$seeds/$3/$id.ostreemeta"
    else
      cp "$f" "$seeds/$3/$id.$2"
    fi
  done
}
copy archive commit commit && copy archive dirtree dirtree && copy archive dirmeta dirmeta
copy archive filez archive_header && copy archive commitmeta metadata && copy bare-user file filemeta
cp archive/summary "$seeds/summary/summary"

# Derived seeds, each checked against what ostree wrote: the metadata a{sv}
# cut out of each commit (also as a `v` for the variant codec), and the stream-form header of each .filez, which is
# accepted only if SHA-256(header + content) is the object's id.
python3 - "$seeds" <<'EOF'
import hashlib, pathlib, sys, zlib
seeds = pathlib.Path(sys.argv[1])
def osize(n):  # GVariant framing-offset width for a container of n bytes
    return 1 if n <= 0xff else 2 if n <= 0xffff else 4
for c in (seeds / "commit").iterdir():
    d = c.read_bytes()  # (a{sv}aya(say)sstayay): the last offset ends the a{sv}
    w = osize(len(d))
    meta = d[: int.from_bytes(d[-w:], "little")]
    (seeds / "metadata" / (c.stem + ".commit-metadata")).write_bytes(meta)
    (seeds / "variant" / (c.stem + ".commit-metadata.v")).write_bytes(meta + b"\0a{sv}")
for f in (seeds / "archive_header").iterdir():
    d = f.read_bytes()  # BE len, 4 NUL, (tuuuusa(ayay)): drop the t, rebase s's end
    n = int.from_bytes(d[:4], "big")
    v, w = d[8 : 8 + n], osize(n)
    body, s_end = v[8:-w], int.from_bytes(v[-w:], "little") - 8
    w2 = 1 if len(body) + 1 <= 0xff else 2
    head = body + s_end.to_bytes(w2, "little")
    head = len(head).to_bytes(4, "big") + bytes(4) + head
    content = zlib.decompressobj(-15).decompress(d[8 + n :])  # empty files have no stream
    assert hashlib.sha256(head + content).hexdigest() == f.stem, f
    (seeds / "stream_header" / (f.stem + ".file-header")).write_bytes(head + content)
EOF
# Size indexes are ours: the publisher writes them at `repo summary --update`.
pu() { cargo run -q --manifest-path "$seeds/../../../Cargo.toml" -- "$@"; }
cp -r archive ours && pu --repo ours repo summary --update >/dev/null
mkdir -p "$seeds/sizes" && cp ours/extensions/photon-upgrade/sizes/* "$seeds/sizes/"

# Deltas (ours): superblocks, and the first bytes of each kind of part.
pu --repo ours repo delta generate --to os/x86_64/stable >/dev/null
pu --repo ours repo delta generate --from os/x86_64/stable^ --to os/x86_64/stable >/dev/null
mkdir -p "$seeds/delta_superblock" "$seeds/delta_entries"
for d in ours/photon-deltas/*/; do
  kind=$([[ $(basename "$d") == *-* ]] && echo update || echo from-empty)
  cp "$d/superblock" "$seeds/delta_superblock/$kind"
  zstd -dc "$d/part-0" | head -c 300 >"$seeds/delta_entries/meta-$kind"
  zstd -dc "$d/part-1" | head -c 300 >"$seeds/delta_entries/files-$kind"
done

echo "seeds: $(cat "$seeds"/*/* | wc -c) bytes"
