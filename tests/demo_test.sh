#!/usr/bin/env bash
# The README's demo (deploy/demo.sh) end to end on the real binaries, made small (two firms,
# short fine-tunes, a few iterations): it must finish with the test-split table, an exported
# adapter that `wxpctl adapter inspect` reads, the bytes-on-the-wire line, and no process
# left behind. Then Ctrl-C in the middle of the swarm must stop everything it started.
#
# The full run also moves the utility mid-run (--retarget-at N --retarget-to FAMILY, dynamic
# utility), so that one demo run (its pretraining and fine-tunes are most of its time) serves
# both: the weights must move through the real server exactly as round N closes (a change
# scheduled on the server, not a script racing the swarm), the history must hold both weight
# versions (and its chart mark the change), and g at the end must be ranked under the new
# weights: its utility is the exported adapter's dev char_acc/FAMILY as `wxpctl legal eval`
# scores it, not its mix char_acc. It runs with --audit too (SPEC 12): the vendor's auditor
# must confirm every claim it decides (the built-in evaluator is deterministic, so honest
# firms are never disputed), and say so in DIR/audits.txt. A second, shorter run searches raw
# weights with local training between iterations (--local-training, SPEC 4.4): the server
# must hand it to the agents, and they must train every particle they moved. The interrupted
# run is the demo without the options.
set -uo pipefail

source "$TEST_SRCDIR/$TEST_WORKSPACE/tests/testing/check.sh"
export WXP_BIN="$ROOT"
# Processes whose command line mentions $1 (the demo's work dir), other than this script.
leftovers() {
  local f pid
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}; pid=${pid%/cmdline}
    [ "$pid" = $$ ] && continue
    tr '\0' ' ' 2>/dev/null < "$f" | grep -q -- "$1" && echo "$pid: $(tr '\0' ' ' 2>/dev/null < "$f")"
  done
  return 0
}

# 1. A full small run.
OUT="$TMP/run"
bash "$ROOT/deploy/demo.sh" --out "$OUT" --shards GPL,MPL --finetune-steps 150 \
  --iterations 6 --lambdas 0.5 --retarget-at 2 --retarget-to MPL --audit > "$TMP/run.log" 2>&1
rc=$?
check "the demo exits 0 (got $rc)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || tail -40 "$TMP/run.log"
table=$(sed -n '/adapter  *char_acc/,/^$/p' "$TMP/run.log")
echo "$table"
for row in swarm_best 'best_single(firm-' uniform_soup 'task_arithmetic(lambda=' \
  'ties(lambda=' 'dare_ties(lambda=' 'cat(lambda=' 'svd(lambda='; do
  check "the table has a $row row with an accuracy in [0, 1]" \
    awk -v r="$row" 'index($1, r) == 1 && $2 >= 0 && $2 <= 1 { found = 1 } END { exit !found }' \
    <<< "$table"
done
check "the demo says which particle space it searches (the default)" \
  grep -q '^particle space: EXPERT_COEFFICIENTS/LORA_PRODUCT' "$TMP/run.log"
check "the exported adapter is a PEFT directory wxpctl reads" \
  "$ROOT/client/wxpctl" adapter inspect "$OUT/best"
check "the bytes-on-the-wire line is printed" grep -q '^bytes on the wire per particle-iteration' "$TMP/run.log"
check "the swarm reached FINISHED" grep -q '^state  *FINISHED' "$TMP/run.log"
check "the merge baselines took their lambda from --lambdas" \
  bash -c "[ \$(grep -c '(lambda=0.5)' '$OUT/table.txt') -eq 5 ]"
# The retarget.
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
# The audits.
cat "$OUT/audits.txt"
check "the auditor re-evaluated claims, among them candidates for g" \
  grep -Eq '^  candidates for g: [1-9][0-9]*; sampled: [0-9]+$' "$OUT/audits.txt"
check "every claim it decided was confirmed: honest firms are never disputed" \
  grep -Eq '^  confirmed [1-9][0-9]*, disputed 0, still pending [0-9]+$' "$OUT/audits.txt"
