"""The node's own events, published by the bridge: the info event (38385) and metadata (kind 0)
at start and on settings changes, the relay list (10002) when the set of connected relays
changes; and, with `BridgeOptions.periodic_jobs`, the periodic jobs on timers.

`NodeTasks` is a collaborator the runner owns (`Bridge.node_tasks`): it runs on the runner's
relay pool, and the runner tells it when the relays change (`relays_changed`).
"""

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from django.conf import settings

from nostrbridge.bridge.dbthread import db_call
from nostrbridge.bridge.periodic import every, guarded
from nostrbridge.node_announcements import (
    METADATA_MIN_INTERVAL_S,
    info_event_enqueue,
    lnd_status,
    metadata_enqueue,
    relay_list_enqueue,
)
from nostrbridge.relays import RelayPool
from nostrbridge.wiring import bridge_wiring

INTERVAL_SLACK_S = 5
RECONCILE_EVERY_S = 60  # mostrod's orderbook reconciler
PRUNE_EVERY_S = 3_600
RELAY_LIST_DEBOUNCE_S = 2.0


class NodeTasks:
    def __init__(self, pool: RelayPool):
        self.pool = pool
        self.relays_changed = asyncio.Event()  # set by the runner on every relay (dis)connect

    async def run(self) -> None:
        """The node events at start, then the relay list whenever `relays_changed` is set."""
        await self.publish(min_interval_s=METADATA_MIN_INTERVAL_S)
        while True:
            # 10002 lists the connected relays: republish when that set changes (debounced, so a
            # start or a reconnect storm yields one event; an unchanged list is skipped).
            await self.relays_changed.wait()
            await asyncio.sleep(RELAY_LIST_DEBOUNCE_S)
            self.relays_changed.clear()
            if not await guarded(self._publish_relay_list, "relay list"):
                # Its write failed (the database locked or gone): without this the changed list
                # would wait for the periodic republish, hours away. Tried again after the debounce.
                self.relays_changed.set()

    async def publish(self, *, min_interval_s: float) -> None:
        """The info event and the metadata, each skipped when the same went out less than
        `min_interval_s` ago (`nostrbridge.node_announcements`)."""
        await guarded(lambda: self._publish_info(min_interval_s), "info event")
        await guarded(lambda: db_call(metadata_enqueue)(min_interval_s=min_interval_s), "metadata")

    def spawn_jobs(self, spawn: Callable[[Coroutine[Any, Any, Any], str], None]) -> None:
        """The periodic jobs (`BridgeOptions.periodic_jobs`), each a task started by `spawn`."""
        spawn(
            every(settings.MOSTRO_PUBLISH_MOSTRO_INFO_INTERVAL, self._periodic_info, delay=True),
            "bridge-info",
        )
        spawn(
            every(settings.MOSTRO_PUBLISH_RELAYS_INTERVAL, self._publish_relay_list, delay=True),
            "bridge-10002",
        )
        spawn(every(RECONCILE_EVERY_S, self._reconcile, delay=True), "bridge-reconcile")
        spawn(every(PRUNE_EVERY_S, self._prune, first_delay=60.0), "bridge-prune")

    # The names below are those the logs give a failed job ("bridge task _reconcile failed").
    async def _periodic_info(self) -> None:
        await self._publish_info(settings.MOSTRO_PUBLISH_MOSTRO_INFO_INTERVAL - INTERVAL_SLACK_S)

    async def _publish_info(self, min_interval_s: float) -> None:
        lnd = await asyncio.to_thread(lnd_status)
        await db_call(info_event_enqueue)(lnd=lnd, min_interval_s=min_interval_s)

    async def _publish_relay_list(self) -> None:
        interval = settings.MOSTRO_PUBLISH_RELAYS_INTERVAL - INTERVAL_SLACK_S
        await db_call(relay_list_enqueue)(relays=self.pool.connected_urls(), min_interval_s=interval)

    async def _reconcile(self) -> None:
        # Rare work (only orders whose last event reached no relay); the `network` tag it needs is
        # fetched once per process, as every order service does from this thread.
        await db_call(bridge_wiring().reconcile_order_events)()

    async def _prune(self) -> None:
        from nostrbridge.jobs import prune_inbox

        await db_call(prune_inbox)()
