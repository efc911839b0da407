#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each; exits 1 if any target crashes.
# Needs, on a fresh Debian 12 with rustup:
#   apt-get install -y build-essential && rustup toolchain install nightly --profile minimal && cargo install cargo-fuzz --locked
# Usage: repo-format/fuzz/smoke.sh SECONDS
#
# Each committed crash input in artifacts/<target>/ is replayed first, whole
# (as a file, so libFuzzer's max_len does not cut it). Then the target fuzzes
# corpus/<target> (git-ignored), which starts from seeds/<target> and keeps
# what the fuzzer finds. A new crash is written to artifacts/<target>/.
set -euo pipefail
shopt -s nullglob
secs=${1:?usage: smoke.sh SECONDS}
cd "$(dirname "$0")"

# One build for all targets (same flags as `fuzz run`, so run does not rebuild).
cargo +nightly fuzz build
passed=0 failed=()
for t in $(cargo +nightly fuzz list); do
  mkdir -p "corpus/$t"
  cp -r "seeds/$t/." "corpus/$t/"
  replay=(artifacts/"$t"/*)
  echo "=== $t: ${#replay[@]} regression input(s), then ${secs}s" >&2
  # A replayed crash must not be saved again as a new artifact.
  if { [ ${#replay[@]} -eq 0 ] || cargo +nightly fuzz run "$t" "${replay[@]}" -- -artifact_prefix="${TMPDIR:-/tmp}/$t-"; } &&
    cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1; then
    passed=$((passed + 1))
  else
    failed+=("$t")
  fi
done
[ ${#failed[@]} -eq 0 ] || echo "crashed: ${failed[*]}" >&2
echo "fuzz: $passed passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
