"""The Channels side of the relay bridge: long-running consumers on the named channels
`mostro-inbox` and `mostro-outbox`, run by a channels `Worker` inside the bridge process.

`InboxConsumer` is the bridge into the app: on every nudge it claims stored inbound events
(`inbox_claim`, a conditional UPDATE, so several bridge processes never take the same row) and
runs them in the database thread: database-only messages of a batch in one transaction with a
savepoint per handler transaction (group commit, `nostrbridge.bridge.group`); any other message
goes to the network lane (`nostrbridge.bridge.lane`), where a hanging LND call holds up only the
messages of the same order, trade key or identity.
Nudges are hints: the bridge also sends one every `inbox_poll_s`, so a lost nudge only costs
latency. `OutboxWakeConsumer` turns a nudge from another process into a publisher wake-up.

Local nudges (the bridge's intake, its poll timer, services running in this process) are put
straight into the consumer's queue; nudges from other processes arrive through the channel
layer (Redis), which several bridge processes share.
"""

import asyncio
import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from channels.consumer import AsyncConsumer
from channels.routing import ChannelNameRouter
from channels.worker import Worker
from django.db import DatabaseError, transaction

from nostrbridge.bridge.dbthread import db_call
from nostrbridge.bridge.group import process_rows
from nostrbridge.bridge.intake import split_replayed, store_batch
from nostrbridge.bridge.lane import BatchHandoff, NetworkLane
from nostrbridge.dispatch import HandlerLane, process_inbound
from nostrbridge.inbox import (
    inbox_claim_rows,
    inbox_claimable_exists,
    inbox_fail,
    inbox_release,
    inbox_store_claimed,
)
from nostrbridge.models import InboundEvent, InboundStatus
from nostrbridge.protocol.nip01 import Event
from nostrbridge.wake import INBOX_CHANNEL, OUTBOX_CHANNEL

logger = logging.getLogger(__name__)

# Intake inserts and outbox bookkeeping queue behind a batch in the database thread, so a batch
# must stay well under the reply-latency budget (32 × ~2.5 ms); below ~16 the claim queries
# themselves start to cost throughput at 300 messages/s (docs/PERFORMANCE.md).
DEFAULT_CLAIM_BATCH = 32
DATABASE_RETRY_S = 1.0

T = TypeVar("T")


@functools.cache
def host_tag() -> str:
    """Where pids mean the same thing: host name, boot id and pid namespace.

    Two containers may share a host name (and a boot id) but never a pid namespace; two hosts
    may share a host name and the root pid namespace's number but not a boot id.
    """
    boot = _read_proc(lambda: Path("/proc/sys/kernel/random/boot_id").read_text()).replace("-", "")[:8]
    pid_namespace = "".join(filter(str.isdigit, _read_proc(lambda: os.readlink("/proc/self/ns/pid"))))
    return f"{socket.gethostname()[:30]}~{boot or '?'}~{pid_namespace or '?'}"


def _read_proc(read: Callable[[], str]) -> str:
    try:
        return read().strip()
    except OSError:  # not Linux: the host name alone
        return ""


def make_worker_id() -> str:
    """`host-tag:pid:nonce`; the pid lets a restarted bridge release the leases of a dead one."""
    return f"{host_tag()}:{os.getpid()}:{os.urandom(3).hex()}"


def release_dead_leases() -> int:
    """Make rows claimed by a dead bridge of this host (and pid namespace) claimable now instead
    of at lease expiry. Only rows whose owner pid is gone are touched; a live owner keeps its lease.
    """
    rows = InboundEvent.objects.filter(status=InboundStatus.PROCESSING, locked_by__startswith=f"{host_tag()}:")
    dead = {owner for owner in rows.values_list("locked_by", flat=True).distinct() if not _pid_alive(owner)}
    if not dead:
        return 0
    released = rows.filter(locked_by__in=dead).update(status=InboundStatus.RECEIVED, locked_until=None)
    logger.warning("released %s inbound event(s) leased by dead bridge(s) %s", released, ", ".join(sorted(dead)))
    return released


def _pid_alive(worker_id: str) -> bool:
    try:
        pid = int(worker_id.split(":")[1])
    except (IndexError, ValueError):
        return True  # not ours to judge: wait for the lease to expire
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def drain_batch(*, worker_id: str, limit: int, stop: threading.Event, network: NetworkLane | None = None) -> int:
    """Claim up to `limit` rows and process them; return how many were claimed.

    Runs in the database thread; messages `network` takes are handed to it (None: they run
    here). Rows still unprocessed when `stop` is set are handed back (not counted as an
    attempt), so a graceful shutdown leaves no lease behind. While it runs,
    `in_batch()` is true in this thread (the bridge then nudges its publisher once per batch).
    """
    _batch_state.active = True
    try:
        return _drain(worker_id, limit, stop, network)
    finally:
        _batch_state.active = False


def in_batch() -> bool:
    return getattr(_batch_state, "active", False)


_batch_state = threading.local()


