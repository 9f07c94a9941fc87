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
import signal
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
    nodes: tuple[str, ...] = DEFAULT_NODES
    args: tuple[str, ...] = ()
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

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """The simnet process dies (SIGKILL: at once; SIGTERM: it saves its state first)."""
        self.process.send_signal(sig)
        return self.process.wait(timeout=30)

    def start_again(self) -> None:
        """A new simnet process on the same directory: it resumes the saved state, on the same
        ports with the same certificates and macaroons, so every client (and `control`) reconnects."""
        again = start_simnet(self.directory, self.nodes, *self.args)
        if again.manifest != self.manifest:
            again.stop()
            raise RuntimeError(f"simnet came back different: {again.manifest} != {self.manifest}")
        self.process = again.process

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
    start_offset = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:  # appended: a restart keeps the earlier runs' lines
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while "READY" not in _log_since(log_path, start_offset):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"simnet did not start:\n{_log_since(log_path, start_offset)}")
        time.sleep(0.05)
    manifest = json.loads((directory / "simnet.json").read_text())
    return SimnetHandle(
        directory, manifest, SimnetControl(manifest["_control"]["url"]), process, nodes=nodes, args=extra_args
    )


def _log_since(path: Path, offset: int) -> str:
    with path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


@pytest.fixture(scope="session")
def simnet(tmp_path_factory: pytest.TempPathFactory):
    handle = start_simnet(tmp_path_factory.mktemp("simnet"))
    yield handle
    handle.stop()
