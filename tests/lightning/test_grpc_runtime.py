"""gRPC's runtime options are set before gRPC is first imported (it reads them only then)."""

import os
import subprocess
import sys
from pathlib import Path

from lightning import GRPC_EXPERIMENTS_DEFAULT

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import sys, os, django
django.setup()
import mostro_site.runtime.node, mostro_site.runtime.cluster, orders.escrow_watcher  # the node's modules
import lightning.lnd
order = list(sys.modules)
print(os.environ["GRPC_EXPERIMENTS"], order.index("lightning") < order.index("grpc"))
"""


def _probe(**env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    environ.update(DJANGO_SETTINGS_MODULE="mostro_site.settings.test", **env)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_default_is_set_before_grpc_is_imported():
    assert GRPC_EXPERIMENTS_DEFAULT == "-event_engine_client"
    assert _probe() == "-event_engine_client True"


def test_an_operators_own_setting_wins():
    assert _probe(GRPC_EXPERIMENTS="event_engine_client") == "event_engine_client True"
