#!/usr/bin/env bash
# Drives a live broker's /mcp with the real MCP clients (Python, then TypeScript). The broker is
# named by KUBELINE_TEST_* (tests/it/clients.rs sets them); run setup.sh first.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${KUBELINE_CACHE:-$HOME/.cache/kubeline}"
venv="$CACHE/venv-mcp-$(sha256sum "$HERE/requirements.txt" | cut -c1-12)"
if [[ ! -x "$venv/bin/pytest" || ! -d "$HERE/node_modules/@modelcontextprotocol/client" ]]; then
  echo "the MCP clients are not installed: run $HERE/setup.sh" >&2
  exit 2
fi
cd "$HERE"
"$venv/bin/pytest" -q -p no:cacheprovider test_mcp.py
node --test mcp.test.mjs
