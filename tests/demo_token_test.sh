#!/usr/bin/env bash
# The README's demo as a token swarm of mixed-architecture firms (deploy/demo.sh --space
# token_mixture --architecture mixed) end to end on the real binaries, over mutual TLS as the
# demo always runs, made small (two firms: an MLP and a transformer, short fine-tunes, a few
# iterations): it must finish with the table (the swarm against each firm's model alone and
# their uniform ensemble), an exported manifest naming both architectures that `wxpctl
# manifest eval` scores as the table says, text from the combined model, and no process left
# behind. The refusals of the options come first (they cost nothing).
set -uo pipefail

source "$TEST_SRCDIR/$TEST_WORKSPACE/tests/testing/check.sh"
export WXP_BIN="$ROOT"
DEMO="$ROOT/deploy/demo.sh"

check "--architecture mixed needs the token space" bash -c "
  bash '$DEMO' --architecture mixed 2>&1 | grep -q 'needs --space token_mixture'"
check "an unknown --combination is refused" bash -c "
  bash '$DEMO' --space token_mixture --combination product 2>&1 | grep -q 'unknown --combination product'"

OUT="$TMP/run"
bash "$DEMO" --out "$OUT" --space token_mixture --architecture mixed --shards GPL,MPL \
  --finetune-steps 80 --iterations 3 > "$TMP/run.log" 2>&1
rc=$?
check "the demo exits 0 (got $rc)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || tail -40 "$TMP/run.log"
sed 's/\x1b\[[0-9;]*m//g' "$TMP/run.log" | sed -n '/^== 8\/8/,$p'
check "the demo says it runs a token swarm of both architectures" \
  grep -q '^  firms. whole models (mlp transformer),' "$TMP/run.log"
check "the agents talk to the server over mutual TLS" \
  bash -c "grep -q '^tls { cert: ' '$OUT/firm-gpl.agent.textproto' &&
           grep -q '^tls { cert: ' '$OUT/firm-mpl.agent.textproto'"
check "the swarm reached FINISHED" grep -q '^state  *FINISHED' "$TMP/run.log"
check "the export is a manifest of an mlp and a transformer" bash -c "
  '$ROOT/client/wxpctl' manifest inspect '$OUT/best' | grep -q ' mlp ' &&
  '$ROOT/client/wxpctl' manifest inspect '$OUT/best' | grep -q ' transformer '"
for row in 'swarm_best (token swarm)' 'best_single(firm-' 'uniform_ensemble(2 models)' \
  'alone: firm-gpl/mlp' 'alone: firm-mpl/transformer'; do
  check "the table has a '$row' row with an accuracy in [0, 1]" \
    awk -v r="$row" 'index($0, "  " r) > 0 && $NF >= 0 && $NF <= 1 { found = 1 } END { exit !found }' \
    "$OUT/table.txt"
done
swarm=$(awk '/^  swarm_best \(token swarm\)/ { print $NF }' "$OUT/table.txt")
scored=$("$ROOT/client/wxpctl" manifest eval "$OUT/best" --work-dir "$OUT/legal" --split test |
  python3 -c 'import json, sys; print("%.4f" % json.load(sys.stdin)["scores"]["char_acc"])')
check "the table's swarm row is the manifest as manifest eval scores it ($swarm, $scored)" \
  [ -n "$swarm" ] && [ "$swarm" = "$scored" ]
check "only coefficient vectors moved" grep -q '^bytes on the wire per particle-iteration: position blobs 0 up + 0 down' "$TMP/run.log"
check "the combined model wrote 160 bytes after the prompt" python3 -c "
import sys
t = open(sys.argv[1], 'rb').read()
sys.exit(0 if t.startswith(b'Permission is hereby granted, ') and len(t) == 30 + 160 + 1 else 1)" \
  "$OUT/generated.txt"
left=""
for f in /proc/[0-9]*/cmdline; do
  pid=${f#/proc/}; pid=${pid%/cmdline}
  [ "$pid" = $$ ] && continue
  tr '\0' ' ' 2>/dev/null < "$f" | grep -q -- "$OUT" && left="$left $pid"
done
check "no process is left behind:${left:- none}" [ -z "$left" ]

finish
