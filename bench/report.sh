#!/usr/bin/env bash
# One benchmark report (SPEC 9): runs B1-B6, then prints a summary whose format stays stable
# from run to run (so reports can be diffed over time): each figure beside the reference the
# same run measured and the target, with the date, commit, cores and CPU. The benchmarks' own
# tables follow the summary.
#
#   bench/report.sh [--quick] [--out DIR]
#
# B5 runs twice: on the default licence corpus (the one hyperparameters were chosen on, on
# seeds other than the reported 1..5) and on a man-page corpus bench/make_corpus.sh builds
# (never used for tuning); each with plateau-trained experts, the central upper bound,
# every baseline, swarms in three spaces and bootstrap confidence intervals.
#
# B6 (bench/wire_bench) counts the bytes agents and server exchange per particle-iteration,
# through a TCP proxy, in each particle space at 1 MiB and 64 MiB experts (7 min measured;
# --quick: 1 MiB only, 4 iterations, ~1 min).
#
# Full (default): the sizes SPEC 9 names. B1-B4 take ~10 min; B5 takes 1-3 h per corpus on
# 2 cores, so plan 2-6 h in all. (Estimated from smoke runs, not measured: ~0.035 s per
# fine-tune step and ~0.16 s per dev evaluation at the default model size; per seed 5
# experts of up to 6000 steps, a central LoRA of up to their total, ~110 merge evaluations
# and up to 3 x 310 swarm evaluations: 13 min per seed if experts plateau near 2000 steps,
# 37 min if every one runs to the cap.)
# --quick: smaller sizes, one B5 seed with short fine-tunes and swarms; for checking the
# machinery, not for figures. ~10 min on quiet cores (B5 ~2.5 min per corpus); measured
# 25 min with a load average of 6 from other builds (B5 ~9 min per corpus). The full run
# slows down the same way on a busy machine.
# All estimates above are from a quiet-ish smoke run; the full run was not timed yet.
# Run it on an otherwise idle machine: every figure is a throughput or a latency.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0 OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "bench/report.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$OUT" ] || OUT=$(mktemp -d /tmp/wxp-bench.XXXXXX)
mkdir -p "$OUT"

bazel build //bench:move_bench //bench:transfer_bench //bench:load_bench //bench:legal_quality \
  //bench:wire_bench >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log" >&2; exit 1; }
B=bazel-bin/bench
if [ $QUICK -eq 1 ]; then
  B1=(--sizes=1,16 --min_seconds=0.3) B2=(--mib=64) B3=(--particles=10,100 --seconds=3)
  B4=(--memory --mib=256) B6=(--mib=1 --iterations=4)
  B5=(--seeds=1 --finetune_eval_every=50 --finetune_patience=2 --finetune_max_steps=300
      --max_iterations=4 --patience=2 --bootstrap_replicates=500)
else
  B1=() B2=(--mib=256) B3=() B4=(--memory --mib=1024) B6=(--mib=1,64 --iterations=6) B5=(--seeds=5 --first_seed=1 --print_curves)
fi
MAN_FIRMS=man1,man3,man5,man7,man8
run() {  # run NAME BINARY ARGS...: the benchmark's stdout to OUT/NAME.txt, progress to stderr
  local name=$1 bin=$2
  shift 2
  echo "bench/report.sh: $name: $bin $*" >&2
  local t0=$SECONDS
  "$B/$bin" "$@" >"$OUT/$name.txt" 2>"$OUT/$name.log" ||
    { echo "bench/report.sh: $name failed; see $OUT/$name.log" >&2; tail -5 "$OUT/$name.log" >&2; exit 1; }
  echo "bench/report.sh: $name done in $((SECONDS - t0)) s" >&2
}
run B1 move_bench "${B1[@]}"
run B2 transfer_bench "${B2[@]}" --data_dir="$OUT/b2"
run B3 load_bench "${B3[@]}" --data_dir="$OUT/b3"
run B4 transfer_bench "${B4[@]}" --data_dir="$OUT/b4"
run B6 wire_bench "${B6[@]}" --data_dir="$OUT/b6"
run B5 legal_quality "${B5[@]}" --work_dir="$OUT/b5"
echo "bench/report.sh: man-page corpus $(bench/make_corpus.sh "$OUT/corpus-man" 2>/dev/null)" >&2
run B5m legal_quality "${B5[@]}" --work_dir="$OUT/b5" --corpus_dir="$OUT/corpus-man" \
  --firms="$MAN_FIRMS"
