#!/usr/bin/env bash
# Installs the Debian packages WXP builds and runs with (SPEC 2.1). Idempotent: packages
# already present are left alone, and the package index is refreshed only when something is
# missing. Used by the README, .ci/run and the container files.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap
  g++  # its libgcc-12-dev brings the ASan, UBSan, LSan and TSan runtimes (--config=asan/tsan)
  libgrpc++-dev
  protobuf-compiler-grpc
  libprotobuf-dev
  protobuf-compiler
  libabsl-dev
  libssl-dev
  openssl
  libsqlite3-dev
  # The PostgreSQL store (SPEC 6.1): libpq to build it; the server, whose tests start their
  # own (its package also creates the unprivileged `postgres` user they run it as).
  libpq-dev
  postgresql
  libtorch-dev
  libgtest-dev
  nlohmann-json3-dev
  python3
  # tools/check_format.sh (run by tests/run_all.sh): the .clang-format check. Version 14 is
  # pinned because another version formats some constructs differently.
  clang-format-14
  # The wire-contract test (tests/contract/): an independent Python gRPC client, stubs
  # generated at test time by protoc and grpc_python_plugin (protobuf-compiler-grpc).
  python3-grpcio
  python3-protobuf
  # Fuzzing (tests/fuzz_run.sh, bazel --config=fuzz): clang, and libFuzzer with the sanitizer
  # runtimes, which clang only recommends.
  clang
  libclang-rt-14-dev
  # Metrics (SPEC 11): GET /metrics is served by cpp-httplib; //tests:metrics_process_test
  # scrapes a running swarm with a real Prometheus.
  libcpp-httplib-dev
  prometheus
  # The dashboard (SPEC 11): //tests:dashboard_browser_test drives Debian's headless
  # chromium through chromedriver's W3C WebDriver HTTP API.
  chromium
  chromium-driver
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
