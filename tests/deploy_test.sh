#!/usr/bin/env bash
# The deployment files: systemd units pass `systemd-analyze verify` (skipped, and said so,
# where systemd is not installed) and keep the hardening the operator's guide promises;
# the container files start from Debian bookworm and ship the binaries build-images.sh
# stages (deploy/build-images.sh really builds them; it needs podman, so it is not a test).
set -uo pipefail

source "$TEST_SRCDIR/$TEST_WORKSPACE/tests/testing/check.sh"
UNITS="$ROOT/deploy/systemd"

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
check "the agent unit lets LibTorch's threads sleep between evaluations" grep -q "^Environment=OMP_WAIT_POLICY=PASSIVE" "$UNITS/wxp-agent.service"

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

# 3. Container files: runtime images FROM a bookworm base (debian:bookworm unless
#    deploy/build-images.sh passes its debootstrapped one) holding the binaries Bazel built,
#    which build-images.sh stages as bin/NAME.
BUILD_SCRIPT="$ROOT/deploy/build-images.sh"
for kind in server agent; do
  f="$ROOT/deploy/containers/Dockerfile.$kind"
  check "Dockerfile.$kind exists" [ -f "$f" ]
  check "Dockerfile.$kind defaults to debian:bookworm" grep -q '^ARG BASE=debian:bookworm$' "$f"
  check "Dockerfile.$kind builds FROM \${BASE}" grep -q '^FROM ${BASE}$' "$f"
  check "Dockerfile.$kind runs as a dedicated user" grep -q '^USER wxp' "$f"
  check "Dockerfile.$kind checks the shared libraries" grep -q "RUN ! ldd " "$f"
  for bin in $(grep '^COPY bin/' "$f" | grep -o 'bin/[^ ]*' | sed 's|bin/||'); do
    check "Dockerfile.$kind copies $bin, which build-images.sh stages" \
      grep -q "BINARIES=(.*/$bin[ )]" "$BUILD_SCRIPT"
  done
done
# The package layer is the slow one: both images must share it, byte for byte.
apt_step() { awk '/^RUN apt-get update/,/rm -rf \/var\/lib\/apt\/lists/' "$1"; }
check "both Dockerfiles install the same runtime packages" \
  [ "$(apt_step "$ROOT/deploy/containers/Dockerfile.server")" = \
    "$(apt_step "$ROOT/deploy/containers/Dockerfile.agent")" -a \
    -n "$(apt_step "$ROOT/deploy/containers/Dockerfile.server")" ]
for script in build-images.sh run-images.sh; do
  check "$script is executable" [ -x "$ROOT/deploy/$script" ]
  check "$script parses" bash -n "$ROOT/deploy/$script"
done
check "install-deps.sh is executable" [ -x "$ROOT/deploy/install-deps.sh" ]

finish
