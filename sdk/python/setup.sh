#!/usr/bin/env bash
# Installs the Python SDK's test environment: a virtualenv under $HOME/.cache/kubeline/ with the
# exact versions of requirements-test.txt and the SDK installed editable. Idempotent and cached
# (keyed on a hash of pyproject.toml + requirements-test.txt + the Python version); quiet unless
# something fails. Then run sdk/python/test.sh.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/_venv.sh"

PY="$(pysdk_python)"
VENV="$(pysdk_venv_dir "$PY")"
if [[ -f "$VENV/.complete" ]]; then
  echo "sdk/python: test environment ready in $VENV"
  exit 0
fi

mkdir -p "$KUBELINE_PYSDK_CACHE"
# One installer at a time per environment (two checkouts may run setup.sh together).
exec 9>"$VENV.lock"
flock 9
if [[ -f "$VENV/.complete" ]]; then
  echo "sdk/python: test environment ready in $VENV"
  exit 0
fi
rm -rf "$VENV"
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
fail() {
  cat "$LOG" >&2
  echo "sdk/python: setup failed: $1 (the output above says why); run sdk/python/setup.sh again once fixed" >&2
  rm -rf "$VENV"
  exit 1
}
"$PY" -m venv "$VENV" >"$LOG" 2>&1 || fail "could not create a virtualenv with $PY (on Debian: apt-get install python3-venv)"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input -q)
"${PIP[@]}" install --require-virtualenv -r "$SDK_DIR/requirements-test.txt" >"$LOG" 2>&1 \
  || fail "pip could not install requirements-test.txt"
"${PIP[@]}" install --require-virtualenv --no-deps --no-build-isolation -e "$SDK_DIR" >"$LOG" 2>&1 \
  || fail "pip could not install the SDK (editable) from $SDK_DIR"
"$VENV/bin/python" -c 'import kubeline, httpx2, pydantic, pytest, anyio' >"$LOG" 2>&1 \
  || fail "the installed environment does not import"
touch "$VENV/.complete"
echo "sdk/python: test environment installed in $VENV ($("$VENV/bin/python" -V))"
