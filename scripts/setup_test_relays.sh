#!/usr/bin/env bash
# Install the second, independent test relay (PyPI nostr-relay 1.14: Python + SQLite) into its
# own virtualenv, because its dependency pins must not leak into the project's .venv.
# Idempotent: a finished install (marker file) is left alone, so a rerun costs well under 1 s;
# a fresh install takes ~25 s. The test fixtures (tests/relays/nostr_relay_py.py) run this
# script themselves when the relay venv is missing, unless MOSTRO_NO_RELAY_SETUP is set.
#
# Usage: scripts/setup_test_relays.sh [--force]
# Env:   MOSTRO_RELAY_VENV (default: <repo>/.venv-relay), PYTHON (default: python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RELAY_VENV="${MOSTRO_RELAY_VENV:-$ROOT/.venv-relay}"
PYTHON="${PYTHON:-python3}"
SPEC="nostr-relay==1.14.*"
MARKER="$RELAY_VENV/.mostro-relay-installed"

# Two test runs starting at once must not install over each other.
exec 9>"${TMPDIR:-/tmp}/mostro-setup-test-relays.lock"
flock 9

if [[ "${1:-}" == "--force" ]]; then
    rm -rf "$RELAY_VENV"
elif [[ -f "$MARKER" && -x "$RELAY_VENV/bin/nostr-relay" ]]; then
    echo "nostr-relay already installed in $RELAY_VENV ($(cat "$MARKER"))"
    exit 0
fi

# A half-finished earlier attempt is thrown away rather than patched.
rm -rf "$RELAY_VENV"
"$PYTHON" -m venv "$RELAY_VENV"
# This machine's pip config lists local mirrors that may be absent; drop those warnings only.
"$RELAY_VENV/bin/pip" install --quiet --disable-pip-version-check "$SPEC" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
"$RELAY_VENV/bin/python" -c "import nostr_relay.web, nostr_relay.cli"
VERSION="$("$RELAY_VENV/bin/python" -c "import importlib.metadata as m; print(m.version('nostr-relay'))")"
echo "nostr-relay $VERSION" > "$MARKER"
echo "nostr-relay $VERSION installed in $RELAY_VENV"
