#!/usr/bin/env bash
# The static checks `make test` runs before the test passes, and .pre-commit-config.yaml runs on
# commit: formatting, lint, the import contracts (.importlinter) and mypy (pyproject.toml).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
status=0
step() {
  echo "=== $1 ==="
  shift
  "$@" || status=1
}
step "ruff format --check" $BIN/ruff format --check --quiet .
step "ruff check" $BIN/ruff check --quiet .
step "import contracts" $BIN/lint-imports --no-cache --no-logo
step "mypy" $BIN/mypy
exit $status
