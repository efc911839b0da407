#!/usr/bin/env bash
# Delta benchmark, ours vs OSTree's static deltas, one run, same corpus,
# same nginx, same 25 ms one-way delay (../shared/corpus/delayproxy.py; this
# kernel has no netem). Both tools work on the same commits: v1 and v2 are
# committed once (by us; the objects are OSTree's format) into `pub`, and
# `pub-o` is a hardlinked copy where `ostree static-delta generate` and
# `ostree summary -u` run, so each tool serves its own deltas.
#
# Rows: building the v1 -> v2 delta and the from-empty delta of v2 (wall,
# peak RSS, bytes on disk); pulling v1 -> v2 through the delta and the first
# pull of v2 through the from-empty delta over the delayed link (wall, peak
# RSS, requests and bytes from nginx's log), plus ostree's plain object pull
# of v2 over the same link, which the from-empty target is set against.
# Clients are bare-user repositories for both tools.
#
# Usage: bench/delta.sh [CORPUS]   (run as root; ostree's from-empty delta
# takes about 5 minutes). ROWS=REGEX runs only the rows whose name matches
# (e.g. ROWS='through|objects' for the pulls only).
set -euo pipefail
corpus=${1:-/var/tmp/corpus}
here=$(cd "$(dirname "$0")" && pwd)
delayproxy=${DELAYPROXY:-$here/../../shared/corpus/delayproxy.py}
cargo build --release --quiet --manifest-path "$here/../Cargo.toml"
pu="$here/../target/release/photon-upgrade"
work=$(mktemp -d /var/tmp/pu-deltabench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  nginx -c "$work/nginx.conf" -s stop 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
want() { [[ -z "${ROWS:-}" || "$1" =~ $ROWS ]]; }
mb() { echo "$1 / 1000000" | bc -l | xargs printf '%.2f'; }
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
# timed OUT CMD...: wall seconds and peak RSS (KB) of CMD into OUT.
timed() {
  local out=$1; shift
  /usr/bin/time -f "%e %M" -o "$out" "$@" >/dev/null
}

echo "== publishing v1 and v2" >&2
"$pu" --repo pub repo init --mode archive
"$pu" --repo pub repo commit -b os --timestamp 1 "$corpus/v1" >/dev/null
v1=$("$pu" --repo pub repo rev-parse os)
"$pu" --repo pub repo commit -b os --timestamp 2 "$corpus/v2" >/dev/null
v2=$("$pu" --repo pub repo rev-parse os)
cp -al pub pub-o

cat >nginx.conf <<CONF
daemon on; user root; pid $work/nginx.pid; error_log $work/error.log; worker_processes 2;
events { worker_connections 4096; }
http {
  log_format hit '\$request_uri \$status \$body_bytes_sent';
  access_log $work/access.log hit;
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp; uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:18080; root $work; }
}
CONF
mkdir -p tmp
nginx -c "$work/nginx.conf"
python3 "$delayproxy" 127.0.0.1 19080 127.0.0.1 18080 25 &
pids+=($!)
sleep 1
log_stats() { awk '{n++; b+=$3} END {printf "%d %d", n, b}' access.log; }

