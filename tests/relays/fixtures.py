"""Pytest fixtures for real test relays. Other test packages use them by importing this module as
a plugin: `pytest_plugins = ["tests.relays.fixtures"]` in the root `tests/conftest.py`, or by
importing the fixture names into their own conftest.

- `local_relay`          in-process nostr-sdk LocalRelay (`.url`, `await .restart()`)
- `local_relay_process`  LocalRelay in a child process (`.url`, `.kill()`, `.restart()`, `await .arestart()`)
- `py_relay`             nostr-relay (Python, SQLite) in a child process; skipped when it cannot run
- `py_relay_factory`     makes more nostr-relay processes in the test's tmp dir (e.g. sharing one db)
- `nostr_keys`           a fresh nostr-sdk `Keys`
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nostr_sdk import Keys

from tests.relays.local_relay import InProcessLocalRelay, LocalRelayProcess
from tests.relays.nostr_relay_py import NostrRelayProcess, ensure_nostr_relay


@pytest.fixture
async def local_relay() -> AsyncIterator[InProcessLocalRelay]:
    relay = InProcessLocalRelay()
    await relay.start()
    yield relay
    relay.shutdown()


@pytest.fixture
def local_relay_process() -> Iterator[LocalRelayProcess]:
    relay = LocalRelayProcess()
    relay.start()
    yield relay
    relay.kill()


@pytest.fixture(scope="session")
def nostr_relay_ready() -> None:
    """Installs nostr-relay once per session if needed; skips dependent tests if impossible."""
    reason = ensure_nostr_relay()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def py_relay_factory(nostr_relay_ready: None, tmp_path: Path) -> Iterator[Callable[..., NostrRelayProcess]]:
    started: list[NostrRelayProcess] = []

    def make(**kwargs: Any) -> NostrRelayProcess:
        relay = NostrRelayProcess(tmp_path / "nostr-relay", **kwargs)
        relay.start()
        started.append(relay)
        return relay

    yield make
    for relay in started:
        relay.kill()


@pytest.fixture
def py_relay(py_relay_factory: Callable[..., NostrRelayProcess]) -> NostrRelayProcess:
    return py_relay_factory()


@pytest.fixture
def nostr_keys() -> Keys:
    return Keys.generate()
