#!/usr/bin/env bash
# One command for a complete local node on the embedded default (called by `make run`):
# SQLite in var/, a local relay on 127.0.0.1:7000, the simulated Lightning network
# (nodes mostro, alice, bob), a generated Mostro key in .env, and an operator login printed
# once. `manage.py mostrod --local` starts and supervises the relay and the simulated
# network, then the node itself; Ctrl-C stops everything in order.
#
# Extra arguments go to mostrod, e.g. `bash scripts/run_local.sh --port 8080 --relay-port 7100`.
# In a second terminal, `.venv/bin/python manage.py demo_trade` runs a full trade against it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-mostro_site.settings.local}
mkdir -p var
if [ -z "${MOSTRO_NSEC_PRIVKEY:-}" ] && { [ ! -f .env ] || ! grep -q '^MOSTRO_NSEC_PRIVKEY=.' .env; }; then
  echo "Generating a Mostro identity into .env"
  $PY manage.py mostro_keys --generate --write-env .env
fi
echo "Starting the local node. In another terminal: $PY manage.py demo_trade"
exec $PY manage.py mostrod --local "$@"