echo "corpus: $(tr '\n' ' ' <"$corpus/stats.txt"); $(nproc) cores"
echo
echo "| build | ours | ostree | time ratio | peak RSS ours / ostree | bytes ours / ostree |"
echo "|---|---|---|---|---|---|"
build_row() { # NAME OUR_ARGS... -- OSTREE_ARGS...
  local name=$1; shift
  want "$name" || return 0
  local ours=() theirs=()
  while [ "$1" != -- ]; do ours+=("$1"); shift; done
  shift
  theirs=("$@")
  timed t.ours "$pu" --repo pub repo delta generate "${ours[@]}"
  local id
  id=$("$pu" --repo pub --json repo delta list | python3 -c 'import json,sys; print(json.load(sys.stdin)["deltas"][-1]["id"])')
  local bo to ro
  read -r to ro <t.ours
  bo=$(du -sb "pub/photon-deltas" | cut -f1)
  if [ ${#theirs[@]} -gt 0 ]; then
    rm -rf pub-o/deltas
    timed t.ostree ostree --repo=pub-o static-delta generate "${theirs[@]}"
    local tt rt bt fb
    read -r tt rt <t.ostree
    bt=$(du -sb pub-o/deltas | cut -f1)
    # Objects the delta leaves out are fetched loose: count them as its bytes.
    fb=$(ostree --repo=pub-o static-delta show "$(ostree --repo=pub-o static-delta list | tail -n 1)" 2>/dev/null |
      awk '/^Total Fallback Size:/ {print $4}')
    fb=${fb:-0}
    printf '| %s | %.2f s | %.2f s | %s | %d / %d MB | %s / %s MB%s |\n' "$name" "$to" "$tt" "$(ratio "$to" "$tt")" \
      $((ro / 1024)) $((rt / 1024)) "$(mb "$bo")" "$(mb "$bt")" "$([ "$fb" -gt 0 ] && echo " + $(mb "$fb") MB loose")"
  else
    printf '| %s | %.2f s | – | – | %d MB / – | %s MB / – |\n' "$name" "$to" $((ro / 1024)) "$(mb "$bo")"
  fi
  echo "   ($name: delta $id)" >&2
  rm -rf pub/photon-deltas
}
build_row "v1 -> v2 delta" --from "$v1" --to "$v2" -- --from="$v1" --to="$v2"
build_row "from-empty delta of v2" --to "$v2" -- --empty --to="$v2"
build_row "from-empty delta of v2, --max" --to "$v2" --max --

# Publish both kinds for the pulls.
"$pu" --repo pub repo delta generate --from "$v1" --to "$v2" >/dev/null
"$pu" --repo pub repo delta generate --to "$v2" >/dev/null
"$pu" --repo pub repo summary --update >/dev/null
have=$(ostree --repo=pub-o static-delta list 2>/dev/null || true)
grep -qx "$v1-$v2" <<<"$have" || ostree --repo=pub-o static-delta generate --from="$v1" --to="$v2" >/dev/null
grep -qx "$v2" <<<"$have" || ostree --repo=pub-o static-delta generate --empty --to="$v2" >/dev/null
ostree --repo=pub-o summary -u

# one TOOL MODE: a fresh client, v1 first when MODE=update (over loopback,
# untimed), then the timed pull of `os` over the delayed link.
one() {
  local tool=$1 mode=$2
  rm -rf client
  if [ "$tool" = ours ]; then
    "$pu" --repo client repo init --mode bare-user
    "$pu" --repo client remote add origin http://127.0.0.1:19080/pub --no-sign-verify
    "$pu" --repo client remote add near http://127.0.0.1:18080/pub --no-sign-verify
    [ "$mode" = update ] && "$pu" --repo client pull near "$v1" --disable-deltas >/dev/null
    : >access.log
    local extra=()
    [ "$mode" = objects ] && extra=(--disable-deltas)
    timed t "$pu" --repo client pull origin os "${extra[@]}"
  else
    ostree init --repo=client --mode=bare-user
    ostree remote add --repo=client --no-gpg-verify origin http://127.0.0.1:19080/pub-o
    ostree remote add --repo=client --no-gpg-verify near http://127.0.0.1:18080/pub-o
    if [ "$mode" = update ]; then
      ostree pull --repo=client --disable-static-deltas near "os@$v1" >/dev/null
      ostree refs --repo=client --create=origin:os "$v1"
    fi
    : >access.log
    local extra=()
    [ "$mode" = objects ] && extra=(--disable-static-deltas)
    timed t ostree pull --repo=client "${extra[@]}" origin os
  fi
  echo "$(cat t) $(log_stats)"
}

echo
echo "| pull, 25 ms one way | ours | ostree | time ratio | peak RSS ours / ostree | requests ours / ostree | bytes ours / ostree |"
echo "|---|---|---|---|---|---|---|"
pull_row() { # NAME OUR_MODE OSTREE_MODE
  want "$1" || return 0
  local to ro no bo tt rt nt bt
  read -r to ro no bo < <(one ours "$2")
  read -r tt rt nt bt < <(one ostree "$3")
  printf '| %s | %.2f s | %.2f s | %s | %d / %d MB | %d / %d | %s / %s MB |\n' "$1" "$to" "$tt" "$(ratio "$to" "$tt")" \
    $((ro / 1024)) $((rt / 1024)) "$no" "$nt" "$(mb "$bo")" "$(mb "$bt")"
}
pull_row "v1 -> v2 through deltas" update update
pull_row "first pull of v2 through from-empty deltas" empty empty
pull_row "first pull of v2: our from-empty delta vs ostree's objects" empty objects
