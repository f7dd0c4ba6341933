#!/usr/bin/env bash
# Installs the TypeScript SDK's development dependencies (typescript, openapi-typescript,
# @types/node: exact versions from the committed package-lock.json) into sdk/typescript/node_modules.
# Idempotent: does nothing when node_modules already matches the lock file. The SDK itself has
# no runtime dependencies.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "sdk/typescript/setup.sh: Node.js 20 or later (with npm) is needed and was not found on PATH" >&2
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "sdk/typescript/setup.sh: Node.js $(node --version) is too old; the SDK needs Node.js 20 or later" >&2
  exit 1
fi

stamp=node_modules/.kubeline-setup-stamp
want="$(sha256sum package-lock.json | cut -d' ' -f1) node-$major"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

# npm's download cache lives under $HOME/.cache/kubeline so that reinstalls are offline-fast.
export npm_config_cache="${npm_config_cache:-$HOME/.cache/kubeline/npm}"
if ! out=$(npm ci --no-audit --no-fund --loglevel=error --prefer-offline 2>&1); then
  echo "$out" >&2
  echo "sdk/typescript/setup.sh: npm ci failed (see above)" >&2
  exit 1
fi
echo "$want" > "$stamp"
echo "sdk/typescript: dependencies installed ($(node -p 'Object.keys(require("./package.json").devDependencies).join(", ")'))"
