#!/usr/bin/env bash
# Side-by-side benchmark against the real `ostree` on the same corpus, in
# one run. Prints a markdown table: median wall time and peak RSS of each,
# and the ratio ours / ostree.
# Usage: bench/run.sh [CORPUS [RUNS]]   (corpus from ../shared/corpus/make-corpus.sh;
#        default /var/tmp/corpus, 3 runs). Run as root: the trees are root-owned.
set -euo pipefail
corpus=${1:-/var/tmp/corpus} runs=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
cargo build --release --quiet --manifest-path "$here/../Cargo.toml"
pu="$here/../target/release/photon-upgrade"
work=$(mktemp -d /var/tmp/pu-bench.XXXXXX)
trap 'chattr -R -i "$work" 2>/dev/null; rm -rf "$work"' EXIT
tar -cf /dev/null -C "$corpus" v1 v2   # warm the page cache for both tools alike

# measure LABEL SETUP CMD: runs SETUP then CMD (timed) $runs times; prints "median_s max_rss_kb".
measure() {
  local setup=$1 cmd=$2 times=() rss=0
  for _ in $(seq "$runs"); do
    (cd "$work" && eval "$setup") >/dev/null 2>&1
    (cd "$work" && /usr/bin/time -f "%e %M" -o "$work/.t" bash -c "$cmd" >/dev/null 2>&1) || { echo "FAILED: $cmd" >&2; exit 1; }
    read -r t m < "$work/.t"; times+=("$t"); [ "$m" -gt "$rss" ] && rss=$m
  done
  printf '%s %s\n' "$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")" "$rss"
}

row() { # row NAME OUR_SETUP OUR_CMD THEIR_SETUP THEIR_CMD
  read -r ot om < <(measure "$2" "$3")
  read -r tt tm < <(measure "$4" "$5")
  printf '| %s | %.2f s | %.2f s | %.2f | %d MB | %d MB |\n' "$1" "$ot" "$tt" "$(echo "$ot / $tt" | bc -l)" $((om / 1024)) $((tm / 1024))
}

O="ostree"
echo "corpus: $corpus ($(cat "$corpus/stats.txt" 2>/dev/null | tr '\n' ' ')), $runs runs each, $(nproc) cores"
echo
echo "| operation | ours | ostree | ratio | our RSS | ostree RSS |"
echo "|---|---|---|---|---|---|"
row "commit v1 (archive)" \
  "rm -rf a && $pu --repo a repo init --mode archive" "$pu --repo a repo commit -b os --timestamp 1 $corpus/v1" \
  "rm -rf b && $O init --repo=b --mode=archive" "$O commit --repo=b -b os --timestamp=@1 --tree=dir=$corpus/v1"
row "commit v2 over v1 (archive)" \
  "rm -rf a && $pu --repo a repo init --mode archive && $pu --repo a repo commit -b os --timestamp 1 $corpus/v1" "$pu --repo a repo commit -b os --timestamp 2 $corpus/v2" \
  "rm -rf b && $O init --repo=b --mode=archive && $O commit --repo=b -b os --timestamp=@1 --tree=dir=$corpus/v1" "$O commit --repo=b -b os --timestamp=@2 --tree=dir=$corpus/v2"
row "commit v1 (bare-user)" \
  "rm -rf c && $pu --repo c repo init --mode bare-user" "$pu --repo c repo commit -b os --timestamp 1 $corpus/v1" \
  "rm -rf d && $O init --repo=d --mode=bare-user" "$O commit --repo=d -b os --timestamp=@1 --tree=dir=$corpus/v1"
row "checkout v1 hardlinks (bare-user, user mode)" \
  "rm -rf co" "$pu --repo c repo checkout --hardlink --user-mode os co" \
  "rm -rf co" "$O checkout --repo=d -U -H os co"
row "checkout v1 copy (bare-user, user mode)" \
  "rm -rf co" "$pu --repo c repo checkout --user-mode os co" \
  "rm -rf co" "$O checkout --repo=d -U -C os co"
row "fsck v1+v2 (archive)" "true" "$pu --repo a repo fsck" "true" "$O fsck --repo=b"
row "fsck v1 (bare-user)" "true" "$pu --repo c repo fsck" "true" "$O fsck --repo=d"