def _drain(worker_id: str, limit: int, stop: threading.Event, network: NetworkLane | None) -> int:
    claimed_at = time.monotonic()
    # The claimed rows themselves, read back by the claim (one query for the batch).
    held = () if network is None else network.held_rows()
    mine = inbox_claim_rows(worker_id=worker_id, limit=limit, exclude=held)
    if not mine:
        return 0
    _process_claimed(mine, worker_id=worker_id, stop=stop, network=network, claimed_at=claimed_at)
    return len(mine)


def store_and_process(
    batch: list[tuple[str, dict, bool]],
    *,
    worker_id: str,
    stop: threading.Event,
    network: NetworkLane | None = None,
    first: Callable[[], None] | None = None,
    limit: int = DEFAULT_CLAIM_BATCH,
    checked: Mapping[str, tuple[dict, Event]] | None = None,
) -> tuple[int, int, bool]:
    """Store the intake's batch and, when no older row waits to be claimed, process its new rows
    at once, stored already claimed (`inbox_store_claimed`). Returns (new rows left for the
    consumer to claim: nudge it then, rows processed here, whether `first` committed).
    `first`: writes that commit with the store, in its transaction (the publisher's record of
    earlier batches: no transaction of their own); see `_stored_with`.

    One trip to the database thread instead of three (store; the consumer's claim; its empty
    claim that ends the drain) and four statements fewer per batch (docs/PERFORMANCE.md). The
    store commits before the group that processes the rows begins, as a claim does; the rows
    then run exactly as a claimed batch (`_process_claimed`). Older claimable rows (a backlog,
    rows handed back, expired leases) go first: the batch is then only stored, for the
    consumer's claim, which takes rows in id order. So are batches at shutdown (`stop`), and
    batches of more than `limit` events (a backlog: the consumer answers them `limit` at a time,
    each batch's replies published once it commits, not all after one long group).

    `checked` (`Intake.take_checked`): by event id, the event object the intake parsed and whose
    signature it verified, with its `Event`. A new row stored from exactly that object (the
    first copy of its id in the batch: the one `inbox_store_claimed` stores) is processed on that
    `Event` instead of parsing and verifying its stored JSON again; any other row, as before.
    """
    if len(batch) > limit or stop.is_set():
        stored, ran_first = _stored_with(first, lambda: store_batch(batch))
        return stored, 0, ran_first
    held = () if network is None else network.held_rows()
    if inbox_claimable_exists(exclude=held):
        stored, ran_first = _stored_with(first, lambda: store_batch(batch))
        return stored, 0, ran_first
    claimed_at = time.monotonic()

    def store_claimed() -> list[InboundEvent]:
        rows: list[InboundEvent] = []
        for catch_up, items in split_replayed(batch):
            rows += inbox_store_claimed(items=items, worker_id=worker_id, catch_up=catch_up)
        return rows

    rows, ran_first = _stored_with(first, store_claimed)
    rows.sort(key=lambda row: row.pk)
    if not rows:
        return 0, 0, ran_first
    events = _checked_events(batch, checked or {})
    _batch_state.active = True
    try:
        _process_claimed(rows, worker_id=worker_id, stop=stop, network=network, claimed_at=claimed_at, checked=events)
    finally:
        _batch_state.active = False
    return 0, len(rows), ran_first


def _stored_with(first: Callable[[], None] | None, store: Callable[[], T]) -> tuple[T, bool]:
    """`store()`, with `first()` in its transaction when given; whether `first` committed.

    The store commits before any of its rows is processed either way. If that transaction fails
    (the database went away, or `first` wrote what fails at COMMIT), the batch is stored again on
    its own and `first` is left to the caller."""
    if first is None:
        return store(), False
    try:
        with transaction.atomic():
            stored = store()
            first()
    except DatabaseError:
        logger.warning("storing an inbound batch with the writes it carries failed; storing it alone", exc_info=True)
        return store(), False
    return stored, True


def _process_claimed(
    mine: list[InboundEvent],
    *,
    worker_id: str,
    stop: threading.Event,
    network: NetworkLane | None,
    claimed_at: float,
    checked: Mapping[str, Event] | None = None,
) -> None:
    # Group commit (nostrbridge.bridge.group): one transaction for the batch, savepoints inside.
    lane = None if network is None else BatchHandoff(network, claimed_at)
    process_rows(
        mine,
        stop=stop,
        process_alone=functools.partial(_process_one, lane=lane),
        release=lambda pks: inbox_release(pks=pks, worker_id=worker_id),
        lane=lane,
        checked=checked,
    )


def _checked_events(batch: list[tuple[str, dict, bool]], checked: Mapping[str, tuple[dict, Event]]) -> dict[str, Event]:
    """The checked `Event`s of the event objects the store kept: per id the batch's first copy
    (`nostrbridge.inbox`'s store keeps the first; a later copy of the same id from another relay
    was not checked itself, the intake only remembered its id)."""
    events: dict[str, Event] = {}
    seen: set[str] = set()
    for _, raw, _ in batch:
        event_id = raw["id"]
        if event_id in seen:
            continue
        seen.add(event_id)
        entry = checked.get(event_id)
        if entry is not None and entry[0] is raw:
            events[event_id] = entry[1]
    return events


