#!/usr/bin/env bash
# Runs the demo's swarm on the images deploy/build-images.sh built, on loopback (host
# network): wxp-server in one container, one wxp-agent (a firm with two experts) in another,
# and every wxpctl step (certificates, the base model, the experts, the swarm, the checks)
# in one-shot containers of the server image. Passes when the agent has joined, the pool is
# built and the swarm has FINISHED its --iterations iterations (its max_iterations), as
# `wxpctl swarm status` reports; prints that status, the clients and a few of the server's
# /metrics series.
#
#   deploy/run-images.sh [--work DIR] [--iterations K] [--finetune-steps N] [--keep]
#
# --work: parent of the run directory (default /var/tmp/wxp-images; the run gets a fresh
# run.XXXXXX below it, removed on success unless --keep). Containers are named
# wxp-run-server and wxp-run-agent and removed on exit. Runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=/var/tmp/wxp-images ITERATIONS=3 STEPS=150 KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --work) WORK=$2; shift 2 ;;
    --iterations) ITERATIONS=$2; shift 2 ;;
    --finetune-steps) STEPS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
    *) echo "run-images: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "run-images: run as root (podman's storage)" >&2; exit 2; }

# Same three lines in deploy/build-images.sh (which says why).
NOFILE=$(ulimit -Hn); [ "$NOFILE" = unlimited ] && NOFILE=1048576
PODMAN=(podman --runtime "${WXP_OCI_RUNTIME:-runc}")
ULIMITS=(--ulimit "nofile=$NOFILE:$NOFILE" --ulimit nproc=4096:4096)

for image in localhost/wxp-server localhost/wxp-agent; do
  "${PODMAN[@]}" image exists "$image" || {
    echo "run-images: no image $image; run deploy/build-images.sh first" >&2
    exit 1
  }
done

step() {
  [ -z "${STEP_START:-}" ] || printf '(%d s)\n' $((SECONDS - STEP_START))
  STEP_START=$SECONDS
  printf '\n== %s\n' "$*"
}

mkdir -p "$WORK"
RUN=$(mktemp -d "$WORK/run.XXXXXX")
cleanup() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    for c in wxp-run-server wxp-run-agent; do
      echo "--- last lines of $c:" >&2
      "${PODMAN[@]}" logs --tail 15 "$c" >&2 2>&1 || true
    done
  fi
  "${PODMAN[@]}" rm -f -t 5 wxp-run-server wxp-run-agent >/dev/null 2>&1 || true
  if [ $rc -eq 0 ] && [ "$KEEP" -eq 0 ]; then rm -rf "$RUN"; else echo "run-images: files in $RUN" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"${PODMAN[@]}" rm -f -t 5 wxp-run-server wxp-run-agent >/dev/null 2>&1 || true

# wxpctl in a one-shot server-image container on the host network, with the run directory
# at /w. As root: it writes files that the server (uid 999) and agent (uid 998) then get.
wxpctl() {
  "${PODMAN[@]}" run --rm "${ULIMITS[@]}" --network=host --user 0 -v "$RUN:/w" \
    --entrypoint /usr/local/bin/wxpctl localhost/wxp-server "$@"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

step "1/5 certificates (wxpctl in the server image)"
wxpctl certs init-ca --dir /w/ca
wxpctl certs issue --ca /w/ca --role server --name server --dns localhost --ip 127.0.0.1 --out /w/server-certs
wxpctl certs issue --ca /w/ca --role admin --name ops --out /w/admin-certs
wxpctl certs issue --ca /w/ca --role agent --name firm-a --out /w/agent-certs
ADMIN=(--tls_cert /w/admin-certs/ops.crt --tls_key /w/admin-certs/ops.key --tls_ca /w/admin-certs/ca.crt)

step "2/5 the base model and two LoRA experts (wxpctl legal, in the server image)"
wxpctl legal pretrain --work-dir /w/legal
for shard in GPL MPL; do
  wxpctl legal finetune --work-dir /w/legal --shard "$shard" --out "/w/experts/$shard" --steps "$STEPS"
done

step "3/5 wxp-server in its container (host network, loopback)"
PORT=$(free_port) METRICS_PORT=$(free_port)
mkdir -p "$RUN/server-data"
chown -R 999:999 "$RUN/server-certs" "$RUN/server-data"
"${PODMAN[@]}" run -d --name wxp-run-server "${ULIMITS[@]}" --network=host \
  -v "$RUN/server-certs:/etc/wxp/certs:ro" -v "$RUN/server-data:/var/lib/wxp-server" \
  localhost/wxp-server --config=/etc/wxp/server.textproto --listen="127.0.0.1:$PORT" \
  --data_dir=/var/lib/wxp-server --tls_cert=/etc/wxp/certs/server.crt \
  --tls_key=/etc/wxp/certs/server.key --tls_ca=/etc/wxp/certs/ca.crt \
  --metrics_address="127.0.0.1:$METRICS_PORT"
for _ in $(seq 100); do
  "${PODMAN[@]}" logs wxp-run-server 2>&1 | grep -q 'event=server_started' && break
  sleep 0.2
done
"${PODMAN[@]}" logs wxp-run-server 2>&1 | grep 'event=server_started'
SERVER=(--server "localhost:$PORT" "${ADMIN[@]}")

step "4/5 the swarm, and wxp-agent in its own container"
cat > "$RUN/swarm.textproto" <<SPEC
name: "image-demo"
description: "the demo's licence-text swarm, server and agent in containers"
mode: SYNC
upload_policy: ON_DEMAND
min_experts: 2
round_deadline_seconds: 120
utility { name: "char_acc" weight: 1 min_value: 0 max_value: 1 }
hyperparameters { pool_size: 4 max_iterations: $ITERATIONS patience: 8 seed: 1 }
space: EXPERT_COEFFICIENTS decoder: LORA_PRODUCT
SPEC
wxpctl "${SERVER[@]}" swarm create --spec /w/swarm.textproto
cat > "$RUN/agent.textproto" <<CFG
server_address: "localhost:$PORT"
tls { cert: "/etc/wxp-agent/certs/firm-a.crt" key: "/etc/wxp-agent/certs/firm-a.key"
      ca: "/etc/wxp-agent/certs/ca.crt" }
swarm: "image-demo"
expert_paths: "/adapters/GPL"
expert_paths: "/adapters/MPL"
capacity: 4
work_dir: "/var/lib/wxp-agent"
builtin_legal_text { shard: "GPL" split: "dev" base_dir: "/legal" }
CFG
chown -R 998:998 "$RUN/agent-certs"
chmod -R a+rX "$RUN/legal" "$RUN/experts" "$RUN/agent.textproto"
"${PODMAN[@]}" run -d --name wxp-run-agent "${ULIMITS[@]}" --network=host \
  -v "$RUN/agent-certs:/etc/wxp-agent/certs:ro" -v "$RUN/agent.textproto:/etc/wxp-agent/agent.textproto:ro" \
  -v "$RUN/experts:/adapters:ro" -v "$RUN/legal:/legal:ro" localhost/wxp-agent

step "5/5 the swarm runs: wxpctl swarm status until it has FINISHED (at most 15 min)"
# The swarm stops at max_iterations = --iterations, and the agent leaves once it has: read
# whether the agent still runs before the status, so that an agent that left after the
# end is not mistaken for one that died.
deadline=$((SECONDS + 900))
state="" iteration=0
while [ $SECONDS -lt $deadline ]; do
  agent_running=$("${PODMAN[@]}" inspect -f '{{.State.Running}}' wxp-run-agent)
  status=$(wxpctl "${SERVER[@]}" swarm status image-demo --output json 2>/dev/null || true)
  read -r state iteration <<<"$(python3 -c 'import json,sys
try: s = json.loads(sys.stdin.read())
except ValueError: s = {}
print(s.get("state", "?"), s.get("iteration", 0))' <<<"$status")"
  echo "state=$state iteration=$iteration"
  [ "$state" = FINISHED ] && break
  if [ "$agent_running" != true ]; then
    echo "run-images: the agent container exited before the swarm finished" >&2
    exit 1
  fi
  sleep 2
done
wxpctl "${SERVER[@]}" swarm status image-demo
wxpctl "${SERVER[@]}" clients list
clients=$(wxpctl "${SERVER[@]}" clients list --output json)
grep -q '"firm-a"' <<<"$clients" || { echo "run-images: firm-a never reached the server" >&2; exit 1; }
if [ "$state" != FINISHED ] || [ "$iteration" -lt "$ITERATIONS" ]; then
  echo "run-images: the swarm did not finish its $ITERATIONS iterations in 15 minutes" >&2
  exit 1
fi
curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" | grep -E '^wxp_(swarm_iteration|swarm_global_best_utility|reports_accepted_total)' || true
printf '(%d s)\nrun-images: the swarm ran in containers: state %s, iteration %s\n' \
  $((SECONDS - STEP_START)) "$state" "$iteration"
