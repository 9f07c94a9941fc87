#!/usr/bin/env bash
# Browser-test prerequisites, idempotent: Debian's chromium and npm playwright-core
# (never `npx playwright install`: it downloads a browser, which fails here).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  else
    echo "chromium is missing and cannot be installed here (needs root and apt-get)" >&2
    exit 1
  fi
fi

if [ ! -d tests/browser/node_modules/playwright-core ]; then
  cd tests/browser
  if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund
  else
    npm install --no-audit --no-fund
  fi
fi