check "the audits are in the server's log and nobody was quarantined" bash -c "
  grep -q 'event=audit_confirmed swarm=legal-demo' '$OUT/server.log' &&
  ! grep -q 'event=audit_disputed\|event=client_quarantined' '$OUT/server.log'"
check "the auditor left when the swarm was done" \
  grep -q 'event=auditor_done swarm=legal-demo .*disputed=0 .*swarm_done=1' "$OUT/vendor-audit.log"

echo "where the run's time went:"
sed 's/\x1b\[[0-9;]*m//g' "$TMP/run.log" | grep -E '^(== |\([0-9]+ s\)$)'
check "each agent logged its iterations" \
  bash -c "[ \$(cat '$OUT'/firm-*.log | grep -c 'event=iteration ') -ge 4 ]"
left=$(leftovers "$OUT")
check "no process is left behind: ${left:-none}" [ -z "$left" ]

# 2. Local training between iterations, on the first run's base model (`wxpctl legal
# pretrain` loads it from the work dir). Two firms give a pool of 4 particles; trained in
# every one of 3 iterations, that is 12 trainings, none failed.
OUT_LT="$TMP/trained"
mkdir -p "$OUT_LT" && cp -r "$OUT/legal" "$OUT_LT/legal"
bash "$ROOT/deploy/demo.sh" --out "$OUT_LT" --shards GPL,MPL --finetune-steps 150 \
  --iterations 3 --lambdas 0.5 --space weights --local-training 1:10:0.005:32 \
  > "$TMP/trained.log" 2>&1
rc=$?
check "the demo with local training exits 0 (got $rc)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || tail -40 "$TMP/trained.log"
check "it searches raw weights and says how it trains" bash -c "
  grep -q '^particle space: WEIGHTS' '$TMP/trained.log' &&
  grep -q '^local training: every 1 iterations each agent trains' '$TMP/trained.log'"
grep '^local training: [0-9]' "$TMP/trained.log"
check "the agents, told by the server, trained every particle they moved" \
  grep -q '^local training: 12 trainings in the agents (0 failed), 10 steps each$' "$TMP/trained.log"
check "and the run ends with the test-split table" \
  grep -Eq '^  swarm_best +0\.[0-9]{4}$' "$TMP/trained.log"
left=$(leftovers "$OUT_LT")
check "no process is left behind: ${left:-none}" [ -z "$left" ]
check "the refusals: local training outside the weights space, a malformed setting" bash -c "
  bash '$ROOT/deploy/demo.sh' --local-training 2:20:0.005:64 2>&1 | grep -q 'needs --space weights' &&
  bash '$ROOT/deploy/demo.sh' --space weights --local-training 2:20:fast:64 2>&1 |
    grep -q 'takes EVERY_K:STEPS:LR:BATCH'"

# 3. Ctrl-C while the swarm runs. As in a terminal, the demo runs as a job in its own process
# group with SIGINT not ignored (job control on: `&` would otherwise ignore SIGINT), and the
# whole group gets SIGINT.
OUT2="$TMP/interrupted"
# The base model is the first run's: `wxpctl legal pretrain` loads a cached base from the work
# dir instead of pretraining again, and this part is about Ctrl-C, not about pretraining.
mkdir -p "$OUT2" && cp -r "$OUT/legal" "$OUT2/legal"
set -m
bash "$ROOT/deploy/demo.sh" --out "$OUT2" --shards GPL,MPL --finetune-steps 150 \
  --iterations 1000 > "$TMP/int.log" 2>&1 &
demo=$!
set +m
for _ in $(seq 1500); do
  grep -q 'event=iteration' "$OUT2"/firm-*.log 2>/dev/null && break
  sleep 0.2
done
check "the swarm was running before the interrupt" \
  bash -c "cat '$OUT2'/firm-*.log | grep -q 'event=iteration'"
kill -INT -- "-$demo"
wait "$demo"
rc=$?
check "Ctrl-C ends the demo with 130 (got $rc)" [ $rc -eq 130 ]
sleep 0.5
left=$(leftovers "$OUT2")
check "Ctrl-C leaves no process behind: ${left:-none}" [ -z "$left" ]
check "the logs are kept for a post-mortem" [ -s "$OUT2/server.log" ]

finish
