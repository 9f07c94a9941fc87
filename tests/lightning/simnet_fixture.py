"""Start the simulated Lightning network for tests (importable by any test package).

    from tests.lightning.simnet_fixture import simnet  # noqa: F401  (session fixture)

    def test_x(simnet):
        mostro = simnet.client("mostro")          # a real LndClient over TLS + macaroon
        simnet.control.mine(3)                     # fault injection, blocks, balances
        with override_settings(**simnet.lnd_settings("mostro")): ...

The process is `python manage.py simnet` with the test settings; it needs no database.
Blocks are mined only on demand (`--block-interval 0`), so heights are deterministic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lightning.lnd import LndClient
from lightning.simnet.control import SimnetControl

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_NODES = ("mostro", "alice", "bob")
READY_TIMEOUT_SECONDS = 30.0


@dataclass
class SimnetHandle:
    directory: Path
    manifest: dict
    control: SimnetControl
    process: subprocess.Popen
    _clients: list[LndClient] = field(default_factory=list)

    def node(self, name: str) -> dict:
        return self.manifest[name]

    def lnd_settings(self, name: str) -> dict:
        """Settings that point the default `LndClient()` at `name` (for override_settings)."""
        node = self.manifest[name]
        return {
            "LIGHTNING_BACKEND": "lightning.lnd.LndClient",
            "LND_GRPC_HOST": node["grpc"],
            "LND_CERT_FILE": node["tls_cert"],
            "LND_MACAROON_FILE": node["macaroon"],
        }

    def client(self, name: str, **overrides: object) -> LndClient:
        node = self.manifest[name]
        kwargs = {"host": node["grpc"], "cert_file": node["tls_cert"], "macaroon_file": node["macaroon"]}
        kwargs.update(overrides)
        client = LndClient(**kwargs)
        self._clients.append(client)
        return client

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_simnet(directory: Path, nodes: tuple[str, ...] = DEFAULT_NODES, *extra_args: str) -> SimnetHandle:
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / "simnet.log"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mostro_site.settings.test"}
    command = [
        sys.executable,
        str(PROJECT_ROOT / "manage.py"),
        "simnet",
        "--dir",
        str(directory),
        "--nodes",
        ",".join(nodes),
        "--block-interval",
        "0",
        *extra_args,
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while "READY" not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"simnet did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.05)
    manifest = json.loads((directory / "simnet.json").read_text())
    return SimnetHandle(directory, manifest, SimnetControl(manifest["_control"]["url"]), process)


@pytest.fixture(scope="session")
def simnet(tmp_path_factory: pytest.TempPathFactory):
    handle = start_simnet(tmp_path_factory.mktemp("simnet"))
    yield handle
    handle.stop()