def _process_one(row: InboundEvent, *, lane: HandlerLane | None) -> None:
    pk = row.pk
    try:
        process_inbound(pk, row=row, lane=lane)
    except DatabaseError:
        raise  # the database is gone: the lease makes the row come back later
    except Exception as exc:  # noqa: BLE001 — last-resort guard: nothing a user sends may stop the consumer
        logger.exception("inbound event %s crashed outside its handler", pk)
        inbox_fail(pk=pk, error=f"{type(exc).__name__}: {exc}")


class InboxLane:
    """State shared by the bridge and its InboxConsumer: batch size, stop flag, idleness."""

    def __init__(
        self,
        *,
        worker_id: str,
        batch: int = DEFAULT_CLAIM_BATCH,
        after_batch: Callable[[], None] = lambda: None,
        network: NetworkLane | None = None,
    ):
        self.worker_id = worker_id
        self.network = network
        self._after_batch = after_batch  # e.g. wake the publisher for the replies just committed
        self.batch = batch
        self.stopping = threading.Event()  # read by drain_batch in the database thread
        self.processed = 0
        self._empty_at = 0.0  # monotonic time at which a claim last came back empty
        self.idle = asyncio.Event()
        self.idle.set()

    async def drain(self, nudged_at: float | None) -> None:
        # A nudge older than the last empty claim is stale: that claim already saw its rows.
        if self.stopping.is_set() or (nudged_at is not None and nudged_at < self._empty_at):
            return
        self.idle.clear()
        try:
            while not self.stopping.is_set():
                started = time.monotonic()
                claimed = await self._drain_once()
                self.processed += claimed
                if claimed:
                    self._after_batch()
                if claimed == 0:
                    self._empty_at = started
                    break
        finally:
            self.idle.set()

    async def _drain_once(self) -> int:
        try:
            return await db_call(drain_batch)(
                worker_id=self.worker_id, limit=self.batch, stop=self.stopping, network=self.network
            )
        except DatabaseError:
            logger.exception("inbox drain failed; retrying in %.0f s", DATABASE_RETRY_S)
            await asyncio.sleep(DATABASE_RETRY_S)
            return 0


class _BridgeConsumer(AsyncConsumer):
    # These consumers only receive on the Worker's named channels; they need no per-instance
    # reply channel, so no channel layer is attached to them (an unknown alias yields None).
    channel_layer_alias = "mostro-bridge-no-layer"

    async def dispatch(self, message: dict[str, Any]) -> None:
        # AsyncConsumer.dispatch closes old connections before every message (a reconnect per
        # nudge with CONN_MAX_AGE=0); db_call does that hygiene once a second instead.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            logger.warning("bridge consumer ignored a %r message", message.get("type"))
            return
        await handler(message)


class InboxConsumer(_BridgeConsumer):
    def __init__(self, *, lane: InboxLane):
        self.lane = lane

    async def wake(self, message: dict[str, Any]) -> None:
        await self.lane.drain(message.get("at"))


class OutboxWakeConsumer(_BridgeConsumer):
    def __init__(self, *, on_wake: Callable[[], None]):
        self.on_wake = on_wake

    async def wake(self, message: dict[str, Any]) -> None:
        self.on_wake()


class BridgeWorker(Worker):
    """channels' Worker, plus `nudge()` for messages that need no trip through the layer."""

    # asgiref's default (0.1 s) woke the event loop ten times a second, idle or not, to look for
    # consumers that ended; the bridge's two consumers live as long as the worker (an error in
    # one is logged at most a second later).
    application_checker_interval = 1.0

    def __init__(self, *, lane: InboxLane, on_outbox_wake: Callable[[], None], channel_layer: Any):
        application = ChannelNameRouter(
            {
                INBOX_CHANNEL: InboxConsumer.as_asgi(lane=lane),
                OUTBOX_CHANNEL: OutboxWakeConsumer.as_asgi(on_wake=on_outbox_wake),
            }
        )
        super().__init__(application, [INBOX_CHANNEL, OUTBOX_CHANNEL], channel_layer)

    async def handle(self) -> None:
        # Worker.handle leaves its listener tasks running when it is cancelled; stop them too.
        listeners = [asyncio.ensure_future(self.listener(channel)) for channel in self.channels]
        try:
            await asyncio.gather(*listeners)
        finally:
            for listener in listeners:
                listener.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)

    def nudge(self, channel: str, message: dict[str, Any]) -> None:
        scope = {"type": "channel", "channel": channel}
        self.get_or_create_application_instance(channel, scope).put_nowait(message)

    async def application_exception(self, exception: BaseException, application_details: dict[str, Any]) -> None:
        # The instance is recreated by the next nudge; log with the traceback, as a worker must.
        logger.error("bridge consumer for %s failed", application_details["scope"].get("channel"), exc_info=exception)

    def cancel_instances(self) -> None:
        for details in self.application_instances.values():
            details["future"].cancel()
        self.application_instances.clear()
