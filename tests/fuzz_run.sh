#!/usr/bin/env bash
# Builds the libFuzzer targets (bazel --config=fuzz: clang, ASan, UBSan) and runs each for a
# bounded time, then prints one line per target: executions, executions per second, edge
# coverage (cov), features (ft), corpus size, and whether it found anything.
#
#   tests/fuzz_run.sh [-t SECONDS] [-j JOBS] [TARGET ...]
#
# SECONDS (default 60, or $FUZZ_SECONDS) is each target's -max_total_time; TARGETs are names
# from the list below (default: all). JOBS targets run at once (default: the number of cores;
# a libFuzzer process uses one core, so each target still gets all of its SECONDS of a core,
# and the run takes the wall time of one target per core instead of all of them). New inputs go to a
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
jobs="$(nproc)"
while getopts "t:j:h" opt; do
  case "$opt" in
    t) seconds="$OPTARG" ;;
    j) jobs="$OPTARG" ;;
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
# No convenience symlinks: the binaries are found through `bazel info`, and a fuzz build
# should not repoint the workspace's bazel-bin at clang outputs.
if ! bazel build --config=fuzz --symlink_prefix=/ "${labels[@]}"; then
  echo "fuzz_run: build failed" >&2
  exit 1
fi
bin_dir="$(bazel info --config=fuzz bazel-bin 2>/dev/null)"

work="${FUZZ_WORKDIR:-$(mktemp -d "${TMPDIR:-/tmp}/wxp-fuzz.XXXXXX")}"
mkdir -p "$work"
echo "fuzz_run: ${seconds}s per target, scratch corpora and findings under $work"

# Fuzzes one target and writes its summary line to <workdir>/<target>/summary.txt and its
# finding flag to <workdir>/<target>/status (0 or 1).
fuzz_one() {
  local label seeds regressions extra name pkg dir rc done_line last_line execs rate line
  local cov ft corp findings result
  IFS='|' read -r label seeds regressions extra <<<"$1"
  name="${label##*:}"
  pkg="${label#//}"
  pkg="${pkg%%:*}"
  dir="$work/$name"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  local inputs=("$dir/corpus" "$seeds")
  [ -d "$regressions" ] && inputs+=("$regressions")
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
    echo 1 >"$dir/status"
  else
    result="ok"
    echo 0 >"$dir/status"
  fi
  printf '%-30s execs %-10s exec/s %-7s cov %-6s ft %-7s corpus %-14s %s\n' \
    "$name" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result" \
    | tee "$dir/summary.txt"
}

running=0
for t in "${selected[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n
    running=$((running - 1))
  fi
  label="${t%%|*}"
  echo "fuzz_run: ${label##*:}"
  fuzz_one "$t" &
  running=$((running + 1))
done
wait

summary=()
status=0
for t in "${selected[@]}"; do
  label="${t%%|*}"
  dir="$work/${label##*:}"
  summary+=("$(cat "$dir/summary.txt" 2>/dev/null || echo "${label##*:}: no result")")
  [ "$(cat "$dir/status" 2>/dev/null)" = 0 ] || status=1
done

echo "fuzz_run: summary (${seconds}s per target, ${jobs} at a time; logs in $work/<target>/log.txt)"
printf '  %s\n' "${summary[@]}"
exit "$status"
