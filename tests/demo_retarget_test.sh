#!/usr/bin/env bash
# Dynamic utility in the README's demo (deploy/demo.sh --retarget-at N --retarget-to FAMILY)
# end to end on the real binaries, made small: the weights must move through the real server
# exactly as round N closes (a change scheduled on the server, not a script racing the
# swarm), the history must hold both weight versions (and its chart mark the change), and
# g at the end must be ranked under the new weights: its utility is the exported adapter's
# dev char_acc/FAMILY as `wxpctl legal eval` scores it, not its mix char_acc.
set -uo pipefail

source "$TEST_SRCDIR/$TEST_WORKSPACE/tests/testing/check.sh"
export WXP_BIN="$ROOT"

OUT="$TMP/run"
bash "$ROOT/deploy/demo.sh" --out "$OUT" --shards GPL,MPL --finetune-steps 150 \
  --iterations 6 --lambdas 0.5 --retarget-at 2 --retarget-to MPL > "$TMP/run.log" 2>&1
rc=$?
check "the demo exits 0 (got $rc)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || tail -40 "$TMP/run.log"
cat "$OUT/retarget.txt"
check "the change was scheduled on the server when the swarm was created" \
  grep -q '^retarget: scheduled on the server: once iteration 2 has closed' "$TMP/run.log"
check "the weights moved as iteration 2 closed" \
  grep -q '^retarget: iteration 2 closed; the weights moved .* to char_acc/MPL$' "$OUT/retarget.txt"
check "g of round 2 under v1 is printed" \
  grep -Eq '^  before: g utility [0-9.]+ at iteration 2 \(weights v1\)$' "$OUT/retarget.txt"
check "and re-ranked under v2" \
  grep -Eq '^  after:  g utility [0-9.]+ at iteration 2 \(weights v2\) \(re-ranked' "$OUT/retarget.txt"
check "the server's audit log says it made the scheduled change" \
  grep -q 'event=utility_weights swarm=legal-demo version=2 by=wxp-server .*(scheduled after iteration 2)' \
  "$OUT/server.log"
check "the swarm reached FINISHED" grep -q '^state  *FINISHED' "$TMP/run.log"
versions=$(cut -d, -f1 "$OUT/history.csv" | tail -n +2 | sort -u | tr '\n' ' ')
check "the history holds both weight versions (got: $versions)" [ "$versions" = "1 2 " ]
check "the history chart shows both readings and marks the change" \
  bash -c "grep -q '>g (weights v1)</text>' '$OUT/history.svg' &&
           grep -q '>g (weights v2)</text>' '$OUT/history.svg' &&
           grep -q '>weights v2</text>' '$OUT/history.svg'"

g=$(sed -n 's/^  at the end: g = .*, utility \([0-9.]*\) (weights v2)$/\1/p' "$OUT/retarget.txt")
scores=$("$ROOT/client/wxpctl" legal eval --work-dir "$OUT/legal" --adapter "$OUT/best" --split dev)
component() { python3 -c 'import json,sys; print(json.load(sys.stdin)["scores"][sys.argv[1]])' "$1" <<< "$scores"; }
family=$(component char_acc/MPL)
mix=$(component char_acc)
echo "g at the end: $g; the exported best on dev: char_acc/MPL $family, char_acc $mix"
check "g's utility is the exported best's dev char_acc/MPL (the new weights)" \
  python3 -c "import sys; sys.exit(0 if abs(${g:-9} - $family) < 1e-6 else 1)"
check "...not its mix char_acc (the old weights)" \
  python3 -c "import sys; sys.exit(0 if abs(${g:-9} - $mix) > 1e-6 else 1)"
check "the test-split lines for char_acc/MPL are printed" \
  grep -q '^char_acc/MPL on the TEST split after the retarget' "$TMP/run.log"
check "the refusals: --retarget-to alone, an unknown family" bash -c "
  ! bash '$ROOT/deploy/demo.sh' --retarget-to MPL >/dev/null 2>&1 &&
  bash '$ROOT/deploy/demo.sh' --retarget-at 9 --retarget-to MPL --iterations 4 2>&1 | grep -q 'retarget-at takes'"

finish
