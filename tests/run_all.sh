#!/usr/bin/env bash
# Runs the whole test suite (the README's test command): every Bazel test target in the
# default (-c opt) build, then again under each sanitizer config in WXP_SANITIZERS (default
# "asan": AddressSanitizer + UndefinedBehaviorSanitizer; "asan tsan" adds ThreadSanitizer,
# "" skips them; the configs are in .bazelrc). First, tools/check_format.sh checks that every
# C++ and proto file is formatted as .clang-format says; it counts as one test. Prints one
# summary line per run and a last line "tests: N passed, N failed" over all runs. Extra
# arguments go to every `bazel test`.
# Exit status is non-zero if any run failed.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT

total_passed=0
total_failed=0
status=0
summaries=()
if tools/check_format.sh; then
  total_passed=1
  summaries+=("format: 1 passed, 0 failed")
else
  total_failed=1
  status=1
  summaries+=("format: 0 passed, 1 failed")
fi
for config in default ${WXP_SANITIZERS-asan}; do
  flags=()
  # A sanitizer run builds only what its tests need: the benches and the fuzzers (built with
  # their own config by tests/fuzz_run.sh) would compile again for nothing.
  if [ "$config" != default ]; then flags=("--config=$config" --build_tests_only); fi
  bazel test "${flags[@]}" //... "$@" 2>&1 | tee "$log"
  run_status=${PIPESTATUS[0]}
  passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log")
  failed=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|NO STATUS|INCOMPLETE|FAILED TO BUILD)' "$log")
  if [ "$run_status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
  if [ "$run_status" -ne 0 ] && [ "$status" -eq 0 ]; then status=$run_status; fi
  summaries+=("${config}: ${passed} passed, ${failed} failed")
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
done
for s in "${summaries[@]}"; do echo "run_all: $s"; done
echo "tests: ${total_passed} passed, ${total_failed} failed"
exit "$status"
