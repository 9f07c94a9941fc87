"""Run the relay bridge inside the test's event loop, with timings short enough for tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections

from mostro_site.config import clear_node_config_cache
from nostrbridge.bridge import Bridge, BridgeOptions
from nostrbridge.outbox_rounds import PublishPolicy

FAST: dict[str, Any] = {
    "pool": {"backoff_initial_s": 0.05, "backoff_max_s": 0.3, "connect_timeout_s": 2.0},
    "inbox_poll_s": 0.1,
    "config_poll_s": 0.2,
    "health_sync_s": 0.2,
    "publish": PublishPolicy(timeout_s=3.0, retry_base_s=0.2, max_attempts=3),
    "shutdown_timeout_s": 10.0,
}


@pytest.fixture
async def close_db_thread_connections() -> AsyncIterator[None]:
    """The bridge's database thread outlives the test; close its connections after each test
    so the test database can be flushed and, at the end, dropped."""
    yield
    await sync_to_async(connections.close_all)()


@asynccontextmanager
async def running_bridge(**options: Any) -> AsyncIterator[Bridge]:
    clear_node_config_cache()
    bridge = Bridge(BridgeOptions(**{**FAST, **options}))
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(bridge.run(stop=stop, ready=ready))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        task.result()  # raises the start-up error
    try:
        await connected(bridge)
        yield bridge
    finally:
        stop.set()
        await task


async def connected(bridge: Bridge, timeout_s: float = 10.0) -> None:
    """Every relay connected and past its EOSE: the inbox subscription is live everywhere."""

    def subscribed() -> bool:
        urls = bridge.pool.urls
        return bridge.pool.connected_urls() == urls and not any(bridge.catch_up.catching_up(u) for u in urls)

    await eventually(subscribed, timeout_s)


async def eventually(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 — polls state written by other tasks
            await asyncio.sleep(0.02)


async def db_eventually(query: Callable[[], bool], timeout_s: float = 10.0) -> None:
    check = sync_to_async(query)
    async with asyncio.timeout(timeout_s):
        while not await check():  # noqa: ASYNC110 — polls rows other tasks write
            await asyncio.sleep(0.05)


@contextmanager
def commits_counted() -> Iterator[list[int]]:
    """The default connection's COMMITs while the block runs, one entry each (group-commit tests)."""
    commits: list[int] = []
    real_commit = connection.commit

    def counting_commit() -> None:
        commits.append(1)
        real_commit()

    connection.commit = counting_commit  # type: ignore[method-assign]
    try:
        yield commits
    finally:
        del connection.commit
