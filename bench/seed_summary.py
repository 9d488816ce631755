#!/usr/bin/env python3
"""Summarises B5 per-seed tables (bench/legal_quality output) over seeds.

legal_quality's own summary is a paired two-level bootstrap over seeds and blocks of test
positions, which needs every seed's per-position outcomes in one process. When a long run
is split over several processes (e.g. seeds 1-4 in one, seed 5 in another), only the printed
per-seed tables survive; this script combines them at the seed level instead: for each
method the mean test char_acc with a Student-t 95 % interval over seeds, the paired
difference to "best single (dev)" with its t interval, the fraction of the gap between best
single and "central LoRA (bound)" closed (ratio of the means), and the mean dev-test gap.
These intervals reflect seed-to-seed variation only (every seed is scored on the same test
split), so they are not interchangeable with the bootstrap's.

    bench/seed_summary.py RUN.txt [RUN.txt ...]

A seed whose table is incomplete (a run cut short) is skipped with a note on stderr; a seed
complete in two places is an error.
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
    tables, order = [], []  # (path, seed, rows) in input order
    for path in paths:
        seed, rows = None, None
        with open(path, encoding="utf-8") as f:
            for line in f:
                m = SEED.match(line)
                if m:
                    seed = int(m.group(1))
                    rows = {}
                    tables.append((path, seed, rows))
                    continue
                m = ROW.match(line)
                if m and rows is not None:
                    method = m.group(1).strip()
                    rows[method] = (float(m.group(2)), float(m.group(3)),
                                    int(m.group(5)) if m.group(5) else 0)
                    if method not in order:
                        order.append(method)
                if line.startswith("== test char_acc"):
                    seed, rows = None, None
    complete = {}
    for path, seed, rows in tables:
        if BEST not in rows or BOUND not in rows:
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


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    seeds, order = read(sys.argv[1:])
    if not seeds:
        sys.exit("seed_summary: no complete seed table in the input")
    keys = sorted(seeds)
    print(f"== test char_acc over {len(keys)} seeds ({','.join(map(str, keys))}): mean ± t 95 % "
          f"over seeds; paired delta vs best single; gap closed = (mean method - mean best "
          f"single) / (mean bound - mean best single) ==")
    print(f"  {'method':<26} {'test acc':<17} {'delta vs best single':<28} {'gap closed':>10} "
          f"{'dev-test':>8} {'evals':>6}")
    best = [seeds[s][BEST][1] for s in keys]
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


if __name__ == "__main__":
    main()
