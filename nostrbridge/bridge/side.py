"""Side channels: relay events that are not addressed to the node (the dispute chat).

An app that needs them provides hooks (factories in the composition root's
`BridgeWiring.side_channels`, built once per bridge), all called in the database thread:

* `subscription()` → an object with `filters` (the REQ filters, [] for none) and a pure
  `claims(raw) -> bool`, which the loop calls on every relay event before the node's intake;
* `store(events)` → the claimed events, in small batches;
* `published(event_ids)` → outbound events whose relays have answered (the publisher asks
  `claims` for them too).

The subscription is recomputed every `refresh_s` and at once when a service wakes
`SIDE_CHANNEL` after a commit. Claimed events never reach the inbox, and events the relay
sends twice are the app's to deduplicate (it has the unique columns).
"""

import asyncio
import contextlib
import logging
from typing import Any

from django.db import DatabaseError

from nostrbridge.bridge.dbthread import db_call

logger = logging.getLogger(__name__)

STORE_BATCH = 50
STORE_ATTEMPTS = 3  # then the batch is dropped; a reconnect replays it from `since`
RETRY_S = 1.0


class SideChannel:
    def __init__(self, hooks: Any, pool: Any, *, refresh_s: float = 2.0) -> None:
        self.hooks = hooks
        self.sub_id: str = hooks.sub_id
        self._pool = pool
        self._refresh_s = refresh_s
        self._subscription: Any = None
        self._filters: list[dict] | None = None
        self._buffer: list[dict] = []
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._flush_task: asyncio.Task | None = None
        self.stored = 0

    def claims(self, raw: dict) -> bool:
        return self._subscription is not None and self._subscription.claims(raw)

    def wake(self) -> None:
        self._wake.set()

    async def refresh(self) -> None:
        subscription = await db_call(self.hooks.subscription)()
        self._subscription = subscription
        if subscription.filters == self._filters:
            return
        self._filters = subscription.filters
        if subscription.filters:
            self._pool.set_subscription(self.sub_id, subscription.filters)
        else:
            self._pool.remove_subscription(self.sub_id)

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except DatabaseError:
                logger.exception("side channel %s: refresh failed", self.sub_id)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._refresh_s):
                    await self._wake.wait()
            self._wake.clear()

    async def on_event(self, url: str, raw: dict) -> None:
        """Called by the pool's dispatcher: keep it quick, the store runs in its own task."""
        self._buffer.append(raw)
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.create_task(self.flush(), name=f"side-{self.sub_id}")

    async def flush(self) -> None:
        async with self._flushing:
            failures = 0
            while self._buffer:
                batch = self._buffer[:STORE_BATCH]
                try:
                    self.stored += await db_call(self.hooks.store)(batch)
                except DatabaseError:
                    failures += 1
                    logger.exception("side channel %s: storing %s events failed", self.sub_id, len(batch))
                    if failures < STORE_ATTEMPTS:
                        await asyncio.sleep(RETRY_S)
                        continue
                del self._buffer[: len(batch)]

    async def published(self, events: list[dict]) -> None:
        ids = [event["id"] for event in events if self.claims(event)]
        if ids:
            try:
                await db_call(self.hooks.published)(ids)
            except DatabaseError:
                logger.exception("side channel %s: delivery report failed", self.sub_id)

    def close(self) -> None:
        if self._filters:
            self._pool.remove_subscription(self.sub_id)
