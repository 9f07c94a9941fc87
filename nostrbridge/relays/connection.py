"""One relay: connect, read, write, reconnect with backoff. Owned and driven by RelayPool."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from nostrbridge.relays.coalesced import CoalescedConnection
from nostrbridge.relays.frames import (
    MalformedFrame,
    PublishResult,
    RelayHealth,
    Subscription,
    dumps,
    frame_too_large,
    parse_frame,
)

logger = logging.getLogger(__name__)

# A connection that stayed up this long counts as healthy, so the next outage starts over at the
# initial backoff; a relay that accepts and then drops at once keeps backing off instead.
STABLE_AFTER_S = 10.0
MAX_NOTICES = 20
# A relay that closes a subscription with one of these reasons will refuse it again.
FINAL_CLOSED_PREFIXES = ("auth-required", "error: bad filter")
CLOSED_BY_POOL = "closed by the pool"
CONNECT_ERRORS = (OSError, TimeoutError, InvalidHandshake, InvalidURI)


@dataclass(frozen=True)
class ConnectionSettings:
    backoff_initial_s: float
    backoff_max_s: float
    connect_timeout_s: float
    ping_interval_s: float
    max_message_bytes: int
    close_timeout_s: float
    deliver: Callable[[str, dict[str, Any]], Awaitable[None]]
    on_ok: Callable[..., Any] | None
    on_eose: Callable[..., Any] | None
    on_health_change: Callable[..., Any] | None


async def call_hook(hook: Callable[..., Any] | None, *args: Any) -> None:
    """Run a user callback (plain or async); a failing hook is logged and never stops a relay."""
    if hook is None:
        return
    try:
        result = hook(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception("relay pool callback %r failed", hook)


async def wait_for_answers(waiters: Iterable[asyncio.Future[Any]], timeout_s: float) -> None:
    """Until every future is done or `timeout_s` has passed (one timer for all of them)."""
    waiting = [waiter for waiter in waiters if not waiter.done()]
    if waiting:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await asyncio.wait(waiting)


def _now() -> datetime:
    return datetime.now(UTC)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class RelayConnection:
    def __init__(self, url: str, settings: ConnectionSettings, subscriptions: Mapping[str, Subscription]):
        self.url = url
        self._settings = settings
        self._subscriptions = subscriptions  # the pool's live dict, read at every (re)subscribe
        self._health = RelayHealth(url=url)
        self._outbox: asyncio.Queue[str] | None = None  # set only while a socket is open
        self._pending: dict[str, list[asyncio.Future[PublishResult]]] = {}
        self._retries: set[asyncio.Task[None]] = set()
        self._closed_attempts: dict[str, int] = {}  # CLOSED-then-resent count per subscription
        self._task: asyncio.Task[None] | None = None
        self._ever_connected = False
        self._opened_at: float | None = None  # loop time the current socket opened

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"relay:{self.url}")

    async def close(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def health(self) -> RelayHealth:
        return replace(self._health, notices=list(self._health.notices))

    @property
    def connected(self) -> bool:
        return self._outbox is not None

    # -- outgoing --------------------------------------------------------------------------
    def send_req(self, subscription: Subscription) -> None:
        if self._outbox is not None:
            self._outbox.put_nowait(subscription.req_frame())

    def send_close(self, sub_id: str) -> None:
        if self._outbox is not None:
            self._outbox.put_nowait(dumps(["CLOSE", sub_id]))

    async def publish(self, event_id: str, frame: str, timeout_s: float) -> PublishResult:
        """Send one EVENT frame and wait for this relay's OK, never longer than timeout_s."""
        if self._outbox is None:
            return PublishResult(None, "not connected")
        waiter: asyncio.Future[PublishResult] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(event_id, []).append(waiter)
        self._outbox.put_nowait(frame)
        try:
            async with asyncio.timeout(timeout_s):
                return await waiter
        except TimeoutError:
            return PublishResult(None, f"timeout: no OK within {timeout_s}s")
        finally:
            self._forget(event_id, waiter)

    def queue_many(self, items: list[tuple[str, str]]) -> list[asyncio.Future[PublishResult]] | None:
        """Queue the EVENT frames in order, each with a future for this relay's OK; None when not
        connected. The caller waits (`wait_for_answers`), reads (`answers`) and then forgets them
        (`forget_many`): the pool waits for every relay's futures at once, with no task per relay."""
        outbox = self._outbox
        if outbox is None:
            return None
        create_future = asyncio.get_running_loop().create_future
        pending = self._pending
        waiters: list[asyncio.Future[PublishResult]] = []
        for event_id, frame in items:
            waiter = create_future()
            pending.setdefault(event_id, []).append(waiter)
            outbox.put_nowait(frame)
            waiters.append(waiter)
        return waiters

    @staticmethod
    def answers(
        items: list[tuple[str, str]], waiters: list[asyncio.Future[PublishResult]] | None, timeout_s: float
    ) -> list[PublishResult]:
        """Per item, this relay's answer: its OK, "not connected", or a timeout."""
        if waiters is None:
            return [PublishResult(None, "not connected")] * len(items)
        timed_out = PublishResult(None, f"timeout: no OK within {timeout_s}s")
        return [waiter.result() if waiter.done() else timed_out for waiter in waiters]

    def forget_many(self, items: list[tuple[str, str]], waiters: list[asyncio.Future[PublishResult]] | None) -> None:
        for (event_id, _), waiter in zip(items, waiters or (), strict=False):
            self._forget(event_id, waiter)

    def _forget(self, event_id: str, waiter: asyncio.Future[PublishResult]) -> None:
        waiters = self._pending.get(event_id)
        if waiters and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self._pending[event_id]

    # -- connection loop -------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            self._opened_at = None
            try:
                await self._session(await self._connect())
            except CONNECT_ERRORS as exc:
                # Loud once per outage, quiet for the retries that follow.
                level = logging.WARNING if attempt == 0 else logging.DEBUG
                self._record_error(f"connect failed: {_describe(exc)}", level)
            except Exception:
                # Last-resort guard: a bug in frame handling must not end this relay's reconnects.
                logger.exception("relay %s: session failed", self.url)
                self._record_error("internal error, see log", logging.DEBUG)
            if self._opened_at is not None and loop.time() - self._opened_at >= STABLE_AFTER_S:
                attempt = 0
            delay = self._backoff_delay(attempt)
            attempt += 1
            logger.debug("relay %s: reconnecting in %.2fs", self.url, delay)
            await asyncio.sleep(delay)

    def _backoff_delay(self, attempt: int) -> float:
        # Full jitter (uniform over [0, cap]) spreads the reconnects of many clients after a relay
        # restart instead of having them all arrive on the same exponential beat.
        s = self._settings
        cap = min(s.backoff_max_s, s.backoff_initial_s * 2 ** min(attempt, 32))
        return random.uniform(0, cap)

    async def _connect(self) -> ClientConnection:
        s = self._settings
        return await connect(
            self.url,
            open_timeout=s.connect_timeout_s,
            ping_interval=s.ping_interval_s,
            ping_timeout=s.ping_interval_s,
            close_timeout=s.close_timeout_s,
            # Frames above max_message_bytes are dropped one by one in _on_frame; only frames
            # beyond this hard ceiling cost the connection (protects memory).
            max_size=max(s.max_message_bytes, 1 << 20),
            # No permessage-deflate (websockets offers it by default; strfry's default accepts it):
            # gift wraps are encrypted base64, which deflate shrinks by about a quarter, for 0.1–0.16
            # ms of CPU a round trip (bench_relay_compression.py). nostr-sdk, upstream's client,
            # never compresses either.
            compression=None,
            create_connection=CoalescedConnection,  # a publish round's frames in one write
        )

    async def _session(self, ws: ClientConnection) -> None:
        self._opened_at = asyncio.get_running_loop().time()
        outbox: asyncio.Queue[str] = asyncio.Queue()
        writer = asyncio.create_task(self._write_loop(ws, outbox), name=f"relay-writer:{self.url}")
        reason = CLOSED_BY_POOL  # unless the loop below ends another way
        try:
            for subscription in self._subscriptions.values():
                outbox.put_nowait(subscription.req_frame())
            self._outbox = outbox
            await self._mark_connected()
            async for raw in ws:
                await self._on_frame(raw)
            reason = f"closed by the relay: {ws.close_code} {ws.close_reason}".rstrip()
        except ConnectionClosed as exc:
            reason = f"connection lost: {exc}"
        finally:
            self._outbox = None
            for task in (writer, *self._retries):
                task.cancel()
            await asyncio.gather(writer, *self._retries, return_exceptions=True)
            self._closed_attempts.clear()
            self._fail_pending(reason)
            await ws.close()
            await self._mark_disconnected(reason)

    async def _write_loop(self, ws: ClientConnection, outbox: asyncio.Queue[str]) -> None:
        # A single writer keeps frames in the order they were queued (REQ before CLOSE, etc.).
        # Frames queued together (a publish round's) go out in one send context: websockets'
        # documented way of writing several frames (one state check and one drain for all,
        # instead of one `send` each).
        with contextlib.suppress(ConnectionClosed):
            while True:
                frame = await outbox.get()
                if outbox.empty():
                    await ws.send(frame)
                    continue
                frames = [frame]
                while not outbox.empty():
                    frames.append(outbox.get_nowait())
                async with ws.send_context():
                    for frame in frames:
                        ws.protocol.send_text(frame.encode())

    async def _mark_connected(self) -> None:
        health = self._health
        if self._ever_connected:
            health.reconnects += 1
        self._ever_connected = True
        health.connected = True
        health.last_connected_at = _now()
        logger.info("relay %s: connected", self.url)
        await call_hook(self._settings.on_health_change, self.url, self.health())

    async def _mark_disconnected(self, reason: str) -> None:
        if not self._health.connected:
            return
        self._health.connected = False
        self._record_error(reason, logging.INFO if reason == CLOSED_BY_POOL else logging.WARNING)
        await call_hook(self._settings.on_health_change, self.url, self.health())

    def _record_error(self, message: str, level: int) -> None:
        self._health.last_error = message
        self._health.last_error_at = _now()
        logger.log(level, "relay %s: %s", self.url, message)

    def _fail_pending(self, reason: str) -> None:
        for waiters in self._pending.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(PublishResult(None, reason))
        self._pending.clear()

    # -- incoming --------------------------------------------------------------------------
    async def _on_frame(self, raw: str | bytes) -> None:
        try:
            if isinstance(raw, str) and frame_too_large(raw, self._settings.max_message_bytes):
                raise MalformedFrame(f"frame of {len(raw)} chars exceeds {self._settings.max_message_bytes} bytes")
            message = parse_frame(raw)
        except MalformedFrame as exc:
            self._health.malformed += 1
            logger.warning("relay %s: dropped malformed frame: %s", self.url, exc)
            return
        handler = self._HANDLERS.get(message[0])
        if handler is None:
            logger.debug("relay %s: ignored %s frame", self.url, message[0])
            return
        await handler(self, message)

    async def _on_event(self, message: list[Any]) -> None:
        if message[1] not in self._subscriptions:
            logger.debug("relay %s: event for unknown subscription %r", self.url, message[1])
            return
        self._health.events_received += 1
        self._health.last_event_at = _now()
        await self._settings.deliver(self.url, message[2])

    async def _on_ok(self, message: list[Any]) -> None:
        event_id, accepted = message[1], message[2]
        text = message[3] if len(message) > 3 else ""
        if accepted:
            self._health.ok_count += 1
        else:
            self._health.refused_count += 1
        waiters = self._pending.pop(event_id, None)
        if waiters is None and event_id == "" and self._pending:
            # nostr-relay (Python) answers a refused event with an empty id. It handles one frame
            # at a time per connection, so the refusal belongs to the oldest unanswered publish.
            event_id = next(iter(self._pending))
            waiters = self._pending.pop(event_id)
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(PublishResult(accepted, text))
        if self._settings.on_ok is not None:  # (the bridge sets none: no coroutine per OK)
            await call_hook(self._settings.on_ok, self.url, event_id, accepted, text)

    async def _on_eose(self, message: list[Any]) -> None:
        self._closed_attempts.pop(message[1], None)  # the relay took the REQ: start backoff over
        await call_hook(self._settings.on_eose, self.url, message[1])

    async def _on_closed(self, message: list[Any]) -> None:
        sub_id, reason = message[1], message[2] if len(message) > 2 else ""
        self._health.last_closed = f"{sub_id}: {reason}"
        logger.warning("relay %s closed subscription %r: %s", self.url, sub_id, reason)
        if sub_id in self._subscriptions and not reason.startswith(FINAL_CLOSED_PREFIXES):
            retry = asyncio.create_task(self._resubscribe_later(sub_id), name=f"relay-resub:{self.url}")
            self._retries.add(retry)
            retry.add_done_callback(self._retries.discard)

    async def _resubscribe_later(self, sub_id: str) -> None:
        attempt = self._closed_attempts.get(sub_id, 0)
        self._closed_attempts[sub_id] = attempt + 1
        await asyncio.sleep(self._backoff_delay(attempt))
        subscription = self._subscriptions.get(sub_id)
        if subscription is not None:
            self.send_req(subscription)

    async def _on_notice(self, message: list[Any]) -> None:
        notices = self._health.notices
        notices.append(message[1])
        del notices[:-MAX_NOTICES]
        logger.info("relay %s notice: %s", self.url, message[1])

    _HANDLERS: dict[str, Callable[[RelayConnection, list[Any]], Awaitable[None]]] = {
        "EVENT": _on_event,
        "OK": _on_ok,
        "EOSE": _on_eose,
        "CLOSED": _on_closed,
        "NOTICE": _on_notice,
    }
