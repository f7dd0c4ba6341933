#!/usr/bin/env bash
# A debug session with curl: create a session, run commands, fetch a result by id, close it.
#
#   KUBELINE_URL=http://127.0.0.1:8080 KUBELINE_API_KEY=... KUBELINE_CLUSTER=... examples/curl.sh
#
# `kubeline dev` (or scripts/dev) prints the URL, key and cluster id to use.
set -euo pipefail
URL="${KUBELINE_URL:-http://127.0.0.1:8080}"
KEY="${KUBELINE_API_KEY:?set KUBELINE_API_KEY (kubeline dev prints it)}"
CLUSTER="${KUBELINE_CLUSTER:?set KUBELINE_CLUSTER (kubeline dev prints it)}"
auth=(-H "Authorization: Bearer $KEY" -H "Content-Type: application/json")
json() { python3 -c "import sys,json; print(json.load(sys.stdin)$1)"; }

echo "== health"; curl -s "$URL/health"; echo

session=$(curl -s -X POST "$URL/debug/session" "${auth[@]}" -d "{\"cluster_id\": \"$CLUSTER\"}")
echo "== session"; echo "$session"
sid=$(json "['session_id']" <<<"$session")

run() { # run COMMAND_TYPE ARGS_JSON
  curl -s -X POST "$URL/debug/execute" "${auth[@]}" -H "X-Correlation-ID: curl-example" \
    -d "{\"cluster_id\": \"$CLUSTER\", \"session_id\": \"$sid\", \"command_type\": \"$1\", \"args\": $2}"
}

echo "== version"; run version '[]' | json "['output']"
echo "== get pods -A"; result=$(run get '["pods", "-A"]'); json "['output']" <<<"$result"
rid=$(json "['result_id']" <<<"$result")
echo "== the same result, fetched by id"; curl -s "$URL/debug/result/$rid" "${auth[@]}" | json "['status']"
echo "== a refused command"; run delete '["pod", "x"]'; echo
echo "== cluster status"; curl -s "$URL/clusters/$CLUSTER/status" "${auth[@]}"; echo
echo "== close"; curl -s -X DELETE "$URL/debug/session/$sid" "${auth[@]}"; echo
