#!/usr/bin/env bash
# The deployment files: systemd units pass `systemd-analyze verify` (skipped, and said so,
# where systemd is not installed) and keep the hardening the operator's guide promises;
# the container files build from Debian bookworm with install-deps.sh and ship the
# binaries they build.
set -uo pipefail

ROOT="$TEST_SRCDIR/$TEST_WORKSPACE"
UNITS="$ROOT/deploy/systemd"
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
failures=0

check() {  # check DESCRIPTION COMMAND...: the command must succeed
  local what=$1
  shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; failures=$((failures + 1)); fi
}

# 1. Hardening and restart policy, whatever the host.
for unit in wxp-server wxp-agent; do
  f="$UNITS/$unit.service"
  check "$unit.service exists" [ -f "$f" ]
  for directive in '^User=wxp' '^ProtectSystem=strict$' '^NoNewPrivileges=true$' \
    '^PrivateTmp=true$' '^ReadWritePaths=/var/lib/' '^Restart=on-failure$' \
    '^StateDirectory=' '^ExecStart=/usr/local/bin/' '^WantedBy=multi-user.target$'; do
    check "$unit.service has $directive" grep -q "$directive" "$f"
  done
done
check "the server unit passes its data dir" grep -q -- '--data_dir=/var/lib/wxp-server' "$UNITS/wxp-server.service"
check "the agent unit passes its config" grep -q -- '--config=/etc/wxp-agent/agent.textproto' "$UNITS/wxp-agent.service"

# 2. systemd-analyze verify, in a scratch root so the units' binaries need not be
#    installed on this host (stand-ins take their place) and nothing touches /etc.
if command -v systemd-analyze >/dev/null && [ -d /usr/lib/systemd/system ]; then
  root="$TMP/root"
  mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd"
  cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/"
  for bin in wxp-server wxp-agent; do
    printf '#!/bin/sh\nexit 0\n' >"$root/usr/local/bin/$bin"
    chmod 0755 "$root/usr/local/bin/$bin"
  done
  cp "$UNITS"/*.service "$root/etc/systemd/system/"
  # verify exits 0 on unknown keys and bad values (it only warns), so any output fails too.
  out=$(systemd-analyze verify --root="$root" wxp-server.service wxp-agent.service 2>&1)
  code=$?
  check "systemd-analyze verify exits 0" [ $code -eq 0 ]
  check "systemd-analyze verify prints no warning" [ -z "$out" ]
  [ -n "$out" ] && echo "$out"
  # systemd's own exposure score (0 best, 10 worst): "OK" is at most 4.0 (--threshold=40).
  for unit in wxp-server wxp-agent; do
    score=$(systemd-analyze security --offline=yes --root="$root" --threshold=40 "$unit.service" 2>&1)
    code=$?
    level=$(tail -1 <<<"$score" | grep -o 'level for .*')
    check "$unit.service exposure is OK (<= 4.0): $level" [ $code -eq 0 ]
  done
  # The check itself must be able to fail: a misspelt key is reported.
  sed 's/^ProtectSystem=/ProtectSystm=/' "$UNITS/wxp-server.service" >"$root/etc/systemd/system/broken.service"
  check "systemd-analyze verify reports a misspelt key" \
    bash -c "systemd-analyze verify --root='$root' broken.service 2>&1 | grep -q ProtectSystm"
else
  echo "skip systemd-analyze verify: systemd is not installed here"
fi

# 3. Container files.
for kind in server agent; do
  f="$ROOT/deploy/containers/Dockerfile.$kind"
  check "Dockerfile.$kind exists" [ -f "$f" ]
  check "Dockerfile.$kind builds FROM debian:bookworm" \
    bash -c "[ \"\$(grep -m1 '^FROM' '$f')\" = 'FROM debian:bookworm AS build' ]"
  check "Dockerfile.$kind runtime stage is debian:bookworm" grep -q '^FROM debian:bookworm$' "$f"
  check "Dockerfile.$kind runs install-deps.sh" grep -q 'RUN deploy/install-deps.sh' "$f"
  check "Dockerfile.$kind runs as a dedicated user" grep -q '^USER wxp' "$f"
  # Every binary the image copies out of the build stage is one the build stage built.
  for target in $(grep -o 'bazel-bin/[^ ]*' "$f" | sed 's|bazel-bin/||'); do
    label="//$(dirname "$target"):$(basename "$target")"
    check "Dockerfile.$kind builds $label before copying it" grep -q "bazel build.*$label" "$f"
  done
done
check "install-deps.sh is executable" [ -x "$ROOT/deploy/install-deps.sh" ]

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
