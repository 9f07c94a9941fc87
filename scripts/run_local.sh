#!/usr/bin/env bash
# One command for a complete local node on the embedded default.
# Later stages (relay, simulated Lightning, bridge, jobs) are started by `manage.py mostrod`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-mostro_site.settings.local}
mkdir -p var
if [ ! -f .env ] || ! grep -q '^MOSTRO_NSEC_PRIVKEY=.' .env; then
  echo "Generating a Mostro identity into .env"
  $PY manage.py mostro_keys --generate --write-env .env
fi
exec $PY manage.py mostrod --local
