#!/usr/bin/env bash
# The wire contract (proto/wxp.proto, proto/swarm_spec.proto) checked by an independent
# client: Python stubs generated from the .proto files at test time (protoc and Debian's
# grpc_python_plugin), Debian's python3-grpcio, no WXP code, against the real wxp-server:
# contract_test.py (every RPC, WEIGHTS swarms), then coefficient_contract_test.py (an
# EXPERT_COEFFICIENTS swarm), then token_contract_test.py (TOKEN_MIXTURE swarms), then
# audit_contract_test.py (audited swarms, SPEC 12: the auditor role, quarantine).
# /usr/bin/python3 on purpose: python3-grpcio installs for the system interpreter, and
# another python3 may come first on PATH.
set -euo pipefail
root="${TEST_SRCDIR}/${TEST_WORKSPACE:-wxp}"
for need in /usr/bin/python3 /usr/bin/grpc_python_plugin protoc; do
  if ! command -v "$need" > /dev/null; then
    echo "contract_test: $need is missing (deploy/install-deps.sh installs it)" >&2
    exit 1
  fi
done
if ! /usr/bin/python3 -c "import grpc, google.protobuf" 2> /dev/null; then
  echo "contract_test: python3-grpcio / python3-protobuf are missing (deploy/install-deps.sh)" >&2
  exit 1
fi
export WXP_SERVER="${root}/server/app/wxp-server"
export WXP_PROTO_ROOT="${root}"
export WXP_CONTRACT_TMP="${TEST_TMPDIR}"
/usr/bin/python3 "${root}/tests/contract/contract_test.py"
/usr/bin/python3 "${root}/tests/contract/coefficient_contract_test.py"
/usr/bin/python3 "${root}/tests/contract/token_contract_test.py"
/usr/bin/python3 "${root}/tests/contract/audit_contract_test.py"
