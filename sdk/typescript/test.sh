#!/usr/bin/env bash
# Tests of the TypeScript SDK, from any directory:
#   1. the generated types (src/openapi.ts) are fresh against broker/openapi.json;
#   2. build dist/esm and dist/cjs with tsc (which type-checks the SDK);
#   3. compile test/types/consumer.{mts,cts} against the built package (its "exports" types);
#   4. node --test: unit tests (local fake server) and the tests against a live broker + agent,
#      found through KUBELINE_TEST_ENDPOINT, KUBELINE_TEST_API_KEY, KUBELINE_TEST_CLUSTER,
#      KUBELINE_TEST_OTHER_KEY and KUBELINE_TEST_DEAD_ENDPOINT.
# Needs setup.sh to have run once. Exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if ! command -v node >/dev/null 2>&1; then
  echo "sdk/typescript/test.sh: Node.js 20 or later is needed and was not found on PATH" >&2
  exit 1
fi
want="$(sha256sum package-lock.json | cut -d' ' -f1) node-$(node -p 'process.versions.node.split(".")[0]')"
if [ ! -d node_modules/typescript ] || [ "$(cat node_modules/.kubeline-setup-stamp 2>/dev/null)" != "$want" ]; then
  echo "sdk/typescript/test.sh: the development dependencies are missing or older than package-lock.json; run $here/setup.sh first" >&2
  exit 1
fi

missing=()
for name in KUBELINE_TEST_ENDPOINT KUBELINE_TEST_API_KEY KUBELINE_TEST_CLUSTER KUBELINE_TEST_OTHER_KEY KUBELINE_TEST_DEAD_ENDPOINT; do
  [ -n "${!name:-}" ] || missing+=("$name")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "sdk/typescript/test.sh: ${missing[*]} not set: the tests need a live kubeline broker + agent (see sdk/typescript/README.md, \"Tests\")" >&2
  exit 2
fi

echo "== sdk/typescript: generated types are fresh"
node scripts/gen-types.mjs --check
echo "== sdk/typescript: build (tsc: ESM + CommonJS)"
node scripts/build.mjs
echo "== sdk/typescript: the published types compile for ESM and CommonJS consumers"
node node_modules/typescript/bin/tsc -p test/types/tsconfig.json
echo "== sdk/typescript: node --test"
node --test test/*.test.mjs test/*.test.cjs
