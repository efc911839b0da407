"""Writes manifest.json for the golden vectors; called by make-vectors.sh.

Every fact comes from what the real `ostree` reports (`ostree ls -R -X -C`,
`ostree show --raw`, `ostree show --print-*-key`) or from the bare-user
repository on disk, never from this crate, so the Rust tests compare the
crate's parsers against ostree's own view of the same objects.
Usage: manifest.py ARCHIVE_REPO BARE_USER_REPO OUT_OBJECTS_DIR DETACHED_KEY COMMIT...
"""

import ast
import json
import os
import re
import subprocess
import sys

archive, bare_user, out_dir, detached_key, *commits = sys.argv[1:]
TYPE_BITS = {"d": 0o040000, "-": 0o100000, "l": 0o120000}
LS_LINE = re.compile(
    r"^(?P<kind>[-dl])(?P<perm>[0-7]+) (?P<uid>\d+) (?P<gid>\d+) +(?P<size>\d+) (?P<csum>[0-9a-f]{64})"
    r"(?: (?P<meta>[0-9a-f]{64}))? \{ (?P<xattrs>.*) \} (?P<path>/.*?)(?: -> (?P<target>.*))?$"
)


def ostree(*args):
    return subprocess.run(["ostree", f"--repo={archive}", *args], check=True, capture_output=True, text=True,
                          encoding="utf-8").stdout


def split_top(text):
    """Splits GVariant text at the commas that are not nested in brackets or quotes."""
    parts, cur, depth, quote, escaped = [], "", 0, None, False
    for ch in text:
        if quote:
            quote = None if ch == quote and not escaped else quote
            escaped = ch == "\\" and not escaped
        elif ch in "'\"":
            quote = ch
        elif ch in "([{<" or ch in ")]}>":
            depth += 1 if ch in "([{<" else -1
        elif ch == "," and depth == 0:
            parts, cur = parts + [cur.strip()], ""
            continue
        cur += ch
    return parts + [cur.strip()] if cur.strip() else parts


def literal(text):
    """GVariant text of strings, bytestrings and byte lists as a Python value."""
    return ast.literal_eval(re.sub(r"@[^ ]+ |byte ", "", text))


def to_hex(value):
    """A bytestring (b'..', which GVariant prints only for NUL-terminated `ay`) or a byte list, as hex."""
    return (value + b"\0" if isinstance(value, bytes) else bytes(value)).hex()


def hex_bytes(text):
    return to_hex(literal(text))


def xattrs(text):
    return [{"name": name.decode(), "value_hex": to_hex(value)} for name, value in literal(text)]


objects = {}
VERSION = subprocess.run(["ostree", "--version"], check=True, capture_output=True, text=True).stdout.split("'")[1]


def add(name, facts, path=None):
    """Records an object once; tree objects also list every path they appear at, in both commits."""
    entry = objects.setdefault(name, {"file": name, **facts})
    if path is not None:
        entry["paths"] = sorted(set(entry.get("paths", [])) | {path})


for commit in commits:
    entries = [LS_LINE.match(line).groupdict() for line in ostree("ls", "-R", "-X", "-C", commit).splitlines()]
    for e in entries:
        mode = f"{TYPE_BITS[e['kind']] | int(e['perm'], 8):o}"
        common = {"uid": int(e["uid"]), "gid": int(e["gid"]), "mode": mode, "xattrs": xattrs(e["xattrs"])}
        if e["kind"] != "d":
            add(f"{e['csum']}.filez", {"type": "file", "checksum": e["csum"], **common, "size": int(e["size"]),
                                       "symlink_target": e["target"] or ""}, e["path"])
            continue
        add(f"{e['meta']}.dirmeta", {"type": "dirmeta", "checksum": e["meta"], **common}, e["path"])
        kids = [k for k in entries if k["path"] != e["path"] and os.path.dirname(k["path"]) == e["path"]]
        files = [{"name": os.path.basename(k["path"]), "checksum": k["csum"]} for k in kids if k["kind"] != "d"]
        dirs = [{"name": os.path.basename(k["path"]), "tree": k["csum"], "meta": k["meta"]} for k in kids
                if k["kind"] == "d"]
        add(f"{e['csum']}.dirtree", {"type": "dirtree", "checksum": e["csum"], "files": files, "dirs": dirs},
            e["path"])
    raw = ostree("show", "--raw", commit).splitlines()[1]
    meta, parent, related, subject, body, timestamp, tree, dirmeta = split_top(raw[1:-1])
    keys = [(literal(kv.split(": <", 1)[0]), kv) for kv in split_top(meta[1:-1])]
    add(f"{commit}.commit", {
        "type": "commit", "checksum": commit, "parent": hex_bytes(parent) or None, "related": literal(related),
        "subject": literal(subject), "body": literal(body), "timestamp": int(timestamp.split()[1]),
        "root_tree": hex_bytes(tree), "root_meta": hex_bytes(dirmeta),
        "version": literal(ostree("show", "--print-metadata-key=version", commit)),
        # Values as `ostree show` prints them: byte-swapped first (ot_dump_variant).
        "metadata": [{"key": k, "text": ostree("show", f"--print-metadata-key={k}", commit).strip()} for k, _ in keys],
    })
    detached = subprocess.run(["ostree", f"--repo={archive}", "show", f"--print-detached-metadata-key={detached_key}",
                               commit], capture_output=True, text=True, encoding="utf-8")
    if detached.returncode == 0:
        add(f"{commit}.commitmeta", {"type": "commitmeta", "checksum": commit,
                                     "metadata": [{"key": detached_key, "text": detached.stdout.strip()}]})

for sub in sorted(os.listdir(f"{bare_user}/objects")):
    for name in sorted(os.listdir(f"{bare_user}/objects/{sub}")):
        csum, ext = name.split(".")
        if ext != "file":
            continue
        path = f"{bare_user}/objects/{sub}/{name}"
        with open(f"{out_dir}/{sub}{csum}.ostreemeta", "wb") as f:
            f.write(os.getxattr(path, "user.ostreemeta"))
        st = os.lstat(path)
        add(f"{sub}{csum}.ostreemeta", {"type": "ostreemeta", "checksum": sub + csum,
                                        "bare_user_mode": f"{st.st_mode:o}", "bare_user_size": st.st_size})

json.dump({"generator": "make-vectors.sh with ostree " + VERSION, "commits": commits,
           "objects": sorted(objects.values(), key=lambda o: o["file"])}, sys.stdout, indent=1, ensure_ascii=False)
print()
