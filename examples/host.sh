#!/usr/bin/env bash
# Walkthrough 2, a host: install the first version into a fresh sysroot
# (what an image builder does), point it at the publisher, then upgrade,
# look at the deployments, and roll back.
# Usage: host.sh WORK URL
#   WORK holds publisher.key.pub and build/ from build-server.sh; URL
#   serves WORK/build. Root gives a real bare sysroot; without root the
#   sysroot is a bare-user one owned by the caller.
set -euo pipefail
work=$1 url=$2
here=$(cd "$(dirname "$0")" && pwd)
pu=${PU:-$here/../target/release/photon-upgrade}
branch=sample/x86_64/stable
root=$work/sysroot
sys() { "$pu" --sysroot "$root" "$@"; }

if [ ! -e "$root/ostree/deploy" ]; then
  echo "== install the current version from the build repository"
  "$pu" --repo "$work/build" --sysroot "$root" install --os sample \
    --karg root=LABEL=root --karg console=ttyS0 --origin origin:$branch $branch
  sys remote add origin "$url" --trusted-key "$work/publisher.key.pub"
fi

echo "== is there an update? (exit 77: no)"
rc=0; sys upgrade --check || rc=$?
[ $rc = 0 ] || [ $rc = 77 ] || exit $rc

echo "== upgrade: pull (verified) and deploy; the new deployment boots next"
rc=0; sys upgrade || rc=$?
[ $rc = 0 ] || [ $rc = 77 ] || exit $rc
sys status
[ $rc = 0 ] || exit 0   # nothing new: nothing to roll back from

echo "== roll back: the previous deployment is the default again"
sys rollback
sys status