rm -rf "$OUT/b2" "$OUT/b3" "$OUT/b4" "$OUT/b6"

python3 - "$OUT" "$QUICK" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'PY' | tee "$OUT/report.txt"
import os, re, sys, datetime
out, quick, commit = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
text = {b: open(os.path.join(out, b + ".txt")).read() for b in ("B1", "B2", "B3", "B4", "B5", "B5m", "B6")}
cpu = "unknown"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
mem = int(open("/proc/meminfo").readline().split()[1]) / 1024 / 1024
rows = []  # (id, figure, value, reference, target, met)
def row(i, figure, value, reference, target, met):
    rows.append((i, figure, value, reference, target, "yes" if met else "NO"))

for m in re.finditer(r"^(\d+Mi)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\S+)\s+(\d+)%\s+(\S+)$", text["B1"], re.M):
    size, wxp, bf16, fused, ref, pct, x = m.groups()
    ok = float(wxp) >= 0.8 * float(fused) and (ref == "skipped" or float(wxp) >= 20 * float(ref))
    row("B1", "move %s GB/s" % size, wxp, "fused %s, file-based %s" % (fused, ref),
        ">=80% fused, >=20x file-based", ok)
raw = re.search(r"^raw TCP \(reference\)\s+\S+\s+([\d.]+)", text["B2"], re.M).group(1)
# Rows: path, up s, down s, MiB/s (median), range, % of raw, target, % of stored, CPU s.
stored = re.search(r"^raw TCP \+ SHA-256 \+ files\s+\S+\s+\S+\s+([\d.]+)\s+\S+\s+(\d+)%",
                   text["B2"], re.M)
bound = re.search(r"^bound: .* (\d+)% of raw TCP$", text["B2"], re.M).group(1)
for name, target in (("gRPC plaintext", 50), ("gRPC mTLS", 35)):
    m = re.search(r"^%s\s+\S+\s+\S+\s+([\d.]+)\s+\S+\s+(\d+)%%" % name, text["B2"], re.M)
    row("B2", "%s MiB/s (u+d)" % name, m.group(1),
        "raw TCP %s (%s%%); raw TCP + SHA-256 + files %s (%s%%, CPU bound %s%%)"
        % (raw, m.group(2), stored.group(1), stored.group(2), bound),
        ">=%d%% of raw TCP" % target, int(m.group(2)) >= target)
peaks = []
# Columns: replicas, particles, reports/s, p50, p99, server peak MiB, errors, server CPU
# ms/report, agents' CPU ms/report, the rate their CPU allows on this machine's cores.
for m in re.finditer(r"^\s+\d+\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)"
                     r"\s+[\d.]+\s+[\d.]+\s+(\d+)", text["B3"], re.M):
    n, rate, p50, p99, peak, errors, cpu_bound = m.groups()
    peaks.append(float(peak))
    row("B3", "%s particles reports/s" % n, rate, "CPU bound %s" % cpu_bound, ">=5000",
        float(rate) >= 5000)
    row("B3", "%s particles p50/p99 ms" % n, "%s/%s" % (p50, p99), "-", "p99<50", float(p99) < 50)
    row("B3", "%s particles errors" % n, errors, "-", "0", int(errors) == 0)
if peaks:
    row("B3", "server peak MiB", "/".join("%.0f" % p for p in peaks), "-",
        "flat as particles grow", max(peaks) <= 1.25 * min(peaks))
