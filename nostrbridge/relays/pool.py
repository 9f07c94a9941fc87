"""RelayPool: the daemon's asyncio client for a set of Nostr relays (NIP-01 over websockets).

Each relay gets its own RelayConnection task, so a slow or dead relay only ever costs its own
timeouts. Incoming events from every relay go through one bounded queue to a single dispatcher
task, so `on_event` is never called concurrently and a slow consumer pushes back on the sockets
instead of growing memory. Duplicate events from several relays are all delivered: deduplication
belongs to the inbox, which has the database constraint for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from nostrbridge.relays.connection import ConnectionSettings, RelayConnection, wait_for_answers
from nostrbridge.relays.frames import EventCallback, PublishResult, RelayHealth, Subscription, dumps

logger = logging.getLogger(__name__)

# Mostro's inbox client refuses relay messages above 6,000 bytes (behaviour 1.1.8).
DEFAULT_MAX_MESSAGE_BYTES = 6_000
# Enough to absorb a burst from every relay while the consumer writes to the database.
DISPATCH_QUEUE_SIZE = 1_000


def normalize_url(url: str) -> str:
    """Strip blanks and a bare trailing slash, so `wss://r.x/` and `wss://r.x` are one relay."""
    url = url.strip()
    if not url.startswith(("ws://", "wss://")):
        raise ValueError(f"not a websocket relay url: {url!r}")
    scheme, _, rest = url.partition("://")
    if rest.endswith("/") and "/" not in rest[:-1]:
        rest = rest[:-1]
    return f"{scheme}://{rest}"


class RelayPool:
    def __init__(
        self,
        urls: Iterable[str],
        *,
        on_event: EventCallback,
        on_ok: Callable[[str, str, bool, str], Any] | None = None,
        on_eose: Callable[[str, str], Any] | None = None,
        on_health_change: Callable[[str, RelayHealth], Any] | None = None,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 60.0,
        connect_timeout_s: float = 10.0,
        ping_interval_s: float = 20.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        close_timeout_s: float = 2.0,
    ):
        """Callbacks receive the relay url first. `on_event` is awaited; the other hooks may be
        plain or async functions and run inline on that relay's reader, so keep them quick."""
        self._on_event = on_event
        self._settings = ConnectionSettings(
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
            connect_timeout_s=connect_timeout_s,
            ping_interval_s=ping_interval_s,
            max_message_bytes=max_message_bytes,
            close_timeout_s=close_timeout_s,
            deliver=self._enqueue,
            on_ok=on_ok,
            on_eose=on_eose,
            on_health_change=on_health_change,
        )
        self._subscriptions: dict[str, Subscription] = {}
        self._connections: dict[str, RelayConnection] = {}
        for url in dict.fromkeys(normalize_url(u) for u in urls):
            self._connections[url] = RelayConnection(url, self._settings, self._subscriptions)
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(DISPATCH_QUEUE_SIZE)
        self._dispatcher: asyncio.Task[None] | None = None

    @property
    def urls(self) -> list[str]:
        return list(self._connections)

    async def start(self) -> None:
        """Start connecting to every relay; returns at once (connections come up in the background)."""
        if self._dispatcher is not None:
            raise RuntimeError("RelayPool already started")
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="relay-pool-dispatch")
        for connection in self._connections.values():
            connection.start()

    async def stop(self, *, drain_timeout_s: float = 5.0) -> None:
        """Close every relay, hand already-received events to on_event, then stop the dispatcher."""
        await asyncio.gather(*(c.close() for c in self._connections.values()))
        if self._dispatcher is None:
            return
        try:
            async with asyncio.timeout(drain_timeout_s):
                await self._queue.join()
        except TimeoutError:
            logger.warning("relay pool stopped with %d undelivered events", self._queue.qsize())
        self._dispatcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._dispatcher
        self._dispatcher = None

    async def __aenter__(self) -> RelayPool:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- subscriptions ---------------------------------------------------------------------
    def set_subscription(
        self,
        sub_id: str,
        filters: list[dict[str, Any]],
        *,
        since_provider: Callable[[], int | None] | None = None,
    ) -> None:
        """Open or replace a subscription on every connected relay and on every later reconnect.

        With `since_provider`, each (re)sent REQ gets `since=since_provider()` in every filter
        (None leaves the filters as given). A filter with `limit: 0` gets no stored events.
        """
        subscription = Subscription(sub_id, tuple(filters), since_provider)
        self._subscriptions[sub_id] = subscription
        for connection in self._connections.values():
            connection.send_req(subscription)

    def remove_subscription(self, sub_id: str) -> None:
        if self._subscriptions.pop(sub_id, None) is not None:
            for connection in self._connections.values():
                connection.send_close(sub_id)

    # -- publishing ------------------------------------------------------------------------
    async def publish(self, event: dict[str, Any], *, timeout_s: float = 10.0) -> dict[str, PublishResult]:
        """Send the event to every relay at once and collect each relay's OK.

        A relay that is not connected answers None at once; one that does not answer within
        timeout_s answers None then. The event is sent as given (it must already be signed).
        """
        event_id = event.get("id")
        if not isinstance(event_id, str):
            raise ValueError("event has no id")
        frame = dumps(["EVENT", event])
        connections = list(self._connections.values())
        results = await asyncio.gather(*(c.publish(event_id, frame, timeout_s) for c in connections))
        return {c.url: result for c, result in zip(connections, results, strict=True)}

    async def publish_many(
        self, items: list[tuple[str, str]], *, timeout_s: float = 10.0
    ) -> list[dict[str, PublishResult]]:
        """`publish` for a batch of already serialized events, given as (event id, EVENT frame):
        each relay gets the frames in order and one deadline for all their OKs (no task, timer or
        JSON encoding per event). Returns, per item, each relay's answer keyed by url."""
        connections = list(self._connections.values())
        # Every relay's frames are queued here and all their OKs awaited together under the one
        # deadline: no task, gather or timer per relay (docs/PERFORMANCE.md, ninth round).
        queued: list[list[asyncio.Future[PublishResult]] | None] = []
        try:
            for connection in connections:
                queued.append(connection.queue_many(items))
            await wait_for_answers((waiter for waiters in queued if waiters for waiter in waiters), timeout_s)
            per_relay = [c.answers(items, waiters, timeout_s) for c, waiters in zip(connections, queued, strict=True)]
        finally:
            for c, waiters in zip(connections, queued, strict=False):  # (fewer if a queueing failed)
                c.forget_many(items, waiters)
        return [
            {c.url: results[index] for c, results in zip(connections, per_relay, strict=True)}
            for index in range(len(items))
        ]

    async def publish_to(self, url: str, event: dict[str, Any], *, timeout_s: float = 10.0) -> PublishResult:
        """Send the event to one relay of the pool and wait for its OK (None: no answer)."""
        connection = self._connections.get(url)
        if connection is None:
            return PublishResult(None, "not in the pool")
        return await connection.publish(event["id"], dumps(["EVENT", event]), timeout_s)

    # -- relays ----------------------------------------------------------------------------
    async def set_relays(self, urls: Iterable[str]) -> None:
        """Connect relays that are new in `urls`, close the ones no longer listed."""
        wanted = list(dict.fromkeys(normalize_url(u) for u in urls))
        removed = [c for url, c in self._connections.items() if url not in wanted]
        for connection in removed:
            del self._connections[connection.url]
        await asyncio.gather(*(c.close() for c in removed))
        for url in wanted:
            if url not in self._connections:
                connection = RelayConnection(url, self._settings, self._subscriptions)
                self._connections[url] = connection
                if self._dispatcher is not None:
                    connection.start()
        logger.info("relay pool now uses %s", ", ".join(self._connections) or "no relays")

    def health(self) -> dict[str, RelayHealth]:
        """A copy of each relay's health record, keyed by url."""
        return {url: c.health() for url, c in self._connections.items()}

    def connected_urls(self) -> list[str]:
        return [url for url, c in self._connections.items() if c.connected]

    # -- dispatch --------------------------------------------------------------------------
    async def _enqueue(self, url: str, event: dict[str, Any]) -> None:
        await self._queue.put((url, event))

    async def _dispatch_loop(self) -> None:
        while True:
            url, event = await self._queue.get()
            try:
                await self._on_event(url, event)
            except Exception:
                # Last-resort guard: one bad event must not stop intake from every relay.
                logger.exception("on_event failed for event %s from %s", event.get("id"), url)
            finally:
                self._queue.task_done()
