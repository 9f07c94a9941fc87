"""`manage.py mostrod --local` as `make run` starts it: a real node in a subprocess.

One node for the module (temp var dir, free ports): it serves the admin with its static
files, a demo trade goes through it end to end, and SIGTERM stops everything cleanly.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.relays.net import REPO_ROOT, free_port, port_accepts

BANNER = "Mostro node is running"
START_TIMEOUT_S = 90


def _env(tmp: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("MOSTRO_", "LND_", "DJANGO_"))}
    for name in ("DATABASE_URL", "REDIS_URL", "LIGHTNING_BACKEND"):
        keep.pop(name, None)
    return {
        **keep,
        "DJANGO_SETTINGS_MODULE": "mostro_site.settings.local",
        "MOSTRO_VAR_DIR": str(tmp / "var"),
        "MOSTRO_ENV_FILE": str(tmp / ".env"),  # a key is generated here, never in the project's .env
        "PYTHONUNBUFFERED": "1",
    }


class LocalNode:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = _env(tmp)
        self.port, self.relay_port = free_port(), free_port()
        self.log = tmp / "node.out"
        command = [
            sys.executable, "manage.py", "mostrod", "--local", "--port", str(self.port),
            "--relay-port", str(self.relay_port), "--grace", "5",
        ]  # fmt: skip
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_banner(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while BANNER not in self.output:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"mostrod --local did not start:\n{self.output[-4000:]}")
            time.sleep(0.1)

    def get(self, path: str) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
            return response.status

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture(scope="module")
def local_node(tmp_path_factory):
    node = LocalNode(tmp_path_factory.mktemp("local-node"))
    node.wait_banner()
    yield node
    node.stop()


def test_banner_names_key_relay_lightning_and_admin(local_node):
    out = local_node.output
    assert "Operator login (shown only this once, keep it):" in out
    assert out.count("password:") == 1
    banner = out[out.index(BANNER) :]
    assert "npub:       npub1" in banner
    assert f"relays:     ws://127.0.0.1:{local_node.relay_port}" in banner
    assert "lightning:  mostro on regtest" in banner
    assert "loop:       uvloop\n" in banner  # manage.py chose it before daphne made the loop
    assert f"admin:      http://127.0.0.1:{local_node.port}/admin/" in banner
    env_file = local_node.tmp / ".env"
    assert [line.split("=")[0] for line in env_file.read_text().splitlines()] == [
        "MOSTRO_NSEC_PRIVKEY",
        "DJANGO_SECRET_KEY",
    ]
    assert "MOSTRO_NSEC_PRIVKEY=nsec1" in env_file.read_text()
    assert os.stat(env_file).st_mode & 0o777 == 0o600


def test_serves_admin_and_static_files(local_node):
    assert local_node.get("/admin/login/") == 200
    assert local_node.get("/static/admin/css/base.css") == 200
    assert local_node.get("/static/operator/operator.css") == 200
    # DEBUG is off: an unknown page is a plain 404, not Django's debug page with the URLconf.
    with pytest.raises(urllib.error.HTTPError) as missing:
        local_node.get("/no-such-page/")
    assert missing.value.code == 404
    assert "URLconf" not in missing.value.read().decode()


def test_demo_trade_runs_end_to_end(local_node):
    result = subprocess.run(
        [sys.executable, "manage.py", "demo_trade", "--pause", "0", "--timeout", "30"],
        cwd=REPO_ROOT,
        env=local_node.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr + local_node.output[-3000:]
    assert "7. Alice and Bob rated each other 5/5.  [order status: success]" in result.stdout
    order_id = result.stdout.strip().splitlines()[-1].split()[2].rstrip(":")
    with sqlite3.connect(local_node.tmp / "var" / "mostro.sqlite3") as db:
        status, amount, invoice = db.execute(
            "SELECT status, amount_sats, buyer_invoice FROM orders_order WHERE id = ?", (order_id.replace("-", ""),)
        ).fetchone()
    assert (status, amount) == ("success", 10_000)
    assert invoice.startswith("lnbcrt")
    state = json.loads((local_node.tmp / "var" / "local.json").read_text())
    assert state["relay"] == f"ws://127.0.0.1:{local_node.relay_port}"


def test_busy_relay_port_refuses_with_the_reason(local_node, tmp_path):
    env = _env(tmp_path)
    command = [sys.executable, "manage.py", "mostrod", "--local", "--port", str(free_port())]
    command += ["--relay-port", str(local_node.relay_port)]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=90)
    assert result.returncode == 1
    assert "Cannot start the local node: relay exited with code 1" in result.stdout
    assert "Address already in use" in result.stdout
    assert "Traceback" not in result.stderr


def test_sigterm_stops_everything_cleanly(local_node):
    started = time.monotonic()
    local_node.process.send_signal(signal.SIGTERM)
    assert local_node.process.wait(20) == 0, local_node.output[-3000:]
    assert time.monotonic() - started < 15
    assert "node stopped" in local_node.output
    assert not port_accepts("127.0.0.1", local_node.port)
    assert not port_accepts("127.0.0.1", local_node.relay_port)
    manifest = json.loads((local_node.tmp / "var" / "simnet" / "simnet.json").read_text())
    host, port = manifest["mostro"]["grpc"].rsplit(":", 1)
    assert not port_accepts(host, int(port))  # the simulated Lightning network stopped too