mib = float(re.search(r"B4 memory: ([\d.]+) MiB", text["B4"]).group(1))
for name in ("wxp-server", "client"):
    m = re.search(r"^%s.*?\s([\d.]+)\s+(\d+)" % name, text["B4"], re.M)
    row("B4", "%s peak RSS MiB" % name, m.group(1), "adapter %.0f MiB" % mib,
        "<=%s (1.2x + 64)" % m.group(2), float(m.group(1)) <= float(m.group(2)))
# B6 lines: "size space up/pi down/pi total/pi <1KB setup_up setup_down wall_s err/pi whole/pi".
b6 = {}
for m in re.finditer(r"^(\d+Mi)\s+(\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(?:yes|NO)\s+(\d+)\s+(\d+)"
                     r"\s+[\d.]+\s+([\d.]+)\s+[\d.]+$", text["B6"], re.M):
    b6[(m.group(1), m.group(2))] = m.groups()[2:]
for (size, space), (up, down, total, setup_up, setup_down, err) in b6.items():
    if space == "weights":
        continue
    ref = b6.get((size, "weights"))
    row("B6", "%s %s wire B/particle-iter" % (size, space), "%s (%s up)" % (total, up),
        "WEIGHTS %s; split err %s" % (ref[2] if ref else "-", err), "<1024 whatever the size",
        float(total) < 1024)
# B5 summary lines: "  method  acc [lo, hi]  delta [lo, hi]  gap [lo, hi]  dev-test  evals".
b5_line = re.compile(r"^  (\S.*?)\s+([\d.]+) \[([\d.]+), ([\d.]+)\]\s+([+-][\d.]+) "
                     r"\[([+-][\d.]+), ([+-][\d.]+)\]\s+([+-][\d.]+|nan|-?inf) ", re.M)
for b, corpus in (("B5", "licences"), ("B5m", "man pages")):
    body = text[b][text[b].find("== test char_acc over"):]
    rows5 = {m.group(1): m.groups()[1:] for m in b5_line.finditer(body)}
    best, bound, soup = rows5["best single (dev)"], rows5["central LoRA (bound)"], rows5["uniform soup"]
    for name, r in rows5.items():
        if not name.startswith("swarm "):
            continue
        row(b, "%s: %s test acc" % (corpus, name), "%s [%s,%s]" % r[0:3],
            "best single %s; bound %s; soup %s" % (best[0], bound[0], soup[0]),
            "> best single (CI)", float(r[4]) > 0)
        row(b, "%s: %s gap closed" % (corpus, name), r[6],
            "delta %s [%s,%s]" % r[3:6], "> 0", float(r[3]) > 0)
    for space, wins, n in re.findall(r"^swarm (\S+) beats every baseline on the test split in "
                                     r"(\d+) of (\d+) seeds", body, re.M):
        row(b, "%s: seeds swarm %s beats all" % (corpus, space), "%s/%s" % (wins, n), "-",
            "most", 2 * int(wins) > int(n))

print("WXP benchmark report%s" % (" (QUICK: not for comparison)" if quick else ""))
print("date     %s" % datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%MZ"))
print("commit   %s" % commit)
print("machine  %d cores, %s, %.0f GiB" % (os.cpu_count(), cpu, mem))
print()
print("%-3s  %-46s %-24s %-48s %-28s %s" % ("id", "figure", "value", "reference (same run)", "target", "met"))
for r in rows:
    print("%-3s  %-46s %-24s %-48s %-28s %s" % r)
print()
for b in ("B1", "B2", "B3", "B4", "B5", "B5m", "B6"):
    body = text[b] if not b.startswith("B5") else text[b][text[b].find("== test char_acc"):]
    print("---- %s ----\n%s" % (b, body.rstrip()))
PY
echo "bench/report.sh: report in $OUT/report.txt" >&2
