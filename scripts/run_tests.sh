#!/usr/bin/env bash
# Runs the suite once on SQLite and once on PostgreSQL. Fails on any failure, and also when
# pytest collects nothing (exit 5), so an empty suite can never look green.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PG_URL=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/mostro}

run_pass() {
  local label=$1
  shift
  echo "=== test pass: $label ==="
  "$@"
  local rc=$?
  if [ "$rc" -eq 5 ]; then
    echo "ERROR: pytest collected no tests on $label" >&2
    return 1
  fi
  return "$rc"
}

# The static checks first (about 20 s together): a formatting slip, a lint finding, a broken
# layer (.importlinter) or a type error fails the run before the long passes start.
# .pre-commit-config.yaml runs the same four.
bash scripts/static_checks.sh || exit 1

run_pass sqlite env -u DATABASE_URL -u REDIS_URL $PY -m pytest -q "$@" || exit 1

if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  run_pass postgresql env DATABASE_URL="$PG_URL" REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}" \
    $PY -m pytest -q "$@" || exit 1
elif [ "${CI:-}" = "true" ]; then
  echo "ERROR: PostgreSQL is not reachable on 127.0.0.1:5432 (required in CI)" >&2
  exit 1
else
  echo "WARNING: PostgreSQL not reachable on 127.0.0.1:5432; skipped the PostgreSQL pass" >&2
fi
