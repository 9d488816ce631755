#!/usr/bin/env bash
# The WXP demo (SPEC 8), one command on a fresh Debian machine and clone:
#   installs what is missing, builds, makes a CA and certificates, starts wxp-server on
#   loopback (SQLite + mutual TLS), has each firm fine-tune its own LoRA expert on its
#   private licence-text shard, starts one wxp-agent per firm, runs a real SYNC swarm with
#   live progress, exports the best adapter, and prints the test-split table: the swarm's
#   best against the best single expert, the classic merges and the product merges.
#
#   deploy/demo.sh [--out DIR] [--shards A,B,...] [--iterations K] [--finetune-steps N]
#                  [--space weights|linear_ab|lora_product|lora_product_svd|token_mixture]
#                  [--combination mixture|log_linear] [--keep]
#                  [--lambdas L1,L2,...] [--architecture mlp|transformer|mixed]
#                  [--retarget-at N --retarget-to FAMILY] [--audit]
#                  [--local-training EVERY_K:STEPS:LR:BATCH]
#
# --retarget-at N --retarget-to FAMILY: dynamic utility (SPEC 4.2, 4.4) live. The swarm
# starts on next-byte accuracy of the mixed dev split (char_acc); once iteration N has
# closed, the weights move to FAMILY's part of the dev split alone (char_acc/FAMILY, which
# the built-in evaluator reports for every licence family; see `wxpctl legal shards`):
# `wxpctl weights set --after-iteration N` schedules the change on the server when the swarm
# is created, so the same seed gives the same run. The server re-ranks every stored
# evaluation and the swarm goes on without a restart. The demo prints g of round N under
# both weights and g at the end, scores FAMILY on the test split too, and keeps the history
# (DIR/history.csv, both weight versions) and its chart (DIR/history.svg).
#
# --local-training EVERY_K:STEPS:LR:BATCH (with --space weights): self-supervised training
# between iterations (SPEC 4.4). In every EVERY_K-th iteration each agent trains the particles
# it moved for STEPS next-byte steps (learning rate LR, batch BATCH) on its own firm's train
# shard, then evaluates them. It goes into the swarm spec (`local_training`), so the server
# hands it to the agents; the demo prints how many trainings the agents ran. B5 measures
# whether it helps (README, "Benchmarks"); it is off unless asked for.
#
# --space: where the swarm searches (SPEC 4.3). Default lora_product: coefficients over the
# firms' experts, decoded as the exact sum of their LoRA products; of the three spaces B5
# measures it scored highest (README, "Quality"). weights is the paper's raw-weight search.
#
# --architecture: the built-in model (README, "Built-in legal evaluator"): mlp (default) or
# transformer (Llama-shaped; its experts are laid out as a PEFT LoRA of a real LLM). The
# agents are not told: they read it from the base model their experts name. mixed (token
# swarms only): the firms take turns, mlp and transformer, each on its own base model.
#
# --space token_mixture: a token swarm (SPEC 4.5): α over the firms' whole models (adapter
# plus base model, of any architecture), combined per next byte as --combination says
# (mixture, the default as in a swarm spec, or log_linear; README, "Token swarms"). Agents
# fetch each other firm's model once; only α moves. The export is a manifest (DIR/best), and
# the table compares it with each firm's model alone and the uniform ensemble of all of them
# (no weight merges: the models need not share an architecture), then the combined model
# writes a few lines of licence text (`wxpctl manifest generate`).
#
# --audit: the vendor checks what the firms report (SPEC 12; deploy/README.md, "Audits"). The
# swarm spec gets an audit policy (every candidate for g, plus a 10 % sample of the other
# reports, re-evaluated; tolerance 1e-6 on every utility component: the built-in evaluator is
# deterministic, so honest claims agree exactly) and a wxp-agent of role auditor runs the
# vendor's own copy of the evaluator. The demo prints what the audits cost (claims
# re-evaluated, their verdicts) and keeps them in DIR/audits.txt.
#
# --lambdas: the grid the merge baselines pick their scale from on the dev split (default
# 0.2,0.4,0.6,0.8,1.0). Each value costs one merge and one dev evaluation per method.
#
# Everything it starts is stopped on exit and on Ctrl-C. Work files go to DIR (default a
# fresh /tmp/wxp-demo.XXXXXX). At the end only the exported best adapter (DIR/best) and the
# table (DIR/table.txt) (with --retarget-at, the history too) are kept, unless --keep (or
# --out) keeps everything. With WXP_BIN set to
# a directory holding client/wxpctl (with client/wxpctl-tensors beside it),
# client/agent/wxp-agent and server/app/wxp-server (built already, e.g. a test's runfiles),
# step 1 is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

