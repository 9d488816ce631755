#!/usr/bin/env bash
# Builds the libFuzzer targets (bazel --config=fuzz: clang, ASan, UBSan) and runs each for a
# bounded time, then prints one line per target: executions, executions per second, edge
# coverage (cov), features (ft), corpus size, and whether it found anything.
#
#   tests/fuzz_run.sh [-t SECONDS] [TARGET ...]
#
# SECONDS (default 60, or $FUZZ_SECONDS) is each target's -max_total_time; TARGETs are names
# from the list below (default: all). Targets run one after another. New inputs go to a
# scratch corpus (under $FUZZ_WORKDIR, default a fresh temporary directory); the checked-in
# seed corpus and regression inputs are read, never written. A finding leaves the input in
# <workdir>/<target>/artifacts/ and makes the script exit 1; reproduce it with the normal
# toolchain (`bazel run //<package>:<target> -- FILE`), fix it, and add the file to the
# target's regressions/ directory so its *_replay test keeps checking it.
set -uo pipefail
cd "$(dirname "$0")/.."

# label|seed corpus|regression inputs|extra libFuzzer flags
# The request fuzzer runs without the entropic schedule: with its ~20k features libFuzzer's
# per-input feature bookkeeping took over half the time, and without it the target runs
# about twice as many inputs and reaches more coverage in the same time.
TARGETS=(
  "//common/fuzz:safetensors_fuzzer|common/fuzz/corpus/safetensors|common/fuzz/regressions/safetensors|"
  "//common/fuzz:adapter_config_fuzzer|common/fuzz/corpus/adapter_config|common/fuzz/regressions/adapter_config|"
  "//server/spec/fuzz:swarm_spec_text_fuzzer|server/spec/fuzz/corpus/swarm_spec_text|server/spec/fuzz/regressions/swarm_spec_text|"
  "//server/coordinator/fuzz:coordinator_requests_fuzzer|server/coordinator/fuzz/corpus/coordinator_requests|server/coordinator/fuzz/regressions/coordinator_requests|-entropic=0"
)

seconds="${FUZZ_SECONDS:-60}"
while getopts "t:h" opt; do
  case "$opt" in
    t) seconds="$OPTARG" ;;
    *) sed -n '2,16p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

selected=()
for t in "${TARGETS[@]}"; do
  label="${t%%|*}"
  name="${label##*:}"
  if [ "$#" -eq 0 ]; then
    selected+=("$t")
  else
    for want in "$@"; do [ "$want" = "$name" ] && selected+=("$t"); done
  fi
done
if [ "${#selected[@]}" -eq 0 ]; then
  echo "fuzz_run: no such target: $*" >&2
  exit 2
fi

labels=()
for t in "${selected[@]}"; do labels+=("${t%%|*}"); done
echo "fuzz_run: building ${#labels[@]} fuzzer(s) with --config=fuzz"
if ! bazel build --config=fuzz "${labels[@]}"; then
  echo "fuzz_run: build failed" >&2
  exit 1
fi
bin_dir="$(bazel info --config=fuzz bazel-bin 2>/dev/null)"

work="${FUZZ_WORKDIR:-$(mktemp -d "${TMPDIR:-/tmp}/wxp-fuzz.XXXXXX")}"
mkdir -p "$work"
echo "fuzz_run: ${seconds}s per target, scratch corpora and findings under $work"

summary=()
status=0
for t in "${selected[@]}"; do
  IFS='|' read -r label seeds regressions extra <<<"$t"
  name="${label##*:}"
  pkg="${label#//}"
  pkg="${pkg%%:*}"
  dir="$work/$name"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  inputs=("$dir/corpus" "$seeds")
  [ -d "$regressions" ] && inputs+=("$regressions")
  echo "fuzz_run: $name"
  # -timeout: an input running 30 s is a finding (a hang), not something to wait out.
  # shellcheck disable=SC2086  # $extra is a list of flags
  "$bin_dir/$pkg/$name" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$dir/artifacts/" $extra "${inputs[@]}" >"$dir/log.txt" 2>&1
  rc=$?
  done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$dir/log.txt" | tail -1)"
  last_line="$(grep -E '^#[0-9]+' "$dir/log.txt" | tail -1)"
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log.txt")"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log.txt")"
  line="${done_line:-$last_line}"
  cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$line")"
  ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$line")"
  corp="$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$line")"
  findings="$(find "$dir/artifacts" -type f | wc -l)"
  if [ "$rc" -ne 0 ] || [ "$findings" -ne 0 ]; then
    result="FINDING (exit $rc): $(find "$dir/artifacts" -type f | head -3 | tr '\n' ' ')"
    grep -E 'fuzz check failed|ERROR: (AddressSanitizer|libFuzzer|UndefinedBehaviorSanitizer)|runtime error' \
      "$dir/log.txt" | head -5
    status=1
  else
    result="ok"
  fi
  summary+=("$(printf '%-30s execs %-10s exec/s %-7s cov %-6s ft %-7s corpus %-14s %s' \
    "$name" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result")")
  echo "${summary[-1]}"
done

echo "fuzz_run: summary (${seconds}s per target; logs in $work/<target>/log.txt)"
printf '  %s\n' "${summary[@]}"
exit "$status"
