"""nostr-sdk's LocalRelay (Rust, in memory) for tests.

- `InProcessLocalRelay`: runs on nostr-sdk's own threads inside the test process; starts in ~1 ms.
- `LocalRelayProcess`: the same relay in a child process, so a test can kill and restart it and
  other processes can reach it. It runs the product's `python -m mostro_site.runtime.local_relay`, which
  prints `READY <url>` and serves until SIGTERM/SIGINT.

Measured behaviour (nostr-sdk 0.45.1): accepts kinds 14 and 1059 (a 1059 must carry exactly one
`p` tag); refuses a bad signature ("invalid: invalid event signature"), a wrong id ("invalid:
invalid event ID") and events above 65,536 bytes ("blocked: event size ..."); answers a
duplicate with OK true "duplicate: already have this event"; returns at most 500 stored events
per REQ whatever the filter's limit; keeps nothing across a restart (memory store).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

from tests.relays.net import REPO_ROOT, free_port, read_line, terminate, wait_port_free

LOCAL_RELAY_MAX_EVENTS_PER_REQ = 500
LOCAL_RELAY_MAX_EVENT_BYTES = 65_536


def build_local_relay(host: str, port: int):  # -> nostr_sdk.LocalRelay
    """The product's own local relay (lifted rate limit), so tests run what `make run` runs."""
    from mostro_site.runtime.local_relay import build_relay

    return build_relay(host, port)


class InProcessLocalRelay:
    """A LocalRelay in this process. `await start()`, use `.url`, `shutdown()` when done."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1"):
        self.host = host
        self.port = port or free_port(host)
        self._relay = None

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> str:
        self._relay = build_local_relay(self.host, self.port)
        await self._relay.run()
        return self.url

    def shutdown(self) -> None:
        if self._relay is not None:
            self._relay.shutdown()
            self._relay = None

    async def restart(self) -> str:
        """Stop and start again on the same port (the memory store starts empty)."""
        self.shutdown()
        return await self.start()


class LocalRelayProcess:
    """A LocalRelay in a child process: `start()`, `kill()` (crash), `stop()`, `restart()`.

    The port stays the same across restarts, so `url` stays valid. The async variants
    (`astart`, `arestart`) run the blocking start in a thread so a running pool keeps working.
    """

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", startup_timeout_s: float = 15.0):
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout_s = startup_timeout_s
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> str:
        if self.running:
            raise RuntimeError(f"LocalRelayProcess on port {self.port} already running")
        wait_port_free(self.host, self.port)
        cmd = [sys.executable, "-m", "mostro_site.runtime.local_relay", "--host", self.host, "--port", str(self.port)]
        cmd.append("--exit-on-stdin-eof")
        self.proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        line = read_line(self.proc, self.startup_timeout_s)
        if not line.startswith("READY "):
            self.kill()
            raise RuntimeError(f"local relay on port {self.port} did not start (got {line!r})")
        return self.url

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

    def __enter__(self) -> LocalRelayProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
