#!/usr/bin/env bash
# End-to-end checks of the wxpctl binary as a user runs it: exit codes, stdout/stderr split,
# the real PEFT adapter from shared/testdata, and a merge -> inspect -> simulate chain.
set -uo pipefail

source "$TEST_SRCDIR/$TEST_WORKSPACE/tests/testing/check.sh"
WXPCTL="$ROOT/client/wxpctl"
readme=$(readlink -f "$ROOT/README.md")
TESTDATA="${WXP_TESTDATA:-$(dirname "$readme")/../shared/testdata}"

# 1. The real adapter written by PEFT.
PEFT="$TESTDATA/peft/gpt2_tigrinya_lora_f32"
if [ -d "$PEFT" ]; then
  out=$("$WXPCTL" adapter inspect "$PEFT")
  check "inspect exits 0 on the real adapter" [ $? -eq 0 ]
  check "inspect shows 72 tensors" grep -q "^tensors  *72$" <<<"$out"
  check "inspect shows the blob id (sha256 of the file)" \
    grep -q "130792c9a7496b3758e7a1e049ca51698a5776e59e1fc2911ff6c9d8ebd3fa05" <<<"$out"
  json=$("$WXPCTL" adapter inspect --json "$PEFT")
  check "inspect --json parses and counts parameters" \
    python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["parameter_count"]==811008 and j["peft"]["r"]==8, j' <<<"$json"
else
  echo "skip real-adapter checks: $PEFT not found"
fi

# 2. Malformed input: one line on stderr, exit 1, nothing on stdout.
printf 'definitely not safetensors' >"$TMP/bad.safetensors"
"$WXPCTL" adapter inspect "$TMP/bad.safetensors" >"$TMP/out" 2>"$TMP/err"
code=$?
check "malformed file exits 1" [ $code -eq 1 ]
check "malformed file: nothing on stdout" [ ! -s "$TMP/out" ]
check "malformed file: one line on stderr" [ "$(wc -l <"$TMP/err")" -eq 1 ]
"$WXPCTL" bogus >/dev/null 2>&1
check "unknown command exits 2" [ $? -eq 2 ]
# A spec whose name is not UTF-8 is refused before anything is sent (protobuf would refuse to
# serialise it, and the server's answer would say nothing useful). No server is needed.
printf 'name: "firm\377"\n' >"$TMP/bad_utf8.textproto"
"$WXPCTL" --server 127.0.0.1:1 --plaintext --identity ops swarm create \
  --spec "$TMP/bad_utf8.textproto" >"$TMP/out" 2>"$TMP/err"
code=$?
check "non-UTF-8 spec exits 1" [ $code -eq 1 ]
check "non-UTF-8 spec: one line naming the field" \
  bash -c "[ \$(wc -l <'$TMP/err') -eq 1 ] && grep -q 'field name is not valid UTF-8' '$TMP/err'"

# LibTorch is loaded only by wxpctl-tensors (merge, simulate, legal), never by wxpctl itself:
# every other command starts in milliseconds instead of a second of CPU.
check "wxpctl does not link LibTorch" bash -c "! ldd '$(readlink -f "$WXPCTL")' | grep -q libtorch"
# Without wxpctl-tensors beside it or on PATH, a LibTorch command says what is missing.
mkdir -p "$TMP/alone"
cp "$(readlink -f "$WXPCTL")" "$TMP/alone/wxpctl"
PATH=/nonexistent "$TMP/alone/wxpctl" merge --help >"$TMP/out" 2>"$TMP/err"
code=$?
check "merge without wxpctl-tensors exits 1" [ $code -eq 1 ]
check "merge without wxpctl-tensors names it on one line" \
  bash -c "[ \$(wc -l <'$TMP/err') -eq 1 ] && grep -q 'wxpctl-tensors' '$TMP/err'"
PATH=/nonexistent "$TMP/alone/wxpctl" certs init-ca --dir "$TMP/alone/ca" >/dev/null 2>&1
check "other commands run without wxpctl-tensors" [ -s "$TMP/alone/ca/ca.crt" ]

# 3. merge -> inspect -> simulate on adapters derived from the real one.
if [ -d "$PEFT" ]; then
  check "linear merge of the adapter with itself" \
    "$WXPCTL" merge --method linear --out "$TMP/m1" "$PEFT" "$PEFT"
  cmp -s "$TMP/m1/adapter_model.safetensors" "$PEFT/adapter_model.safetensors"
  check "merging an adapter with itself reproduces it byte for byte" [ $? -eq 0 ]
  check "dare merge" "$WXPCTL" merge --method dare --density 0.7 --seed 3 --out "$TMP/m2" "$PEFT" "$PEFT"
  check "simulate over two real-schema adapters writes a PEFT dir" \
    "$WXPCTL" simulate --quiet --max-iterations 3 --out "$TMP/best" "$PEFT" "$TMP/m2"
  check "the simulated best is a valid adapter with the same schema" \
    bash -c "[ \"\$('$WXPCTL' adapter inspect --json '$TMP/best' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"schema_fingerprint\"])')\" = \"\$('$WXPCTL' adapter inspect --json '$PEFT' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"schema_fingerprint\"])')\" ]"
fi

finish