OUT="" SHARDS_CSV="GPL,LGPL,GFDL,MPL,Apache" ITERATIONS=30 STEPS="" KEEP=0 SPACE=lora_product
ARCH=mlp COMBINATION=mixture
LAMBDAS_CSV=0.2,0.4,0.6,0.8,1.0 RETARGET_AT="" RETARGET_TO="" AUDIT=0 LOCAL_TRAINING=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; KEEP=1; shift 2 ;;
    --shards) SHARDS_CSV=$2; shift 2 ;;
    --iterations) ITERATIONS=$2; shift 2 ;;
    --finetune-steps) STEPS=$2; shift 2 ;;
    --space) SPACE=$2; shift 2 ;;
    --lambdas) LAMBDAS_CSV=$2; shift 2 ;;
    --architecture) ARCH=$2; shift 2 ;;
    --combination) COMBINATION=$2; shift 2 ;;
    --retarget-at) RETARGET_AT=$2; shift 2 ;;
    --retarget-to) RETARGET_TO=$2; shift 2 ;;
    --audit) AUDIT=1; shift ;;
    --local-training) LOCAL_TRAINING=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
    *) echo "demo: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

IFS=, read -r -a LAMBDAS <<< "$LAMBDAS_CSV"
for l in "${LAMBDAS[@]}"; do
  [[ $l =~ ^[0-9]*\.?[0-9]+$ ]] && [[ ! $l =~ ^0*\.?0*$ ]] || {
    echo "demo: --lambdas takes positive numbers separated by commas (got '$LAMBDAS_CSV')" >&2
    exit 2
  }
done
[ ${#LAMBDAS[@]} -gt 0 ] || { echo "demo: --lambdas is empty" >&2; exit 2; }
if [ -n "$RETARGET_AT$RETARGET_TO" ]; then
  [ -n "$RETARGET_AT" ] && [ -n "$RETARGET_TO" ] || {
    echo "demo: --retarget-at and --retarget-to go together" >&2; exit 2; }
  [[ $RETARGET_AT =~ ^[1-9][0-9]*$ ]] && [ "$RETARGET_AT" -lt "$ITERATIONS" ] || {
    echo "demo: --retarget-at takes an iteration in [1, --iterations) (got '$RETARGET_AT')" >&2
    exit 2
  }
fi

LT_SPEC=""
if [ -n "$LOCAL_TRAINING" ]; then
  IFS=: read -r LT_K LT_STEPS LT_LR LT_BATCH LT_REST <<< "$LOCAL_TRAINING"
  [[ $LT_K =~ ^[1-9][0-9]*$ && $LT_STEPS =~ ^[1-9][0-9]*$ && $LT_BATCH =~ ^[1-9][0-9]*$ &&
     $LT_LR =~ ^[0-9]*\.?[0-9]+([eE]-?[0-9]+)?$ && -z $LT_REST ]] || {
    echo "demo: --local-training takes EVERY_K:STEPS:LR:BATCH, e.g. 2:20:0.005:64 (got" \
      "'$LOCAL_TRAINING')" >&2
    exit 2
  }
  [ "$SPACE" = weights ] || {
    echo "demo: --local-training needs --space weights (training moves an adapter's raw" \
      "weights; the server refuses it in coefficient and token spaces)" >&2
    exit 2
  }
  LT_SPEC="local_training { every_k: $LT_K steps: $LT_STEPS learning_rate: $LT_LR batch: $LT_BATCH }"
fi

case "$ARCH" in
  mlp|transformer) ;;
  mixed) [ "$SPACE" = token_mixture ] || {
    echo "demo: --architecture mixed needs --space token_mixture (weights and coefficients" \
      "combine adapters of one base model)" >&2; exit 2; } ;;
  *) echo "demo: unknown --architecture $ARCH (mlp, transformer or mixed)" >&2; exit 2 ;;
esac
case "$COMBINATION" in
  log_linear|mixture) ;;
  *) echo "demo: unknown --combination $COMBINATION (mixture or log_linear)" >&2; exit 2 ;;
esac

case "$SPACE" in
  weights) SPACE_SPEC="" ;;
  linear_ab) SPACE_SPEC="space: EXPERT_COEFFICIENTS decoder: LINEAR_AB" ;;
  lora_product) SPACE_SPEC="space: EXPERT_COEFFICIENTS decoder: LORA_PRODUCT" ;;
  lora_product_svd) SPACE_SPEC="space: EXPERT_COEFFICIENTS decoder: LORA_PRODUCT_SVD svd_rank: 8" ;;
  token_mixture) SPACE_SPEC="space: TOKEN_MIXTURE combination: ${COMBINATION^^}" ;;
  *) echo "demo: unknown --space $SPACE (weights, linear_ab, lora_product, lora_product_svd or" \
       "token_mixture)" >&2
     exit 2 ;;
