# shellcheck shell=bash
# Sourced by setup.sh and test.sh: where the SDK's test virtualenv lives.
# The directory is keyed on a hash of pyproject.toml, requirements-test.txt, the Python version and
# this checkout's path (the SDK is installed editable from it), so a change to any of them makes
# setup.sh build a fresh one (old ones are removed).
SDK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KUBELINE_PYSDK_CACHE="${KUBELINE_PYSDK_CACHE:-$HOME/.cache/kubeline}"

pysdk_python() { # the interpreter: $KUBELINE_PYTHON, else python3 (must be >= 3.10)
  local py="${KUBELINE_PYTHON:-python3}"
  if ! command -v "$py" >/dev/null 2>&1; then
    echo "sdk/python: $py not found; install Python >= 3.10 (or set KUBELINE_PYTHON)" >&2
    return 1
  fi
  if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
    echo "sdk/python: $py is $("$py" -V 2>&1); the SDK needs Python >= 3.10 (set KUBELINE_PYTHON)" >&2
    return 1
  fi
  command -v "$py"
}

pysdk_venv_dir() { # pysdk_venv_dir PYTHON
  local key
  key="$( { echo "$SDK_DIR"; cat "$SDK_DIR/pyproject.toml" "$SDK_DIR/requirements-test.txt"; "$1" -VV; } | sha256sum | cut -c1-16)"
  echo "$KUBELINE_PYSDK_CACHE/pysdk-venv-$key"
}
