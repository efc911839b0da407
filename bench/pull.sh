#!/usr/bin/env bash
# Pull benchmark, ours vs `ostree pull`, same server (nginx), same corpus,
# one run: full pull of v1 and the v1 -> v2 update, without deltas, over
# loopback and over a link with 25 ms one-way delay (../shared/corpus/
# delayproxy.py in front of nginx; this kernel has no netem). nginx serves
# both HTTP/1.1 and HTTPS with HTTP/2; each tool uses what it would use
# against a CDN (ostree: libcurl, 8 requests in flight; ours: 8 on
# HTTP/1.1, 64 streams on HTTP/2).
# Prints a markdown table: wall time, requests and bytes (nginx's log), ratio.
# Usage: bench/pull.sh [CORPUS [RUNS]]   (run as root)
# ROWS=TEXT runs only the rows whose name contains TEXT; PU_SET=KEY=VALUE
# passes `--set KEY=VALUE` to our `remote add` (e.g. fetch-parallelism=32).
set -euo pipefail
corpus=${1:-/var/tmp/corpus} runs=${2:-1}
here=$(cd "$(dirname "$0")" && pwd)
delayproxy=${DELAYPROXY:-$here/../../shared/corpus/delayproxy.py}
cargo build --release --quiet --manifest-path "$here/../Cargo.toml"
pu="$here/../target/release/photon-upgrade"
work=$(mktemp -d /var/tmp/pu-pullbench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; nginx -c "$work/nginx.conf" -s stop 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"

# Publish v1 and v2 (our commits; the objects are OSTree's format either way).
"$pu" --repo pub repo init --mode archive
"$pu" --repo pub repo commit -b os --timestamp 1 "$corpus/v1" >/dev/null
v1=$("$pu" --repo pub repo rev-parse os)
"$pu" --repo pub repo commit -b os --timestamp 2 "$corpus/v2" >/dev/null
v2=$("$pu" --repo pub repo rev-parse os)
"$pu" --repo pub repo summary --update

# nginx: plain HTTP on 18080, HTTPS+HTTP/2 on 18443 with a throwaway CA.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=bench >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 >/dev/null 2>&1
echo "subjectAltName=IP:127.0.0.1" > ext
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext >/dev/null 2>&1
mkdir -p tmp
cat > nginx.conf <<CONF
daemon on; user root; pid $work/nginx.pid; error_log $work/error.log; worker_processes 2;
events { worker_connections 4096; }
http {
  log_format hit '\$request_uri \$status \$body_bytes_sent';
  access_log $work/access.log hit;
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp; uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  keepalive_requests 1000000; http2_max_concurrent_streams 256;
  server { listen 127.0.0.1:18080; root $work/pub; }
  server { listen 127.0.0.1:18443 ssl http2; ssl_certificate $work/srv.pem; ssl_certificate_key $work/srv.key; root $work/pub; }
}
CONF
nginx -c "$work/nginx.conf"
python3 "$delayproxy" 127.0.0.1 19080 127.0.0.1 18080 25 & pids+=($!)
python3 "$delayproxy" 127.0.0.1 19443 127.0.0.1 18443 25 & pids+=($!)
sleep 1

log_stats() { awk '{n++; b+=$3} END {printf "%d %d", n, b}' access.log; }

# one TOOL LABEL URL REVS...: a fresh client pulls REVS in order; only the last is measured.
one() {
  local tool=$1 url=$2; shift 2
  rm -rf client
  if [ "$tool" = ours ]; then
    "$pu" --repo client repo init --mode bare-user
    "$pu" --repo client remote add origin "$url" --no-sign-verify --tls-ca "$work/ca.pem" ${PU_SET:+--set "$PU_SET"}
    for r in "${@:1:$#-1}"; do "$pu" --repo client pull origin "$r" >/dev/null; done
    : > access.log
    /usr/bin/time -f "%e" -o t "$pu" --repo client pull origin "${@: -1}" >/dev/null
  else
    ostree init --repo=client --mode=bare-user
    ostree remote add --repo=client --no-gpg-verify --set=tls-ca-path="$work/ca.pem" origin "$url"
    for r in "${@:1:$#-1}"; do ostree pull --repo=client --disable-static-deltas origin "$r" >/dev/null; done
    : > access.log
    /usr/bin/time -f "%e" -o t ostree pull --repo=client --disable-static-deltas origin "${@: -1}" >/dev/null
  fi
  echo "$(cat t) $(log_stats)"
}

row() { # NAME URL_OURS URL_OSTREE REVS...
  local name=$1 uo=$2 ut=$3; shift 3
  [[ -z "${ROWS:-}" || "$name" == *$ROWS* ]] || return 0
  local best_o= best_t=
  for _ in $(seq "$runs"); do
    read -r to ro bo < <(one ours "$uo" "$@")
    read -r tt rt bt < <(one ostree "$ut" "$@")
    echo "  run: ours ${to}s ${ro} req ${bo} B | ostree ${tt}s ${rt} req ${bt} B" >&2
    best_o="$to $ro $bo"; best_t="$tt $rt $bt"
  done
  read -r to ro bo <<<"$best_o"; read -r tt rt bt <<<"$best_t"
  printf '| %s | %.2f s | %.2f s | %.2f | %d / %d | %.1f / %.1f MB |\n' "$name" "$to" "$tt" "$(echo "$to / $tt" | bc -l)" "$ro" "$rt" \
    "$(echo "$bo / 1000000" | bc -l)" "$(echo "$bt / 1000000" | bc -l)"
}

echo "corpus: $(tr '\n' ' ' < "$corpus/stats.txt"); $(nproc) cores"
echo
echo "| pull (no deltas) | ours | ostree | ratio | requests ours / ostree | bytes ours / ostree |"
echo "|---|---|---|---|---|---|"
row "full v1, loopback, HTTP/1.1" http://127.0.0.1:18080 http://127.0.0.1:18080 "$v1"
row "full v1, loopback, HTTPS+HTTP/2" https://127.0.0.1:18443 https://127.0.0.1:18443 "$v1"
row "v1 -> v2, loopback, HTTP/1.1" http://127.0.0.1:18080 http://127.0.0.1:18080 "$v1" "$v2"
row "full v1, 25 ms, HTTP/1.1" http://127.0.0.1:19080 http://127.0.0.1:19080 "$v1"
row "full v1, 25 ms, HTTPS+HTTP/2" https://127.0.0.1:19443 https://127.0.0.1:19443 "$v1"
row "v1 -> v2, 25 ms, HTTPS+HTTP/2" https://127.0.0.1:19443 https://127.0.0.1:19443 "$v1" "$v2"
