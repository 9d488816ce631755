#!/usr/bin/env bash
# Runs the whole test suite (the README's test command): first tools/check_format.sh (every
# C++ and proto file formatted as .clang-format says; it counts as one test), then every
# Bazel test target once, in the most searching build that can run it:
#  - each sanitizer config in WXP_SANITIZERS (default "asan": AddressSanitizer +
#    UndefinedBehaviorSanitizer; "asan tsan" adds ThreadSanitizer; configs in .bazelrc) runs
#    every test not tagged "no_sanitizer";
#  - the default (-c opt) run builds everything else (the binaries, tools, benchmarks) and
#    runs the tests tagged "no_sanitizer" (each says why beside its tag: most spend their
#    time in uninstrumented LibTorch arithmetic).
# With WXP_SANITIZERS="" the opt run runs every test. A test the sanitized run covers is
# neither built nor run in the opt run: on 2 cores the suite is mostly compiling, and
# building and running the test binaries a second time, unsanitized, checked nothing the
# sanitized run does not (with this and the tests moved to the opt run, a cold .ci/run went
# from 60.0 to 49.6 minutes; README "Run all tests").
# Prints one summary line per run and a last line "tests: N passed, N failed" over all runs.
# Extra arguments go to every `bazel test`. Exit status is non-zero if any run failed.
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
sanitizers=${WXP_SANITIZERS-asan}
for config in default $sanitizers; do
  flags=()
  targets=(//...)
  if [ "$config" != default ]; then
    # A sanitizer run builds only what its tests need: the benches and the fuzzers (built
    # with their own config by tests/fuzz_run.sh) would compile again for nothing.
    flags=("--config=$config" --build_tests_only)
  elif [ -n "${sanitizers// /}" ]; then
    # The tests the sanitized runs cover are taken out of the pattern: not built, not run.
    if ! covered=$(bazel query --noshow_progress \
      'tests(//...) except attr(tags, "\bno_sanitizer\b", tests(//...))' 2>"$log"); then
      cat "$log"
      echo "run_all: bazel query for the sanitized tests failed" >&2
      exit 1
    fi
    for t in $covered; do targets+=("-$t"); done
  fi
  bazel test "${flags[@]}" "$@" -- "${targets[@]}" 2>&1 | tee "$log"
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