esac

# Each step line says how long the one before it took (bash's SECONDS), so a slow demo shows
# where its time went.
step() {
  [ -z "${STEP_START:-}" ] || printf '(%d s)\n' $((SECONDS - STEP_START))
  STEP_START=$SECONDS
  printf '\n\033[1m== %s\033[0m\n' "$*"
}

if [ -n "${WXP_BIN:-}" ]; then
  BIN=$WXP_BIN
else
  step "1/8 installing what is missing and building (the first build takes a few minutes)"
  bash deploy/install-deps.sh
  bazel build -c opt //client:wxpctl //client/agent:wxp-agent //server/app:wxp-server
  BIN=$ROOT/bazel-bin
fi
WXPCTL=$BIN/client/wxpctl

[ -n "$OUT" ] || OUT=$(mktemp -d /tmp/wxp-demo.XXXXXX)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PIDS=()
cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$KEEP" -eq 0 ] && [ $rc -eq 0 ]; then
    # What the last line tells the user to open stays; the rest is scratch.
    find "$OUT" -mindepth 1 -maxdepth 1 ! -name best ! -name table.txt ! -name 'history.*' \
      ! -name retarget.txt ! -name audits.txt -exec rm -rf {} +
  fi
  if [ $rc -ne 0 ]; then echo "demo: stopped (exit $rc); logs are in $OUT" >&2; fi
}
trap cleanup EXIT
# What the demo's last line says stays after it ends (cleanup removes the rest).
kept_line() {
  [ "$KEEP" -eq 0 ] || return 0
  local audits=""
  [ "$AUDIT" -eq 0 ] || audits=", audits.txt"
  echo "(kept: $OUT/best and $OUT/table.txt${RETARGET_AT:+, the history and retarget.txt}$audits; certificates, logs and experts are removed on exit — --keep keeps them)"
}
trap 'exit 130' INT TERM

step "2/8 certificates: one CA, the server, an admin$([ "$AUDIT" -eq 0 ] || echo ", the vendor's auditor"), one agent per firm"
CERTS=$OUT/certs
$WXPCTL certs init-ca --dir "$OUT/ca"
$WXPCTL certs issue --ca "$OUT/ca" --role server --name server --dns localhost --ip 127.0.0.1 --out "$CERTS"
$WXPCTL certs issue --ca "$OUT/ca" --role admin --name ops --out "$CERTS"
if [ "$AUDIT" -eq 1 ]; then
  $WXPCTL certs issue --ca "$OUT/ca" --role auditor --name vendor-audit --out "$CERTS"
fi

step "3/8 wxp-server on loopback with SQLite and mutual TLS"
$BIN/server/app/wxp-server --listen=127.0.0.1:0 --port_file="$OUT/server.port" \
  --data_dir="$OUT/server" --tls_cert="$CERTS/server.crt" --tls_key="$CERTS/server.key" \
  --tls_ca="$CERTS/ca.crt" 2>"$OUT/server.log" &
PIDS+=($!)
# Until it writes its port, or exits; 60 s bounds a hang (it takes well under a second).
for _ in $(seq 600); do
  [ -s "$OUT/server.port" ] && break
  kill -0 "${PIDS[-1]}" 2>/dev/null || break
  sleep 0.1
done
[ -s "$OUT/server.port" ] || { cat "$OUT/server.log" >&2; exit 1; }
SERVER=localhost:$(cat "$OUT/server.port")
ADMIN=(--server "$SERVER" --tls-cert "$CERTS/ops.crt" --tls-key "$CERTS/ops.key" --tls-ca "$CERTS/ca.crt")
echo "serving on $SERVER (data in $OUT/server, log $OUT/server.log)"

step "4/8 the vendor's base model (byte-level LM, pretrained once on the general mix)"
LEGAL=$OUT/legal
# The architecture of firm i (0-based): --architecture, or with mixed, mlp and transformer
# in turn.
arch_of() {
  if [ "$ARCH" = mixed ]; then (( $1 % 2 == 0 )) && echo mlp || echo transformer; else echo "$ARCH"; fi
}
if [ "$ARCH" = mixed ]; then ARCHS=(mlp transformer); else ARCHS=("$ARCH"); fi
for a in "${ARCHS[@]}"; do $WXPCTL legal pretrain --work-dir "$LEGAL" --architecture "$a"; done
IFS=, read -r -a SHARDS <<< "$SHARDS_CSV"
# Families with a dev part get a utility component each (weight 0 unless retargeted to), so
# `wxpctl weights set legal-demo char_acc/GPL=1 char_acc=0` can point the swarm at one.
mapfile -t FAMILIES < <($WXPCTL legal shards | awk 'NR > 2 && $4 > 0 { print $1 }')
if [ -n "$RETARGET_TO" ] && ! printf '%s\n' "${FAMILIES[@]}" | grep -qx -- "$RETARGET_TO"; then
  echo "demo: --retarget-to $RETARGET_TO is not a licence family with a dev part (${FAMILIES[*]})" >&2
  exit 2
