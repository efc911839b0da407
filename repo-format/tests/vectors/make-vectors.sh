#!/usr/bin/env bash
# Regenerates the golden vectors beside this script with the real `ostree` (2022.7):
# objects/<csum>.{commit,commitmeta,dirtree,dirmeta,filez} from an archive repo,
# objects/<csum>.ostreemeta (the bare-user `user.ostreemeta` xattr) and manifest.json
# (facts as `ostree ls`/`ostree show` report them). Run as root (chown, setuid bits):
#   bash repo-format/tests/vectors/make-vectors.sh
# Fixed contents, modes, owners and timestamps: a rerun rewrites identical files.
set -euo pipefail
export LC_ALL=C.UTF-8 # g_print would mangle the non-ASCII name in other locales
out=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d /var/tmp/ostree-vectors.XXXXXX) # /tmp can be a tmpfs without user xattrs
trap 'rm -rf "$work"' EXIT
cd "$work"
t=tree
mkdir -p $t/etc $t/home/user $t/usr/bin $t/usr/lib $t/usr/share/doc/pkg $t/var/empty
printf 'hello, ostree\n' >$t/README
: >$t/usr/share/doc/pkg/EMPTY
printf 'caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\n' >"$t/usr/share/doc/pkg/café-日本.txt"
printf '#!/bin/sh\necho tool\n' >$t/usr/bin/tool
ln $t/usr/bin/tool $t/usr/bin/tool-hardlink
printf 'setuid helper\n' >$t/usr/bin/su-helper
printf 'ELF\0\1\2\3' >$t/usr/lib/libfoo.so.1
printf 'key=value\n' >$t/etc/app.conf
printf 'secret\n' >$t/home/user/notes.txt
ln -s tool $t/usr/bin/tool-link
ln -s /usr/lib/libfoo.so.1 $t/usr/lib/libfoo.so
find $t -type d -exec chmod 0755 {} +
find $t -type f -exec chmod 0644 {} +
chown -R 1000:1000 $t/home/user
chown 0:100 $t/usr/lib/libfoo.so.1
chmod 0700 $t/home/user
chmod 0600 $t/home/user/notes.txt
chmod 0755 $t/usr/bin/tool
chmod 04755 $t/usr/bin/su-helper
setfattr -n user.vector.text -v alpha $t/etc/app.conf
setfattr -n user.vector.bin -v 0x00ff10 $t/etc/app.conf
setfattr -n user.vector.dir -v etc $t/etc
meta=(--add-metadata-string=version=1.0 --add-metadata=vector.u32='uint32 42' --add-metadata=vector.bool=true
  --add-metadata=vector.strs="['a', 'b']" --add-metadata=vector.bytes='[byte 0x01, 0x02]'
  --add-metadata=vector.i64='int64 -5' --add-metadata=vector.dict="{'k': <'v'>}")
first=(-b vectors --timestamp=@1622548800 -s 'First vector commit' -m $'Body line one.\n\nBody line two.')
ostree init --repo=archive --mode=archive
ostree init --repo=bare-user --mode=bare-user
c1=$(ostree commit --repo=archive "${first[@]}" "${meta[@]}" --add-detached-metadata-string=vector.note=detached $t)
ostree commit --repo=bare-user "${first[@]}" "${meta[@]}" $t >/dev/null
printf '2\n' >$t/VERSION
chmod 0644 $t/VERSION
c2=$(ostree commit --repo=archive -b vectors --parent="$c1" --timestamp=@1625140800 -s 'Second vector commit' \
  -m 'Adds VERSION.' --add-metadata-string=version=2.0 $t)
rm -rf "$out/objects" && mkdir "$out/objects"
for f in archive/objects/*/*; do cp "$f" "$out/objects/$(basename "$(dirname "$f")")$(basename "$f")"; done
# Also writes objects/<csum>.ostreemeta from the bare-user repo's `user.ostreemeta` xattrs.
python3 "$out/manifest.py" archive bare-user "$out/objects" vector.note "$c1" "$c2" >"$out/manifest.json"
echo "wrote $(find "$out/objects" -type f | wc -l) objects; commits $c1 $c2"
