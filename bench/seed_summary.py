#!/usr/bin/env python3
"""Summarises B5 per-seed tables (bench/legal_quality and bench/token_quality output) over seeds.

legal_quality's own summary is a paired two-level bootstrap over seeds and blocks of test
positions, which needs every seed's per-position outcomes in one process. When a long run
is split over several processes (e.g. seeds 1-4 in one, seed 5 in another), only the printed
per-seed tables survive; this script combines them at the seed level instead: for each
method the mean test char_acc with a Student-t 95 % interval over seeds, the paired
difference to "best single (dev)" with its t interval, the fraction of the gap between best
single and "central LoRA (bound)" closed (ratio of the means; nan without a bound row), and
the mean dev-test gap.
These intervals reflect seed-to-seed variation only (every seed is scored on the same test
split), so they are not interchangeable with the bootstrap's.

    bench/seed_summary.py [--vs ROW] RUN.txt [RUN.txt ...]

With --vs ROW (a method name, e.g. "swarm weights+training"), a second block: ROW's test
char_acc minus every other row's, paired per seed, mean with its Student-t 95 % interval,
and in how many seeds ROW came out ahead.

A seed whose table is incomplete (a run cut short) is skipped with a note on stderr; a seed
complete in two places is an error.

    bench/seed_summary.py --retarget RUN.txt [RUN.txt ...]

summarises bench/legal_retarget's per-seed rows instead (dynamic utility): per particle
space and target family, and per space over all targets (each seed's mean over them), the
mean over seeds with a Student-t 95 % interval of the evaluations and iterations under the
new objective until g first exceeded the best expert's score there, for the swarm whose
weights moved ("dyn") and for a fresh swarm ("fresh"), their paired difference, and the same
for the final g under the new objective. A run that never exceeded the bar counts its
whole budget (printed with '>' by the bench): those means are lower bounds, and the
"reached" column says how many seeds got there.
"""
import math
import re
import sys

# Two-sided 95 % Student-t quantiles by degrees of freedom.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}

ROW = re.compile(r"^  (\S.*?)\s{2,}(\d\.\d{4})\s+(\d\.\d{4})\s+([+-]\d\.\d{4})(?:\s+(\d+)(?=\s{2}|\s*$))?")
SEED = re.compile(r"^== seed (\d+) ==")
BEST, BOUND = "best single (dev)", "central LoRA (bound)"


def t975(df):
    keys = sorted(k for k in T975 if k <= df)
    return T975[keys[-1]] if keys else float("nan")


def read(paths):
    tables, order = [], []  # (path, seed, rows, closed) in input order
    for path in paths:
        seed, rows = None, None
        with open(path, encoding="utf-8") as f:
            for line in f:
                m = SEED.match(line)
                if m:
                    if tables and tables[-1][0] == path:
                        tables[-1][3][0] = True
                    seed = int(m.group(1))
                    rows = {}
                    tables.append((path, seed, rows, [False]))
                    continue
                m = ROW.match(line)
                if m and rows is not None:
                    method = m.group(1).strip()
                    rows[method] = (float(m.group(2)), float(m.group(3)),
                                    int(m.group(5)) if m.group(5) else 0)
                    if method not in order:
                        order.append(method)
                if line.startswith("== test char_acc"):
                    if tables and tables[-1][0] == path:
                        tables[-1][3][0] = True
                    seed, rows = None, None
    complete = {}
    # A table is complete once it has its bound row (legal_quality's last) or another table
    # or the summary followed it (token_quality has no bound).
    for path, seed, rows, closed in tables:
        if BEST not in rows or not (BOUND in rows or closed[0]):
            print(f"seed_summary: {path}: seed {seed} has no complete table; skipped",
                  file=sys.stderr)
        elif seed in complete:
            sys.exit(f"seed_summary: seed {seed} is complete twice (again in {path})")
        else:
            complete[seed] = rows
    return complete, order


def mean_ci(xs):
    n = len(xs)
    m = sum(xs) / n
    if n < 2:
        return m, float("nan")
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    return m, t975(n - 1) * sd / math.sqrt(n)


RETARGET_SEED = re.compile(r"^== retarget seed (\d+) ==")
RETARGET_ROW = re.compile(
    r"^  (\S+)\s+(\S+)\s+(\d\.\d{4}) \|\s+(\d\.\d{4})\s+(>?)(\d+)\s+>?(\d+)\s+(\d\.\d{4})"
    r"\s+\S+\s+\|\s+(>?)(\d+)\s+>?(\d+)\s+(\d\.\d{4})")


def read_retarget(paths):
    rows = {}  # (space, target) -> {seed: (dyn evals, iters, reached, final, fresh ...)}
    for path in paths:
        seed = None
        with open(path, encoding="utf-8") as f:
            for line in f:
                m = RETARGET_SEED.match(line)
                if m:
                    seed = int(m.group(1))
                    continue
                m = RETARGET_ROW.match(line)
                if not m or seed is None:
                    continue
                key = (m.group(1), m.group(2))
                if seed in rows.setdefault(key, {}):
                    sys.exit(f"seed_summary: seed {seed} {key} appears twice (again in {path})")
                rows[key][seed] = {
                    "dyn": (int(m.group(6)), int(m.group(7)), not m.group(5), float(m.group(8))),
                    "fresh": (int(m.group(10)), int(m.group(11)), not m.group(9),
                              float(m.group(12))),
                }
    return rows


def fmt(m, h, digits):
    return f"{m:.{digits}f} ± {h:.{digits}f}"


