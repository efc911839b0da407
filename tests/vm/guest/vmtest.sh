#!/bin/bash
# The in-guest half of tests/vm/run.sh, installed as /usr/lib/photon-vmtest/vmtest
# in every version of the test OS. It never judges a boot itself: the
# photon-upgrade units do. It only drives the update flow and reports what
# it sees as one-line markers on the serial console:
#
#   VMTEST boot n=N booted=VERSION_ID entry=...      (vmtest boot, every boot, early)
#   VMTEST step=N booted=VERSION_ID status=... ok    (vmtest step, once the boot is judged)
#   VMTEST FAIL step=N booted=... reason             (then it powers off)
#   VMTEST DONE                                      (then it powers off)
#
# Its progress is /var/lib/photon-vmtest/step: /var is the stateroot's,
# shared by every deployment, so the count survives the updates.
#
#   step 0, on a: add the remote, pull and deploy b, reboot
#   (b's health check fails; our units reboot; its tries run out; the firmware boots a)
#   step 1, on a: b is failed with a reason, a is booted, good and the default;
#                 pull and deploy c, reboot
#   step 2, 3, on c: c is booted, good and the default; reboot
#   step 4, on c: the same, then power off
set -u
state=/var/lib/photon-vmtest
console=/dev/ttyS0
pu=/usr/bin/photon-upgrade
# shellcheck disable=SC1091
. /usr/lib/os-release
me=${VERSION_ID:-unknown}
mkdir -p "$state"
step=$(cat "$state/step" 2>/dev/null || echo 0)

say() { echo "VMTEST $*" >"$console"; }
# Lines of evidence (journal excerpts, command output) for the serial log.
show() { sed "s/^/VMTEST-LOG $1: /" >"$console"; }
finish() {
  sync
  systemctl poweroff --no-block
  exit "$1"
}
fail() {
  say "FAIL step=$step booted=$me $*"
  "$pu" status 2>&1 | show status
  journalctl -b --no-pager -o short-monotonic -u 'photon-upgrade*' 2>&1 | tail -n 40 | show journal
  finish 1
}

# version:state, booted one starred, in boot order: a:good*,b:failed
summary() {
  jq -r '[.deployments[] | "\(.version):\(.boot.state)\(if .booted then "*" else "" end)"] | join(",")' "$state/status.json"
}
# A jq test on the status document; fails the step with WHY when false.
expect() {
  jq -e "$1" "$state/status.json" >/dev/null || fail "$2 (status: $(summary))"
}
load_status() {
  "$pu" --json status >"$state/status.json" 2>"$state/status.err" ||
    fail "photon-upgrade status failed: $(tr '\n' ' ' <"$state/status.err")"
}
esp_view() {
  if [ -d /boot/efi/loader/entries ]; then
    local names=() f
    for f in /boot/efi/loader/entries/*.conf; do names+=("${f##*/}"); done
    echo "entries=${names[*]}"
  elif [ -f /boot/efi/grub/grubenv ]; then
    echo "grubenv=$(grep -v '^#' /boot/efi/grub/grubenv | tr '\n' ' ' | sed 's/ $//')"
  fi
}
# Pull REF from the update disk and deploy it (`deploy origin:REF`).
update_to() {
  mkdir -p /mnt/updates
  mountpoint -q /mnt/updates || mount -o ro LABEL=updates /mnt/updates || fail "cannot mount the update disk"
  if ! "$pu" remote list 2>/dev/null | grep -qx origin; then
    "$pu" remote add origin file:///mnt/updates/repo \
      --trusted-key /usr/share/photon-vmtest/publisher.key.pub 2>&1 | show remote-add ||
      fail "remote add failed"
  fi
  "$pu" --progress none pull origin "$1" >"$state/pull.log" 2>&1 || {
    show pull <"$state/pull.log"
    fail "pull origin $1 failed"
  }
  "$pu" deploy "origin:$1" >"$state/deploy.log" 2>&1 || {
    show deploy <"$state/deploy.log"
    fail "deploy origin:$1 failed"
  }
  show deploy <"$state/deploy.log"
}
reboot_now() {
  echo $((step + 1)) >"$state/step"
  sync
  systemctl reboot --no-block
  exit 0
}

case ${1:-} in
boot)
  n=$(($(cat "$state/boots" 2>/dev/null || echo 0) + 1))
  echo "$n" >"$state/boots"
  sync
  # The entry systemd-boot picked, before its rename (GRUB sets nothing).
  # efivarfs cannot seek: tail reads it from a pipe. The first 4 bytes are
  # the attributes, the rest UTF-16.
  entry=
  f=/sys/firmware/efi/efivars/LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f
  # shellcheck disable=SC2002
  [ -f "$f" ] && entry=$(cat "$f" | tail -c +5 | tr -d '\000')
  say "boot n=$n booted=$me entry=${entry:-none} uptime=$(cut -d' ' -f1 /proc/uptime)"
  exit 0
  ;;
step) ;;
*)
  echo "usage: vmtest boot|step" >&2
  exit 2
  ;;
esac

up=$(cut -d' ' -f1 /proc/uptime)
load_status
case $step:$me in
0:a)
  expect '.deployments[0].booted and .deployments[0].boot.state == "good"' "a is not booted first and good"
  say "step=0 booted=a status=$(summary) $(esp_view) uptime=$up ok"
  update_to os/b
  load_status
  expect '.deployments[0].version == "b" and .deployments[0].boot.state == "unproven"' "b is not the unproven default after its deploy"
  say "step=0 deployed=b status=$(summary) $(esp_view)"
  reboot_now
  ;;
*:b)
  # The health check fails and our units reboot; nothing to do here. If
  # they do not, say so rather than wait for the harness's timeout.
  say "step=$step booted=b status=$(summary) $(esp_view) uptime=$up waiting for our units to reboot"
  sleep 240
  fail "b was still running 240 s after its health checks: nothing rebooted it"
  ;;
1:a)
  expect '.deployments[0].booted and .deployments[0].version == "a" and .deployments[0].boot.state == "good"' \
    "a is not the booted, good default after the fallback"
  expect 'any(.deployments[]; .version == "b" and .boot.state == "failed" and (.boot.failure // "") != "")' \
    "b is not recorded failed with a reason"
  reason=$(jq -r '.deployments[] | select(.version == "b") | .boot.failure' "$state/status.json" | tr '\n' ' ')
  say "step=1 booted=a status=$(summary) $(esp_view) uptime=$up b-failure=\"$reason\" ok"
  # Evidence that our units judged b's boots: their journal (persistent).
  for b in -2 -1; do
    journalctl -b "$b" --no-pager -o cat -u photon-upgrade-health.service \
      -u photon-upgrade-boot-failed.service -u photon-upgrade-mark-good.service 2>&1 | show "boot$b"
  done
  update_to os/c
  load_status
  expect '.deployments[0].version == "c" and .deployments[0].boot.state == "unproven"' "c is not the unproven default after its deploy"
  say "step=1 deployed=c status=$(summary) $(esp_view)"
  reboot_now
  ;;
[234]:c)
  expect '.deployments[0].booted and .deployments[0].version == "c" and .deployments[0].boot.state == "good"' \
    "c is not the booted, good default"
  say "step=$step booted=c status=$(summary) $(esp_view) uptime=$up ok"
  if [ "$step" = 4 ]; then
    say "DONE"
    finish 0
  fi
  reboot_now
  ;;
*)
  fail "unexpected: version $me booted at step $step"
  ;;
esac
