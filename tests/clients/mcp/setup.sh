#!/usr/bin/env bash
# Installs the real MCP clients tests/it/clients.rs drives: Python `mcp` (requirements.txt) into a
# cached virtualenv, and the TypeScript `@modelcontextprotocol/client` (package-lock.json) into
# node_modules here. Idempotent; re-installs when a pin changes.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${KUBELINE_CACHE:-$HOME/.cache/kubeline}"
hash="$(sha256sum "$HERE/requirements.txt" | cut -c1-12)"
venv="$CACHE/venv-mcp-$hash"
if [[ ! -x "$venv/bin/pytest" ]]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
fi
echo "Python MCP client in $venv"
lock_hash="$(sha256sum "$HERE/package-lock.json" | cut -c1-12)"
if [[ "$(cat "$HERE/node_modules/.kubeline-lock" 2>/dev/null)" != "$lock_hash" ]]; then
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" > "$HERE/node_modules/.kubeline-lock"
fi
echo "TypeScript MCP client in $HERE/node_modules"
