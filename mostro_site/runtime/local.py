"""`mostrod --local`: the embedded default node, supervised.

Settings are read once at import, so the node cannot point itself at a relay and a
Lightning network it starts later. This supervisor therefore starts the simulated
Lightning network and the local relay first, waits for both to be ready, and then starts
the node (`mostrod` without `--local`) as a child whose environment points at them. On
SIGTERM/SIGINT it stops the node first (which finishes its work), then the relay, then
the Lightning network.
"""

import json
import logging
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.management import call_command

from mostro_site.config.env import BASE_DIR
from mostro_site.runtime.bootstrap import ensure_operator_login
from mostro_site.runtime.children import Child, ChildFailed, log_offset, project_env, spawn, wait_ready

logger = logging.getLogger(__name__)

LOCAL_NODES = "mostro,alice,bob"
MANAGE = str(BASE_DIR / "manage.py")
STATE_FILE = "local.json"


@dataclass(frozen=True)
class LocalOptions:
    host: str
    port: int
    relay_port: int
    var_dir: Path
    node_args: tuple[str, ...] = ()


class LocalNode:
    def __init__(self, options: LocalOptions, *, write) -> None:
        self.options = options
        self.write = write
        self.log_dir = options.var_dir / "log"
        self.children: list[Child] = []
        self._stop_requested = False

    def run(self) -> int:
        self._prepare()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            env = self._start_network()
            if self._stop_requested:
                return 0
            node = self._spawn_node(env)
            return self._supervise(node)
        except ChildFailed as exc:
            self.write(f"Cannot start the local node: {exc}")
            self.write(_log_tail(exc.log_path))
            return 1
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # --- steps --------------------------------------------------------------------------
    def _prepare(self) -> None:
        for path in (self.options.var_dir, self.log_dir, self.options.var_dir / "simnet"):
            path.mkdir(parents=True, exist_ok=True)
        self.write("Applying database migrations…")
        call_command("migrate", interactive=False, verbosity=0)
        self.write(ensure_operator_login(self.options.var_dir))

    def _start_network(self) -> dict[str, str]:
        simnet_dir = self.options.var_dir / "simnet"
        offset = log_offset(self.log_dir, "simnet")
        simnet = self._spawn(
            "simnet", [sys.executable, MANAGE, "simnet", "--dir", str(simnet_dir), "--nodes", LOCAL_NODES]
        )
        wait_ready(simnet, offset=offset)
        manifest = json.loads((simnet_dir / "simnet.json").read_text())
        self.write(f"Simulated Lightning network ready: {LOCAL_NODES} (log: {simnet.log_path})")
        relay_url = self._start_relay()
        mostro = manifest["mostro"]
        state = {"relay": relay_url, "simnet_manifest": str(simnet_dir / "simnet.json"), "web": self._base_url()}
        (self.options.var_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
        return {
            "LIGHTNING_BACKEND": "lightning.lnd.LndClient",
            "LND_GRPC_HOST": mostro["grpc"],
            "LND_CERT_FILE": mostro["tls_cert"],
            "LND_MACAROON_FILE": mostro["macaroon"],
            "MOSTRO_RELAYS": relay_url,
            "MOSTRO_VAR_DIR": str(self.options.var_dir),
        }

    def _start_relay(self) -> str:
        port = str(self.options.relay_port)
        offset = log_offset(self.log_dir, "relay")
        relay = self._spawn(
            "relay", [sys.executable, "-m", "mostro_site.runtime.local_relay", "--host", "127.0.0.1", "--port", port]
        )
        url = wait_ready(relay, offset=offset, timeout=20).split(maxsplit=1)[1]
        self.write(f"Local relay ready: {url} (log: {relay.log_path})")
        return url

    def _spawn_node(self, env: dict[str, str]) -> Child:
        command = [
            sys.executable,
            MANAGE,
            "mostrod",
            "--host",
            self.options.host,
            "--port",
            str(self.options.port),
            "--no-migrate",
            *self.options.node_args,
        ]
        # The node writes to this terminal: its banner and logs are what the operator watches.
        node = spawn("node", command, env=project_env(**env), cwd=BASE_DIR, log_dir=None)
        self.children.append(node)
        return node

    def _supervise(self, node: Child) -> int:
        while node.alive:
            for child in self.children:
                if child is not node and not child.alive and not self._stop_requested:
                    self.write(f"{child.name} exited unexpectedly (see {child.log_path}); stopping the node.")
                    self._stop_requested = True
                    node.process.send_signal(signal.SIGTERM)
            time.sleep(0.2)
        return node.process.returncode

    # --- plumbing -----------------------------------------------------------------------
    def _spawn(self, name: str, command: list[str]) -> Child:
        child = spawn(name, command, env=project_env(), cwd=BASE_DIR, log_dir=self.log_dir)
        self.children.append(child)
        return child

    def _on_signal(self, signum, frame) -> None:
        self._stop_requested = True
        node = next((c for c in self.children if c.name == "node"), None)
        if node is not None and node.alive:
            node.process.send_signal(signal.SIGTERM)

    def _stop_all(self) -> None:
        # Reverse start order: the node finishes its work while relay and LND still answer.
        for child in reversed(self.children):
            child.stop(timeout=30 if child.name == "node" else 10)

    def _base_url(self) -> str:
        return f"http://{self.options.host}:{self.options.port}"


def _log_tail(path: Path | None, lines: int = 5) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join("  | " + line for line in path.read_text(errors="replace").splitlines()[-lines:])


def local_options(*, host: str, port: int, relay_port: int, node_args=()) -> LocalOptions:
    return LocalOptions(
        host=host, port=port, relay_port=relay_port, var_dir=Path(settings.VAR_DIR), node_args=tuple(node_args)
    )