fi

step "5/8 each firm fine-tunes its own LoRA expert on its private shard"
EXPERTS=()
# A token swarm's expert is a whole model: the adapter plus its base model file.
TOKEN_EXPERT=()
[ "$SPACE" = token_mixture ] && TOKEN_EXPERT=(--token-expert)
for i in "${!SHARDS[@]}"; do
  s=${SHARDS[$i]}
  firm=firm-$(echo "$s" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9\n' '-')
  $WXPCTL legal finetune --work-dir "$LEGAL" --architecture "$(arch_of "$i")" --shard "$s" \
    --out "$OUT/experts/$firm" "${TOKEN_EXPERT[@]}" \
    ${STEPS:+--steps "$STEPS"}
  $WXPCTL certs issue --ca "$OUT/ca" --role agent --name "$firm" --out "$CERTS"
  EXPERTS+=("$firm:$s")
done

step "6/8 the swarm, and one wxp-agent per firm"
AGENTS=()
cat > "$OUT/swarm.textproto" <<SPEC
name: "legal-demo"
description: "licence-text assistant: next-byte accuracy on the vendor's mixed dev split"
mode: SYNC
upload_policy: ON_DEMAND
min_experts: ${#EXPERTS[@]}
round_deadline_seconds: 120
utility { name: "char_acc" weight: 1 min_value: 0 max_value: 1 }
$(for f in "${FAMILIES[@]}"; do
  echo "utility { name: \"char_acc/$f\" weight: 0 min_value: 0 max_value: 1 }"
done)
hyperparameters { pool_size: $(( ${#EXPERTS[@]} * 2 )) max_iterations: $ITERATIONS patience: 8 seed: 1 }
$SPACE_SPEC
$LT_SPEC
$([ "$AUDIT" -eq 0 ] || {
  echo "audit { enabled: true sample_rate: 0.1 tolerance { key: \"char_acc\" value: 1e-6 }"
  for f in "${FAMILIES[@]}"; do echo "  tolerance { key: \"char_acc/$f\" value: 1e-6 }"; done
  echo "}"
})
SPEC
if [ "$SPACE" = weights ]; then
  echo "particle space: WEIGHTS (the paper's search over raw LoRA weights; --space picks another)"
elif [ "$SPACE" = token_mixture ]; then
  echo "particle space: TOKEN_MIXTURE/${COMBINATION^^}: the swarm moves coefficients over the"
  echo "  firms' whole models ($(for i in "${!SHARDS[@]}"; do printf '%s ' "$(arch_of "$i")"; done | sed 's/ $//')),"
  echo "  combined per next byte; agents receive every model once, then only coefficient vectors move."
else
  echo "particle space: EXPERT_COEFFICIENTS/${SPACE^^}: the swarm moves coefficients over the"
  echo "  firms' experts; agents receive every expert once, then only coefficient vectors move."
  echo "  lora_product (the default) scored highest of the spaces B5 measures (README, Quality)."
fi
if [ -n "$LT_SPEC" ]; then
  echo "local training: every $LT_K iterations each agent trains the particles it moved for"
  echo "  $LT_STEPS steps (lr $LT_LR, batch $LT_BATCH) on its own firm's train shard, then evaluates them"
fi
$WXPCTL "${ADMIN[@]}" swarm create --spec "$OUT/swarm.textproto"
if [ -n "$RETARGET_AT" ]; then
  $WXPCTL "${ADMIN[@]}" weights set legal-demo char_acc=0 "char_acc/$RETARGET_TO=1" \
    --after-iteration "$RETARGET_AT" >/dev/null
  echo "retarget: scheduled on the server: once iteration $RETARGET_AT has closed, the weights"
  echo "  move from char_acc (the mix) to char_acc/$RETARGET_TO (\`wxpctl weights show legal-demo\`)"
fi
# The agents' LibTorch (OpenMP) threads wait for work asleep, as the systemd unit and the
# container have them: five agents and the server share the cores here, and threads spinning
# between evaluations took them from the others (the swarm step: 38-39 s spinning, 29-30 s
# asleep, two runs each).
agent_env() { OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} "$@"; }
for e in "${EXPERTS[@]}"; do
  firm=${e%%:*} shard=${e#*:}
  cat > "$OUT/$firm.agent.textproto" <<CFG
server_address: "$SERVER"
tls { cert: "$CERTS/$firm.crt" key: "$CERTS/$firm.key" ca: "$CERTS/ca.crt" }
swarm: "legal-demo"
expert_paths: "$OUT/experts/$firm"
capacity: 2
work_dir: "$OUT/agents/$firm"
builtin_legal_text { shard: "$shard" split: "dev" base_dir: "$LEGAL" }
CFG
  agent_env $BIN/client/agent/wxp-agent --config="$OUT/$firm.agent.textproto" \
    2>"$OUT/$firm.log" &
  PIDS+=($!) AGENTS+=($!)
  echo "$firm (shard $shard): log $OUT/$firm.log"
done

if [ "$AUDIT" -eq 1 ]; then
  # The vendor's auditor: its own copy of the evaluator, no experts, no particles.
  cat > "$OUT/vendor-audit.agent.textproto" <<CFG
server_address: "$SERVER"
tls { cert: "$CERTS/vendor-audit.crt" key: "$CERTS/vendor-audit.key" ca: "$CERTS/ca.crt" }
swarm: "legal-demo"
role: "auditor"
work_dir: "$OUT/agents/vendor-audit"
builtin_legal_text { split: "dev" base_dir: "$LEGAL" }
CFG
  agent_env $BIN/client/agent/wxp-agent --config="$OUT/vendor-audit.agent.textproto" \
    2>"$OUT/vendor-audit.log" &
  PIDS+=($!) AUDITOR=$!
  echo "vendor-audit (auditor): log $OUT/vendor-audit.log"
fi

# What the audits cost and found, from the history's audited claims (--audit).
audit_report() {
  $WXPCTL "${ADMIN[@]}" history legal-demo --json | python3 -c '
import json, sys
h = json.load(sys.stdin)
claims = h.get("audits", [])
def verdict(c):
    return c.get("verdict", "AUDIT_PENDING").replace("AUDIT_", "").lower()
count = lambda pred: sum(1 for c in claims if pred(c))
# One reading per iteration: after a weight change the history holds the same rounds again.
reports = sum({int(e["iteration"]): int(e["reports"]) for e in h.get("entries", [])}.values())
print("audits: %d claims re-evaluated by the auditor, against %d reports by the firms"
      % (count(lambda c: verdict(c) != "pending"), reports))
print("  candidates for g: %d; sampled: %d" % (count(lambda c: c.get("candidate")),
                                               count(lambda c: not c.get("candidate"))))
print("  confirmed %d, disputed %d, still pending %d"
      % tuple(count(lambda c, v=v: verdict(c) == v) for v in ("confirmed", "disputed", "pending")))'
  $WXPCTL "${ADMIN[@]}" clients list
}

# g as `swarm status` reports it: "particle P iteration K, utility U (weights vV)".
best_line() {
  python3 -c 'import json, sys
s = json.load(sys.stdin); g = s.get("global_best", {})
print("particle %s iteration %s, utility %.6f (weights v%s)" % (g.get("particle_id", 0),
      g.get("iteration", 0), g.get("utility", 0), s.get("utility_weight_version", 1)))'
}
# --retarget-at: the server moves the weights itself once iteration N has closed (a change
# scheduled with `weights set --after-iteration`), so the run does not depend on when this
# script looks; afterwards the history holds the readings of round N under both versions.
retarget_report() {
  python3 - "$OUT/history.csv" "$RETARGET_AT" "$RETARGET_TO" <<'PY'
import csv, sys
path, at, family = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = {(int(r["weight_version"]), int(r["iteration"])): r for r in csv.DictReader(open(path))}
if (2, at) not in rows:
    print("retarget: the swarm ended before iteration %d closed; weights unchanged" % at)
    sys.exit(0)
print("retarget: iteration %d closed; the weights moved from char_acc (the mix) to char_acc/%s"
      % (at, family))
print("  before: g utility %.6f at iteration %d (weights v1)"
      % (float(rows[(1, at)]["global_best_utility"]), at))
print("  after:  g utility %.6f at iteration %d (weights v2) (re-ranked from the stored scores;"
      " nothing re-evaluated)" % (float(rows[(2, at)]["global_best_utility"]), at))
PY
}

# Step 8 of a token swarm: the exported manifest against each firm's model alone and the
# uniform ensemble, all through `wxpctl manifest eval --alpha` (each split's experts run
# once; every α is then arithmetic over their outputs). The best single model is chosen on
# dev, as the swarm's best was.
token_table() {
  $WXPCTL manifest inspect "$OUT/best"
  local alphas names
  # "swarm α;e_1;...;e_n;uniform" in the manifest's expert order, and the firm of each expert.
  read -r alphas names < <(python3 - "$OUT" <<'PY'
import glob, hashlib, json, os, sys
out = sys.argv[1]
m = json.load(open(os.path.join(out, "best", "token_swarm_manifest.json")))
n = len(m["alpha"])
firm_of = {}
for d in glob.glob(os.path.join(out, "experts", "*")):
    with open(os.path.join(d, "adapter_model.safetensors"), "rb") as f:
        firm_of[hashlib.sha256(f.read()).hexdigest()] = os.path.basename(d)
vectors = [m["alpha"]] + [[1.0 if k == j else 0.0 for k in range(n)] for j in range(n)]
vectors.append([1.0 / n] * n)
names = [firm_of.get(e["adapter_blob_id"], "expert-%d" % j) + "/" + e["architecture"]
         for j, e in enumerate(m["experts"])]
print(";".join(",".join(repr(float(x)) for x in v) for v in vectors), ",".join(names))
PY
)
  for split in dev test; do
    $WXPCTL manifest eval "$OUT/best" --work-dir "$LEGAL" --split "$split" --alpha "$alphas" \
      > "$OUT/${split}_scores.jsonl"
  done
  printf '(%d s)\n' $((SECONDS - STEP_START))
  python3 - "$OUT" "$names" "${RETARGET_TO:-}" <<'PY' | tee "$OUT/table.txt"
import json, os, sys
out, names, family = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
dev = [json.loads(l)["scores"] for l in open(os.path.join(out, "dev_scores.jsonl"))]
test = [json.loads(l)["scores"] for l in open(os.path.join(out, "test_scores.jsonl"))]
n = len(names)
c = "char_acc/" + family if family else "char_acc"
best = max(range(n), key=lambda j: dev[1 + j][c])  # the first of the best, on dev
print("\n%s on the held-out TEST split (higher is better); the best single model was chosen"
      " on the dev split, as the swarm's best was:" % c)
print("  %-36s %9s" % ("model", c))
print("  %-36s %9.4f" % ("swarm_best (token swarm)", test[0][c]))
print("  %-36s %9.4f" % ("best_single(%s)" % names[best], test[1 + best][c]))
print("  %-36s %9.4f" % ("uniform_ensemble(%d models)" % n, test[n + 1][c]))
for j in range(n):
    print("    alone: %-27s %9.4f" % (names[j], test[1 + j][c]))
print("\nbytes on the wire per particle-iteration: position blobs 0 up + 0 down (only"
      " coefficient vectors of %d floats move, inline); each agent fetched the other firms'"
      " models (adapter and base model) once" % n)
PY
  echo
  echo "the swarm's combined model continues a licence sentence (wxpctl manifest generate,"
  echo "sampled at temperature 0.7; at 0 a model this small soon repeats itself):"
  $WXPCTL manifest generate "$OUT/best" --work-dir "$LEGAL" --temperature 0.7 --seed 1 \
    --prompt "Permission is hereby granted, " --bytes 160 | tee "$OUT/generated.txt" | sed 's/^/  /'
  echo
  echo "best token swarm (manifest and models): $OUT/best (wxpctl manifest inspect|eval|generate)"
  kept_line
}

# wait_exit PID...: until every one has exited (true), or 60 s have passed (false).
wait_exit() {
  local p alive
  for _ in $(seq 600); do
    alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 1 ] || return 0
    sleep 0.1
  done
  return 1
}

step "7/8 live progress (wxpctl watch)"
# watch ends when the swarm does; if every agent exits first (an evaluator that cannot score
# the swarm's adapters, say), nothing would ever end it: stop and show why instead.
$WXPCTL "${ADMIN[@]}" watch legal-demo --interval 1 &
WATCH=$!
PIDS+=($WATCH)
agents_gone=0
while kill -0 "$WATCH" 2>/dev/null; do
  alive=0
  for p in "${AGENTS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  if [ $alive -eq 1 ]; then agents_gone=0; else agents_gone=$((agents_gone + 1)); fi
  if [ $agents_gone -gt 10 ]; then  # agents leave once the swarm is done; watch sees it in ~1 s
    echo "demo: every wxp-agent exited but the swarm has not finished; their last words:" >&2
    for f in "$OUT"/firm-*.log; do echo "  $(basename "$f"): $(tail -n 1 "$f")" >&2; done
    exit 1
  fi
  sleep 1
done
wait "$WATCH"
if [ -n "$RETARGET_AT" ]; then
  $WXPCTL "${ADMIN[@]}" history legal-demo --csv > "$OUT/history.csv"
  retarget_report > "$OUT/retarget.txt"
  cat "$OUT/retarget.txt"
  echo "  at the end: g = $($WXPCTL "${ADMIN[@]}" swarm status legal-demo --output json | best_line)" \
    | tee -a "$OUT/retarget.txt"
  $WXPCTL "${ADMIN[@]}" history legal-demo --plot "$OUT/history.svg"
  echo "  history: $OUT/history.csv (weight versions: $(cut -d, -f1 "$OUT/history.csv" | tail -n +2 | sort -u | tr '\n' ' '))"
fi

if [ "$AUDIT" -eq 1 ]; then
  # The auditor leaves by itself once it sees the swarm done (it polls every half second).
  wait_exit "$AUDITOR" ||
    echo "demo: the auditor is still running a minute after the swarm ended: $OUT/vendor-audit.log" >&2
  audit_report | tee "$OUT/audits.txt"
fi

if [ -n "$LT_SPEC" ]; then
  # The agents' own counts, from the summary each logs as it leaves (right after the swarm).
  # The count needs every summary, so past the minute the demo keeps waiting (Ctrl-C stops).
  if ! wait_exit "${AGENTS[@]}"; then
    echo "demo: a wxp-agent is still running a minute after the swarm ended; waiting for it" >&2
    for p in "${AGENTS[@]}"; do wait "$p" 2>/dev/null || true; done
  fi
  cat "$OUT"/firm-*.log | awk -v steps="$LT_STEPS" '/event=agent_summary/ {
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^trainings=/) t += substr($i, 11)
        if ($i ~ /^failed_trainings=/) f += substr($i, 18)
      }
    }
    END { printf "local training: %d trainings in the agents (%d failed), %s steps each\n", t, f, steps }'
fi

step "8/8 export and the test-split table"
$WXPCTL "${ADMIN[@]}" export legal-demo --out "$OUT/best"
if [ "$SPACE" = token_mixture ]; then
  token_table
  exit 0
fi
EXPERT_DIRS=()
for e in "${EXPERTS[@]}"; do EXPERT_DIRS+=("$OUT/experts/${e%%:*}"); done
$WXPCTL merge --method linear --out "$OUT/merges/uniform_soup" "${EXPERT_DIRS[@]}" >/dev/null
# The unnormalised merges need their scale: like the papers, pick lambda on the dev split
# (the swarm's own utility), then report the test split.
# The product merges (cat, svd) take lambda as every expert's coefficient: lambda * sum_j
# s_j B_j A_j, the exact form of task arithmetic's lambda * sum of task vectors.
TUNED=()
for method in task_arithmetic ties dare_ties cat svd; do
  extra=()
  [ "$method" = svd ] && extra=(--svd-rank 8)
  for lambda in "${LAMBDAS[@]}"; do
    scale=(--lambda "$lambda")
    if [ "$method" = cat ] || [ "$method" = svd ]; then
      scale=(--weights "$(printf "$lambda%.0s," "${EXPERT_DIRS[@]}" | sed 's/,$//')")
    fi
    $WXPCTL merge --method "$method" "${scale[@]}" "${extra[@]}" \
      --out "$OUT/merges/$method-$lambda" "${EXPERT_DIRS[@]}" >/dev/null
    TUNED+=("$OUT/merges/$method-$lambda")
  done
done
# Every choice (the best single expert, each merge's lambda) is made on dev, then each
# chosen adapter is scored once on test: one wxpctl process per split scores them all.
$WXPCTL legal eval --work-dir "$LEGAL" --architecture "$ARCH" --split dev \
  "${EXPERT_DIRS[@]}" "${TUNED[@]}" "$OUT/best" > "$OUT/dev_scores.jsonl"
mapfile -t CHOSEN < <(python3 - "$OUT/dev_scores.jsonl" "${#EXPERT_DIRS[@]}" "${RETARGET_TO:-}" <<'PY'
import json, os, sys
scores = [json.loads(l) for l in open(sys.argv[1])]
n, family = int(sys.argv[2]), sys.argv[3]
def best(rows, component="char_acc"):
    # The first of the best, in the order given (max keeps the first of equals).
    return max(rows, key=lambda r: r["scores"][component])["adapter"]
experts, merges = scores[:n], scores[n:-1]  # in the order given; the last is the swarm's
print("best_single " + best(experts))
methods = ["task_arithmetic", "ties", "dare_ties", "cat", "svd"]
for m in methods:
    rows = [r for r in merges if os.path.basename(r["adapter"]).rsplit("-", 1)[0] == m]
    print(m + " " + best(rows))
if family:
    print("best_single_family " + best(experts, "char_acc/" + family))
PY
)
declare -A PICK
for line in "${CHOSEN[@]}"; do PICK[${line%% *}]=${line#* }; done
TEST_SET=("$OUT/best" "${PICK[best_single]}" "$OUT/merges/uniform_soup")
for m in task_arithmetic ties dare_ties cat svd; do TEST_SET+=("${PICK[$m]}"); done
[ -n "$RETARGET_AT" ] && TEST_SET+=("${PICK[best_single_family]}")
$WXPCTL legal eval --work-dir "$LEGAL" --architecture "$ARCH" --split test \
  "${TEST_SET[@]}" > "$OUT/test_scores.jsonl"
# score SPLIT ADAPTER [COMPONENT]: from the scores just computed.
score() {
  python3 -c 'import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["adapter"] == sys.argv[2]:
        print(r["scores"][sys.argv[3]]); break' "$OUT/$1_scores.jsonl" "$2" "${3:-char_acc}"
}
lambda_of() { local b; b=$(basename "$1"); echo "${b##*-}"; }
{
  echo "method char_acc"
  echo "swarm_best $(score test "$OUT/best")"
  echo "best_single($(basename "${PICK[best_single]}")) $(score test "${PICK[best_single]}")"
  echo "uniform_soup $(score test "$OUT/merges/uniform_soup")"
  for m in task_arithmetic ties dare_ties cat svd; do
    echo "$m(lambda=$(lambda_of "${PICK[$m]}")) $(score test "${PICK[$m]}")"
  done
} > "$OUT/table.txt"
if [ -n "$RETARGET_AT" ]; then
  # The objective after the change, on test: the best single expert for it is chosen on dev
  # by the same component.
  c=char_acc/$RETARGET_TO best_f_name=${PICK[best_single_family]}
  {
    echo "$c on the TEST split after the retarget (higher is better):"
    echo "  swarm_best                   $(score test "$OUT/best" "$c")"
    echo "  best_single($(basename "$best_f_name")) $(score test "$best_f_name" "$c")"
    echo "  swarm_best on dev            $(score dev "$OUT/best" "$c")"
  } | tee -a "$OUT/retarget.txt"
fi
printf '(%d s)\n' $((SECONDS - STEP_START))
python3 - "$OUT" "${#EXPERTS[@]}" <<'PY'
import glob, os, re, sys
out, n = sys.argv[1], int(sys.argv[2])
rows = [l.split() for l in open(os.path.join(out, "table.txt")).read().splitlines()[1:]]
print("\nnext-byte accuracy on the held-out TEST split (higher is better); the best single"
      "\nexpert and each merge's lambda were chosen on the dev split, as the swarm's best was:")
print("  %-28s %9s" % ("adapter", "char_acc"))
for name, acc in rows:
    print("  %-28s %9.4f" % (name, float(acc)))
size = os.path.getsize(os.path.join(out, "best", "adapter_model.safetensors"))
up = down = iters = 0
for log in glob.glob(os.path.join(out, "firm-*.log")):
    text = open(log).read()
    m = re.findall(r"event=agent_summary .*? bytes_up=(\d+) \(experts (\d+)\) bytes_down=(\d+)", text)
    if m:
        up += int(m[-1][0]) - int(m[-1][1]); down += int(m[-1][2])
    iters += len(re.findall(r"event=iteration ", text))
coefficients = "space: EXPERT_COEFFICIENTS" in open(os.path.join(out, "swarm.textproto")).read()
if iters and coefficients:
    # Every blob an agent downloads here is another firm's expert, fetched once; the
    # coefficient vectors travel inline in the particle RPCs (n floats each), not as blobs.
    print("\nbytes on the wire per particle-iteration: position blobs 0 up + 0 down (only"
          " coefficient vectors of %d floats move, inline); each agent fetched the other"
          " experts once: %.0f bytes" % (n, down / max(1, len(glob.glob(os.path.join(out, "firm-*.log"))))))
elif iters:
    print("\nbytes on the wire per particle-iteration (experts excluded): %.0f up + %.0f down"
          " = %.0f, vs naive 3 x %d = %d (%.1f%%)" % (up / iters, down / iters, (up + down) / iters,
          size, 3 * size, 100 * (up + down) / iters / (3 * size)))
print("\nbest adapter (PEFT directory): %s" % os.path.join(out, "best"))
PY
kept_line
