#!/usr/bin/env bash
# SPEC 10 load test: 200 simulated agents (one connection each) in an ASYNC swarm against one
# wxp-server on loopback, for a bounded time; every call must succeed and the server's RSS and
# open descriptors must not grow between the first and the last interval
# (bench/load_bench.cc --check). CI runs 30 s; the full run is 10 minutes:
#   bazel test //tests:load_soak_test --test_env=WXP_SOAK_SECONDS=600 --test_env=WXP_SOAK_INTERVAL=60
# or, without holding Bazel's lock for ten minutes:
#   bazel build //bench:load_bench && bazel-bin/bench/load_bench --particles=200 --threads=200 \
#       --seconds=600 --interval=60 --check
set -euo pipefail
bench="${TEST_SRCDIR}/${TEST_WORKSPACE:-wxp}/bench/load_bench"
growth=()
# Under --config=asan (the only place ASAN_OPTIONS is set) freed memory sits in ASan's
# quarantine, and under --config=tsan (TSAN_OPTIONS) the shadow memory and the history of
# every access grow with the run, so RSS climbs by design: only the plain build judges memory
# growth; errors, descriptors and latency are still checked.
if [ -n "${ASAN_OPTIONS:-}" ] || [ -n "${TSAN_OPTIONS:-}" ]; then
  growth=(--max_rss_growth_mib=1024)
fi
exec "$bench" "${growth[@]}" --particles=200 --threads="${WXP_SOAK_AGENTS:-200}" \
  --seconds="${WXP_SOAK_SECONDS:-30}" --interval="${WXP_SOAK_INTERVAL:-10}" \
  --check --data_dir="${TEST_TMPDIR}/load"
