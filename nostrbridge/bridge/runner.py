"""`run_bridge`: the relay pool, intake, Channels consumer, outbox publisher and the node's own
events in one asyncio loop. Used by `manage.py nostr_bridge` and by the all-in-one `mostrod`.

Threads: everything here runs on the event loop except database work, which goes through
`db_call` (thread-sensitive like `database_sync_to_async`: one database thread per process, where
database-only handlers run in group commits), the network lane (`nostrbridge.bridge.lane`: a few
threads for the handlers that may call LND or another server, serialised per order, trade key and
identity), and the LND `get_info` call of the info event (a worker thread, so a slow LND never
blocks handlers).

Shutdown (stop event set): the inbox subscription is closed, received events are stored, the
consumer finishes the batch in hand (unstarted rows are handed back), the network lane finishes
the handlers in hand (its queued rows are handed back), due replies are
published, then the pool closes. A process killed instead loses nothing either: leases bring
claimed rows back, the outbox keeps unsent replies, and `since` replays unstored events.

The runner owns the pieces and their order; next to it live `BridgeOptions` (`options.py`), the
node's own events and periodic jobs (`node_tasks.py`), the timers (`periodic.py`) and the intake's
store (`intake_trip.py`).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.db import DatabaseError

from mostro_site.config import NodeConfig, node_config
from nostrbridge.bridge.book_replay import book_replay
from nostrbridge.bridge.dbthread import db_call
from nostrbridge.bridge.handoff import handoff_register, handoff_unregister
from nostrbridge.bridge.health import HealthTracker, relay_health_save
from nostrbridge.bridge.intake import SUB_ID, CatchUp, Intake, inbox_filters
from nostrbridge.bridge.intake_trip import ThreadsafeNudge, store_inbound
from nostrbridge.bridge.lane import NetworkLane
from nostrbridge.bridge.node_tasks import NodeTasks
from nostrbridge.bridge.options import DEFAULT_POOL_OPTIONS, BridgeOptions
from nostrbridge.bridge.periodic import every
from nostrbridge.bridge.side import SideChannel
from nostrbridge.bridge.wake_socket import WakeSocket
from nostrbridge.bridge.worker import BridgeWorker, InboxLane, in_batch, make_worker_id, release_dead_leases
from nostrbridge.inbox import inbox_latest_created_at, inbox_release
from nostrbridge.log_context import bind as bind_log_context
from nostrbridge.node_identity import node_pubkey
from nostrbridge.protocol.nip01 import Event
from nostrbridge.publisher import OutboxPublisher
from nostrbridge.relays import RelayHealth, RelayPool, normalize_url
from nostrbridge.wake import (
    INBOX_CHANNEL,
    OUTBOX_CHANNEL,
    SIDE_CHANNEL,
    register_waker,
    unregister_waker,
    wake_socket_path,
)
from nostrbridge.wiring import bridge_wiring

logger = logging.getLogger(__name__)

# The relays' answers to a published batch wait this long for the intake's next trip to the
# database thread, which records them in its store's transaction (a trip and a transaction
# fewer per batch). At 50 ms, trades run one at a time recorded 2.5 batches a trade alone: the
# next message came later. Well inside the lease (`HANDED_RECORD_SLACK_S`, 2.5 s, is what a
# leased row has left for recording after a full round); only the dispute chat's "sent" marks
# (`on_recorded`) wait with it.
SHARE_RECORD_S = 0.5


async def run_bridge(
    *, stop: asyncio.Event, options: BridgeOptions | None = None, ready: asyncio.Event | None = None
) -> None:
    """Run until `stop` is set, then shut down gracefully. Installs no signal handlers."""
    await Bridge(options or BridgeOptions()).run(stop=stop, ready=ready)


class Bridge:
    def __init__(self, options: BridgeOptions):
        self.options = options
        self.worker_id = options.worker_id or make_worker_id()
        self.network = (
            NetworkLane(worker_id=self.worker_id, threads=options.lane_threads) if options.lane_threads else None
        )
        self.lane = InboxLane(
            worker_id=self.worker_id, batch=options.claim_batch, after_batch=self._nudge_outbox, network=self.network
        )
        self.tracker = HealthTracker()
        self.config: NodeConfig | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._wakers: list[tuple[str, Callable[[], None]]] = []
        self._health_changed = asyncio.Event()
        self._wake_socket: WakeSocket | None = None

    # -- lifecycle ----------------------------------------------------------------------
    async def run(self, *, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        # Tags this task's lines, and those of the tasks and database calls it starts (they copy
        # the context), as the bridge's: in `mostrod` the web and the watcher share the process.
        bind_log_context(role="bridge")
        await self._start()
        logger.info("relay bridge %s running on %s", self.worker_id, ", ".join(self.pool.urls))
        if ready is not None:
            ready.set()
        try:
            await stop.wait()
        finally:
            await self._shutdown()

    async def _start(self) -> None:
        self.config = await db_call(node_config)(fresh=True)
        await db_call(release_dead_leases)()
        latest = await db_call(inbox_latest_created_at)()
        self.catch_up = CatchUp(
            anchor=min(latest or time.time(), time.time()), protocol_version=self._config().protocol_version
        )
        self.worker = BridgeWorker(
            lane=self.lane, on_outbox_wake=self._nudge_outbox, channel_layer=self._channel_layer()
        )
        self.intake = Intake(
            node_pubkey=node_pubkey(),
            catch_up=self.catch_up,
            config=lambda: self.config,
            nudge=self._nudge_inbox_now,
            store=self._store_inbound,
        )
        self.pool = RelayPool(
            self._relay_urls(self.config),
            on_event=self._on_event,
            on_eose=self.catch_up.on_eose,
            on_health_change=self._on_health_change,
            **{**DEFAULT_POOL_OPTIONS, **self.options.pool},
        )
        self.node_tasks = NodeTasks(self.pool)
        self.side = [SideChannel(factory(), self.pool) for factory in bridge_wiring().side_channels]
        self.publisher = OutboxPublisher(
            self.pool,
            policy=self.options.publish,
            batch=self.options.publish_batch,
            poll_s=self.options.publish_poll_s,
            on_recorded=self._published if self.side else None,
            share_record_s=SHARE_RECORD_S,  # the intake's next batch records the relays' answers
        )
        self.catch_up.track(self.pool.urls)
        self._subscribe()
        self._register_wakers()
        # The lane's and the invoice watcher's replies come leased, without a claim round each.
        self._handoff = handoff_register(asyncio.get_running_loop(), self.publisher)
        await self.pool.start()
        if self.network is not None:
            self.network.start()
        self._spawn(self._run_worker(), "bridge-consumer")
        self._intake_task = asyncio.create_task(self.intake.run(), name="bridge-intake")
        self._publisher_task = asyncio.create_task(self.publisher.run(), name="bridge-publisher")
        self._spawn(every(self.options.inbox_poll_s, self._poll_inbox), "bridge-inbox-poll")
        self._spawn(every(self.options.config_poll_s, self._refresh_config, delay=True), "bridge-config")
        self._spawn(self._health_loop(), "bridge-health")
        for channel in self.side:
            self._spawn(channel.run(), f"bridge-side-{channel.sub_id}")
        if self.options.stats_every_s:
            self._spawn(every(self.options.stats_every_s, self._log_stats, delay=True), "bridge-stats")
        if self.options.node_events:
            self._spawn(self.node_tasks.run(), "bridge-node-events")
        if self.options.periodic_jobs:
            self.node_tasks.spawn_jobs(self._spawn)

    async def _shutdown(self) -> None:
        timeout = self.options.shutdown_timeout_s
        logger.info("relay bridge %s stopping", self.worker_id)
        self.pool.remove_subscription(SUB_ID)
        for side in self.side:
            side.close()
        # Loops first let their step in hand finish (a cancelled database call could leave a
        # stored batch in the buffer, or a claimed outbox row unpublished until its lease ends).
        await self.intake.stop(self._intake_task)
        await self.intake.flush()
        self.lane.stopping.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.lane.idle.wait()  # the handler in hand finishes; the rest is handed back
        await self._stop_network_lane(timeout)
        await self.publisher.stop(self._publisher_task)
        await self.publisher.flush(timeout_s=timeout)
        handoff_unregister(self._handoff)  # from now on replies wait for the next start's claim
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.worker.cancel_instances()
        for channel, waker in self._wakers:
            unregister_waker(channel, waker)
        if self._wake_socket is not None:
            self._wake_socket.close()
        await self.pool.stop()
        await self.intake.flush()  # events the pool handed over while closing: next start processes them
        for side in self.side:
            await side.flush()
        await self._sync_health()
        logger.info("relay bridge %s stopped (%s events handled)", self.worker_id, self.lane.processed)

    async def _stop_network_lane(self, timeout_s: float) -> None:
        if self.network is None:
            return
        queued = self.network.stop()
        if queued:
            try:
                await db_call(inbox_release)(pks=queued, worker_id=self.worker_id)
            except DatabaseError:
                logger.exception("could not hand back %s queued inbound event(s); their leases will", len(queued))
        if not await asyncio.to_thread(self.network.join, timeout_s):
            # Each is bounded by its own call deadlines; if the process exits first, the leases
            # bring the rows back (released at the next start).
            logger.warning("network lane: handlers still running at shutdown")

    def _config(self) -> NodeConfig:
        assert self.config is not None, "_start() reads the configuration first"
        return self.config

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    def _spawn_once(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """A task that ends on its own: cancelled at shutdown if still running, forgotten when done."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    def _channel_layer(self) -> Any:
        if self.options.channel_layer is not None:
            return self.options.channel_layer
        layer = get_channel_layer()
        if layer is None or isinstance(layer, InMemoryChannelLayer):
            # Nothing outside this process can reach an in-memory layer, and in-process services
            # nudge through local wakers; a private instance keeps its queues on this loop.
            return InMemoryChannelLayer()
        return layer

    def _relay_urls(self, config: NodeConfig) -> list[str]:
        return list(self.options.relays if self.options.relays is not None else config.relays)

    def _subscribe(self) -> None:
        filters = inbox_filters(node_pubkey=node_pubkey(), protocol_version=self._config().protocol_version)
        self.pool.set_subscription(SUB_ID, filters, since_provider=self.catch_up.since)

    # -- nudges -------------------------------------------------------------------------
    def _register_wakers(self) -> None:
        loop = asyncio.get_running_loop()
        self._wakers = [
            # Inside a consumer batch the lane nudges the publisher once, after the batch.
            (OUTBOX_CHANNEL, ThreadsafeNudge(loop, self._nudge_outbox, skip=in_batch)),
            (INBOX_CHANNEL, ThreadsafeNudge(loop, self._nudge_inbox)),
            *((SIDE_CHANNEL, ThreadsafeNudge(loop, channel.wake)) for channel in self.side),
        ]
        for channel, waker in self._wakers:
            register_waker(channel, waker)
        if not str(getattr(settings, "REDIS_URL", "")):
            # Without Redis, the node's other processes (mostrod's job cluster: payouts' replies)
            # nudge through this socket (nostrbridge.wake) instead of waiting for the polls.
            self._wake_socket = WakeSocket(
                wake_socket_path(), {OUTBOX_CHANNEL: self._nudge_outbox, INBOX_CHANNEL: self._nudge_inbox}
            )
            self._wake_socket.open()

    async def _on_event(self, url: str, raw: dict[str, Any]) -> None:
        """Events for a side channel (the dispute chat) go there; everything else to the inbox."""
        for channel in self.side:
            if channel.claims(raw):
                await channel.on_event(url, raw)
                return
        await self.intake.on_event(url, raw)

    async def _published(self, events: list[dict[str, Any]]) -> None:
        for channel in self.side:
            await channel.published(events)

    def _nudge_outbox(self) -> None:
        self.publisher.nudge()

    def _nudge_inbox(self) -> None:
        self.worker.nudge(INBOX_CHANNEL, {"type": "wake"})

    def _nudge_inbox_now(self) -> None:
        # Stamped, so a consumer that has claimed since then can skip it (see InboxLane.drain).
        self.worker.nudge(INBOX_CHANNEL, {"type": "wake", "at": time.monotonic()})

    async def _store_inbound(
        self, batch: list[tuple[str, dict, bool]], checked: dict[str, tuple[dict, Event]] | None = None
    ) -> int:
        # A method rather than a partial given to the intake: the publisher is built after it.
        return await store_inbound(batch, checked, lane=self.lane, publisher=self.publisher)

    async def _poll_inbox(self) -> None:
        if self.lane.idle.is_set():
            self._nudge_inbox()

    async def _run_worker(self) -> None:
        while True:
            try:
                await self.worker.arun()
            except Exception:  # noqa: BLE001 — e.g. Redis down: local nudges and polling keep working
                logger.exception("channel layer listener failed; restarting it in 5 s")
            await asyncio.sleep(5)

    # -- relays and configuration -------------------------------------------------------
    async def _on_health_change(self, url: str, health: RelayHealth) -> None:
        if not health.connected:
            self.catch_up.on_disconnect(url)
        else:
            self.catch_up.on_connect(url)
            self.publisher.nudge()  # replies that waited for a relay can go now
            self._spawn_once(book_replay(self.pool, url), f"bridge-book-{url}")
        self._health_changed.set()
        self.node_tasks.relays_changed.set()

    async def _refresh_config(self) -> None:
        config = await db_call(node_config)(fresh=True)
        old, self.config = self._config(), config
        if self.options.relays is None and config.relays != old.relays:
            await self._set_relays(list(config.relays))
        if config.protocol_version != old.protocol_version:
            logger.info("protocol version %s -> %s: resubscribing", old.protocol_version, config.protocol_version)
            self.catch_up.resubscribed(protocol_version=config.protocol_version, urls=self.pool.urls)
            self._subscribe()
        if config != old and self.options.node_events:
            # Changed tags go out at once; an unrelated change finds identical tags and skips.
            await self.node_tasks.publish(min_interval_s=settings.MOSTRO_PUBLISH_MOSTRO_INFO_INTERVAL)

    async def _set_relays(self, urls: list[str]) -> None:
        try:
            wanted = [normalize_url(url) for url in urls]
        except ValueError:
            logger.error("ignoring relay list %r: not all entries are ws:// or wss:// URLs", urls)
            return
        for url in set(self.pool.urls) - set(wanted):
            self.catch_up.forget(url)
        self.catch_up.track([url for url in wanted if url not in self.pool.urls], anchor=time.time())
        await self.pool.set_relays(wanted)
        self._health_changed.set()

    async def _health_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.health_sync_s):
                    await self._health_changed.wait()
            self._health_changed.clear()
            await self._sync_health()

    async def _sync_health(self) -> None:
        changes, gone = self.tracker.changes(self.pool.health())
        try:
            await db_call(relay_health_save)(changes=changes, gone=gone)
        except DatabaseError:
            logger.exception("could not save relay health")

    # -- counters -----------------------------------------------------------------------
    async def _log_stats(self) -> None:
        logger.info(
            "bridge stats: accepted=%s dropped=%s stored-backlog=%s handled=%s in-lane=%s published=%s connected=%s/%s",
            self.intake.accepted,
            sum(self.intake.dropped.values()),
            self.intake.pending,
            self.lane.processed,
            0 if self.network is None else self.network.busy,
            self.publisher.published,
            len(self.pool.connected_urls()),
            len(self.pool.urls),
        )
