#!/usr/bin/env bash
# bench/seed_summary.py over per-seed tables in legal_quality's layout: the means, the paired
# differences and their Student-t intervals must be what the tables give, a cut-short seed is
# skipped, and --vs a row that is not there is refused.
set -uo pipefail
source "$TEST_SRCDIR/$TEST_WORKSPACE/tests/testing/check.sh"
summary="$ROOT/bench/seed_summary.py"
# Three seeds; "swarm A+training" minus "swarm A" is +0.0010, +0.0030, -0.0010 (mean +0.0010,
# sd 0.0020, t(2) 4.303: ± 0.0050), ahead in 2 of 3. Seed 4 is cut short.
table() {  # table SEED A_TEST TRAINED_TEST BEST_TEST BOUND_TEST
  echo "== seed $1 =="
  echo "  method                      dev acc test acc dev-test  evals   steps  note"
  echo "  best single (dev)            0.4000   $4  -0.0100      -       -  GPL"
  echo "  swarm A                      0.4100   $2  -0.0100    200       -  weights"
  echo "  swarm A+training             0.4200   $3  -0.0100    100     800  weights"
  echo "  central LoRA (bound)         0.4500   $5  -0.0100      -    4000  union"
}
{
  table 1 0.4100 0.4110 0.4050 0.4400
  table 2 0.4200 0.4230 0.4150 0.4500
  table 3 0.4300 0.4290 0.4250 0.4600
  echo "== seed 4 =="
  echo "  best single (dev)            0.4000   0.9000  -0.0100      -       -  GPL"
} > "$TMP/run.txt"

out=$(python3 "$summary" --vs "swarm A+training" "$TMP/run.txt" 2>"$TMP/err.txt")
echo "$out"
check "the cut-short seed is skipped, with a note" grep -q 'seed 4 has no complete table' "$TMP/err.txt"
check "three seeds are summarised" grep -q '^== test char_acc over 3 seeds (1,2,3)' <<< "$out"
check "a row's mean over seeds and its paired delta vs best single" \
  grep -Eq '^  swarm A +0\.4200 ± 0\.0248 +\+0\.0050 ± 0\.0000' <<< "$out"
check "--vs: the paired difference, its t interval and the seeds ahead" \
  grep -Eq '^  swarm A +\+0\.0010 ± 0\.0050 +2 of 3$' <<< "$out"
check "--vs: against the bound" grep -Eq '^  central LoRA \(bound\) +-0\.0290 ± 0\.0050 +0 of 3$' <<< "$out"
check "--vs: the row itself is not compared with itself" \
  bash -c "! grep -Eq '^  swarm A\+training +[+-]0\.[0-9]{4} ± [0-9.]+ +[0-9] of 3$' <<< '$out'"
python3 "$summary" --vs "swarm B" "$TMP/run.txt" > "$TMP/vs.txt" 2>&1
rc=$?
check "--vs a row that is not in the tables is refused (exit $rc)" [ $rc -ne 0 ]
check "...naming it" grep -q "'swarm B': not a row of every seed's table" "$TMP/vs.txt"
finish
