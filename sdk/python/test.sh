#!/usr/bin/env bash
# Runs the Python SDK's tests (sdk/python/tests) with pytest -q in the environment setup.sh made.
# The live tests find the broker through KUBELINE_TEST_ENDPOINT, KUBELINE_TEST_API_KEY,
# KUBELINE_TEST_CLUSTER, KUBELINE_TEST_OTHER_KEY and KUBELINE_TEST_DEAD_ENDPOINT.
# Extra arguments go to pytest (e.g. -k window). Works from any directory.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/_venv.sh"

PY="$(pysdk_python)"
VENV="$(pysdk_venv_dir "$PY")"
if [[ ! -f "$VENV/.complete" ]]; then
  echo "sdk/python: no test environment for the current pyproject.toml / requirements-test.txt" >&2
  echo "sdk/python: run $SDK_DIR/setup.sh first" >&2
  exit 2
fi
cd "$SDK_DIR"
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@" tests