def retarget_main(paths):
    rows = read_retarget(paths)
    if not rows:
        sys.exit("seed_summary: no retarget rows in the input")
    seeds = sorted({s for per_seed in rows.values() for s in per_seed})
    print(f"== dynamic utility over {len(seeds)} seeds ({','.join(map(str, seeds))}): mean ± t 95 % "
          f"over seeds; dyn = weights moved mid-run, fresh = new swarm under the new objective; "
          f"evals/iters under the new objective until g exceeds the best expert there (never: "
          f"the budget, a lower bound) ==")
    print(f"  {'space':<14} {'target':<8} {'reached':>9}  {'evals dyn':<15} {'evals fresh':<15} "
          f"{'dyn - fresh':<17} {'iters dyn':<13} {'iters fresh':<13} {'final g dyn':<17} "
          f"{'final g fresh':<17} {'dyn - fresh':<17}")
    by_space = {}
    for (space, target), per_seed in sorted(rows.items()):
        by_space.setdefault(space, {})[target] = per_seed
    for space, targets in by_space.items():
        lines = [(t, per_seed) for t, per_seed in targets.items()]
        # "all": each seed's mean over the targets it has every row for.
        common = sorted(set.intersection(*(set(p) for _, p in lines)))
        pooled = {}
        for s in common:
            def avg(arm, i):
                return sum(p[s][arm][i] for _, p in lines) / len(lines)
            pooled[s] = {arm: (avg(arm, 0), avg(arm, 1), all(p[s][arm][2] for _, p in lines),
                               avg(arm, 3)) for arm in ("dyn", "fresh")}
        for target, per_seed in lines + [("(all)", pooled)]:
            ks = sorted(per_seed)
            if not ks:
                continue
            col = lambda arm, i: [per_seed[k][arm][i] for k in ks]
            reached = f"{sum(col('dyn', 2))}/{sum(col('fresh', 2))} of {len(ks)}"
            de, fe = col("dyn", 0), col("fresh", 0)
            di, fi = col("dyn", 1), col("fresh", 1)
            dg, fg = col("dyn", 3), col("fresh", 3)
            print(f"  {space:<14} {target:<8} {reached:>9}  {fmt(*mean_ci(de), 1):<15} "
                  f"{fmt(*mean_ci(fe), 1):<15} "
                  f"{fmt(*mean_ci([a - b for a, b in zip(de, fe)]), 1):<17} "
                  f"{fmt(*mean_ci(di), 1):<13} {fmt(*mean_ci(fi), 1):<13} "
                  f"{fmt(*mean_ci(dg), 4):<17} {fmt(*mean_ci(fg), 4):<17} "
                  f"{fmt(*mean_ci([a - b for a, b in zip(dg, fg)]), 4):<17}")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if sys.argv[1] == "--retarget":
        return retarget_main(sys.argv[2:])
    vs, paths = None, sys.argv[1:]
    if paths[0] == "--vs":
        if len(paths) < 3:
            sys.exit(__doc__)
        vs, paths = paths[1], paths[2:]
    seeds, order = read(paths)
    if not seeds:
        sys.exit("seed_summary: no complete seed table in the input")
    keys = sorted(seeds)
    print(f"== test char_acc over {len(keys)} seeds ({','.join(map(str, keys))}): mean ± t 95 % "
          f"over seeds; paired delta vs best single; gap closed = (mean method - mean best "
          f"single) / (mean bound - mean best single) ==")
    print(f"  {'method':<26} {'test acc':<17} {'delta vs best single':<28} {'gap closed':>10} "
          f"{'dev-test':>8} {'evals':>6}")
    best = [seeds[s][BEST][1] for s in keys]
    room = float("nan")
    if all(BOUND in seeds[s] for s in keys):
        bound = [seeds[s][BOUND][1] for s in keys]
        room = sum(bound) / len(keys) - sum(best) / len(keys)
    for method in order:
        if not all(method in seeds[s] for s in keys):
            continue
        test = [seeds[s][method][1] for s in keys]
        m, h = mean_ci(test)
        d, dh = mean_ci([t - b for t, b in zip(test, best)])
        rel = d / (sum(best) / len(keys)) * 100
        gap = d / room if room > 0 else float("nan")
        devtest = sum(seeds[s][method][0] - seeds[s][method][1] for s in keys) / len(keys)
        evals = sum(seeds[s][method][2] for s in keys) / len(keys)
        print(f"  {method:<26} {m:.4f} ± {h:.4f}   {d:+.4f} ± {dh:.4f} ({rel:+5.1f} %)   "
              f"{gap:+10.2f} {devtest:+8.4f} " + (f"{evals:6.0f}" if evals else ""))
    if vs is not None:
        vs_main(seeds, order, keys, vs)


def vs_main(seeds, order, keys, vs):
    if not all(vs in seeds[s] for s in keys):
        sys.exit(f"seed_summary: --vs {vs!r}: not a row of every seed's table")
    print(f"\n== {vs} minus each row, test char_acc paired per seed: mean ± t 95 % over seeds; "
          f"seeds where {vs} is ahead ==")
    mine = [seeds[s][vs][1] for s in keys]
    for method in order:
        if method == vs or not all(method in seeds[s] for s in keys):
            continue
        diffs = [a - seeds[s][method][1] for a, s in zip(mine, keys)]
        d, dh = mean_ci(diffs)
        ahead = sum(x > 0 for x in diffs)
        print(f"  {method:<26} {d:+.4f} ± {dh:.4f}   {ahead} of {len(keys)}")


if __name__ == "__main__":
    main()
