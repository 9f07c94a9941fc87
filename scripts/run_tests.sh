#!/usr/bin/env bash
# Runs the suite once on SQLite and once on PostgreSQL. Fails on any failure, and also when
# pytest collects nothing (exit 5), so an empty suite can never look green.
#
# The two passes run at the same time. The suite mostly waits (relays, the simulated Lightning
# network, nodes started as processes, their timers): one pass kept about 0.4 of a core busy on
# average (a SQLite pass, 2026-12-07: 447 s of CPU in 1,140 s), and one after the other they took
# ~36 min on the 2-core CI machine (SQLite ~20, PostgreSQL ~15). Each pass has its own var
# directory (the SQLite test database, the bridge's wake socket, anything a test writes under
# MOSTRO_VAR_DIR), its own database and, on PostgreSQL, Redis. The SQLite pass prints as it runs;
# the PostgreSQL pass's output is printed, whole, when both have ended.
# MOSTRO_TEST_PASSES=serial runs them one after the other (a debugging session, a loaded machine).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PG_URL=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/mostro}
REDIS=${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}

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

sqlite_pass() {
  run_pass sqlite env -u DATABASE_URL -u REDIS_URL MOSTRO_VAR_DIR="$PWD/var/test-sqlite" $PY -m pytest -q "$@"
}

postgresql_pass() {
  run_pass postgresql env DATABASE_URL="$PG_URL" REDIS_URL="$REDIS" MOSTRO_VAR_DIR="$PWD/var/test-postgresql" \
    $PY -m pytest -q "$@"
}

# The static checks first (about 20 s together): a formatting slip, a lint finding, a broken
# layer (.importlinter) or a type error fails the run before the long passes start.
# .pre-commit-config.yaml runs the same four.
bash scripts/static_checks.sh || exit 1

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if [ "${CI:-}" = "true" ]; then
    echo "ERROR: PostgreSQL is not reachable on 127.0.0.1:5432 (required in CI)" >&2
    exit 1
  fi
  echo "WARNING: PostgreSQL not reachable on 127.0.0.1:5432; skipped the PostgreSQL pass" >&2
  sqlite_pass "$@"
  exit $?
fi

if [ "${MOSTRO_TEST_PASSES:-parallel}" = "serial" ]; then
  sqlite_pass "$@" || exit 1
  postgresql_pass "$@"
  exit $?
fi

pg_log=$(mktemp "${TMPDIR:-/tmp}/mostro-postgresql-pass.XXXXXX")
# Its own process group, so an interrupted run stops it and every process it started.
set -m
postgresql_pass "$@" >"$pg_log" 2>&1 &
pg_pid=$!
set +m
trap 'kill -TERM -- "-$pg_pid" 2>/dev/null; rm -f "$pg_log"; exit 130' INT TERM

sqlite_pass "$@"
sqlite_rc=$?
if [ "$sqlite_rc" -ne 0 ]; then
  echo "=== the SQLite pass failed (exit $sqlite_rc); waiting for the PostgreSQL pass ==="
fi
wait "$pg_pid"
pg_rc=$?
cat "$pg_log"
rm -f "$pg_log"
echo "=== passes: sqlite exit $sqlite_rc, postgresql exit $pg_rc ==="
[ "$sqlite_rc" -eq 0 ] && [ "$pg_rc" -eq 0 ]
