"""PyPI `nostr-relay` 1.14 (Python, SQLite) as an independent second relay for tests.

It lives in its own virtualenv (`.venv-relay/`, made by `scripts/setup_test_relays.sh`) because
its dependency pins must not leak into the project's. `NostrRelayProcess` writes a config into a
work directory, runs `nostr-relay -c <cfg> serve --use-uvicorn` (one process, so a kill is a real
crash and nothing forks) and waits until the websocket handshake works (~1 s).

Measured behaviour (1.14): the SQLite store survives restarts (the catch-up tests rely on it);
a refused event is answered with an EMPTY event id (`["OK","",false,"invalid: ..."]`) and the
relay then sleeps 2 s, doubling per refusal, before answering anything else on that
connection; `max_event_size` bounds the content length only ("invalid: 280 characters should be
enough for anybody"); events older than `oldest_event` or over 1 h in the future are refused;
NIP-40 expiration is ignored.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

from tests.relays.net import REPO_ROOT, free_port, port_accepts, terminate, wait_port_free

RELAY_VENV = Path(os.environ.get("MOSTRO_RELAY_VENV", REPO_ROOT / ".venv-relay"))
RELAY_PYTHON = RELAY_VENV / "bin" / "python"
SETUP_SCRIPT = REPO_ROOT / "scripts" / "setup_test_relays.sh"
# Gift wraps are back-dated up to 2 days, so the relay must keep at least 3 days.
DEFAULT_OLDEST_EVENT_S = 7 * 86_400
DEFAULT_MAX_EVENT_SIZE = 65_536
# Runs nostr-relay's own CLI under its venv's python, after arming the die-with-parent watchdog.
LAUNCHER = "from tests.relays.net import die_with_parent; die_with_parent(); from nostr_relay.cli import main; main()"

CONFIG_TEMPLATE = """\
DEBUG: false
relay_name: mostro test relay
storage:
  sqlalchemy.url: sqlite+aiosqlite:///{db_path}
  num_concurrent_reqs: 10
  num_concurrent_adds: 2
  validators:
    - nostr_relay.validators.is_not_too_large
    - nostr_relay.validators.is_signed
    - nostr_relay.validators.is_recent
gunicorn:
  bind: {host}:{port}
  workers: 1
  loglevel: warning
  reload: false
authentication:
  enabled: false
max_event_size: {max_event_size}
oldest_event: {oldest_event}
message_timeout: 1800
subscription_limit: 32
max_limit: 6000
"""


def nostr_relay_installed() -> bool:
    # The setup script writes the marker last, so a half-finished install does not count.
    return (RELAY_VENV / ".mostro-relay-installed").exists() and RELAY_PYTHON.exists()


def ensure_nostr_relay() -> str | None:
    """Install nostr-relay if missing (setup script, ~25 s once). Returns None or why it failed."""
    if nostr_relay_installed():
        return None
    if os.environ.get("MOSTRO_NO_RELAY_SETUP"):
        return f"nostr-relay is not installed in {RELAY_VENV}; run {SETUP_SCRIPT}"
    done = subprocess.run(["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0 or not nostr_relay_installed():
        return f"{SETUP_SCRIPT} failed ({done.returncode}): {done.stderr.strip()[-500:]}"
    return None


class NostrRelayProcess:
    """nostr-relay in a child process: `start()`, `kill()` (crash), `stop()`, `restart()`.

    Port, config and database stay the same across restarts. Pass `db_path` to make two
    instances share one database (e.g. to store events "while a relay was down").
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        db_path: Path | None = None,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        oldest_event_s: int = DEFAULT_OLDEST_EVENT_S,
        startup_timeout_s: float = 20.0,
    ):
        self.host = host
        self.port = port or free_port(host)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.db_path = db_path or self.workdir / "nostr-relay.sqlite3"
        self.config_path = self.workdir / f"nostr-relay-{self.port}.yaml"
        self.log_path = self.workdir / f"nostr-relay-{self.port}.log"
        self.max_event_size = max_event_size
        self.oldest_event_s = oldest_event_s
        self.startup_timeout_s = startup_timeout_s
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def write_config(self) -> Path:
        self.config_path.write_text(
            CONFIG_TEMPLATE.format(
                db_path=self.db_path,
                host=self.host,
                port=self.port,
                max_event_size=self.max_event_size,
                oldest_event=self.oldest_event_s,
            )
        )
        return self.config_path

    def start(self) -> str:
        if self.running:
            raise RuntimeError(f"nostr-relay on port {self.port} already running")
        wait_port_free(self.host, self.port)
        cmd = [str(RELAY_PYTHON), "-c", LAUNCHER, "-c", str(self.write_config()), "serve", "--use-uvicorn"]
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        self._wait_ready()
        return self.url

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                break
            if port_accepts(self.host, self.port) and self._handshake_works():
                return
            time.sleep(0.05)
        self.kill()
        tail = self.log_path.read_text()[-2000:] if self.log_path.exists() else ""
        raise RuntimeError(f"nostr-relay on port {self.port} did not start:\n{tail}")

    def _handshake_works(self) -> bool:
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        try:
            with connect(self.url, open_timeout=1, close_timeout=1):
                return True
        except (OSError, TimeoutError, WebSocketException):
            return False

    def kill(self) -> None:
        terminate(self.proc, hard=True)
        self.proc = None

    def stop(self) -> None:
        terminate(self.proc, hard=False)
        self.proc = None

    def restart(self) -> str:
        self.kill()
        return self.start()

    async def astart(self) -> str:
        return await asyncio.to_thread(self.start)

    async def arestart(self) -> str:
        return await asyncio.to_thread(self.restart)

    def __enter__(self) -> NostrRelayProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
