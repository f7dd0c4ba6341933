#!/usr/bin/env bash
# A fleet on one machine: two broker replicas sharing Redis, and one agent per cluster, each
# dialling a different replica. Any replica serves any cluster.
#
#   examples/fleet.sh KUBECONFIG_A KUBECONFIG_B     (defaults: the test bed's reader kubeconfig twice)
set -euo pipefail
BIN="${CARGO_TARGET_DIR:-$HOME/.cache/kubeline/target}/debug/kubeline"
[[ -x "$BIN" ]] || { echo "build first: cargo build --bin kubeline" >&2; exit 1; }
A="${1:-${TESTBED_READER_KUBECONFIG:?pass two kubeconfigs or eval \"\$(scripts/testbed env)\"}}"
B="${2:-$A}"
KEY=fleet-admin-key
redis-server --port 6390 --save '' --appendonly no >/dev/null & pids=($!)
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
sleep 0.5
common=(--redis-url redis://127.0.0.1:6390/ --api-key "admin=$KEY" --agent-token east=east-token --agent-token west=west-token)
"$BIN" broker --listen 127.0.0.1:8081 "${common[@]}" & pids+=($!)
"$BIN" broker --listen 127.0.0.1:8082 "${common[@]}" & pids+=($!)
sleep 1
"$BIN" agent --broker-url http://127.0.0.1:8081 --cluster-id east --token east-token --kubeconfig "$A" & pids+=($!)
"$BIN" agent --broker-url http://127.0.0.1:8082 --cluster-id west --token west-token --kubeconfig "$B" & pids+=($!)
sleep 2
echo "== clusters, as replica 1 sees them"
curl -s http://127.0.0.1:8081/clusters -H "Authorization: Bearer $KEY"; echo
for cluster in east west; do
  sid=$(curl -s -X POST http://127.0.0.1:8081/debug/session -H "Authorization: Bearer $KEY" \
        -H 'Content-Type: application/json' -d "{\"cluster_id\":\"$cluster\"}" | python3 -c 'import sys,json;print(json.load(sys.stdin)["session_id"])')
  echo "== $cluster: get nodes, sent to replica 1"
  curl -s -X POST http://127.0.0.1:8081/debug/execute -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d "{\"cluster_id\":\"$cluster\",\"session_id\":\"$sid\",\"command_type\":\"get\",\"args\":[\"nodes\"]}" \
    | python3 -c 'import sys,json;print(json.load(sys.stdin)["output"])'
done
