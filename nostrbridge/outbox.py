"""Write outbound Nostr events as rows in the caller's transaction; the bridge publishes them.

Signing and encryption are CPU-only, so they happen here, inside the transaction: the row
holds the exact signed event, and a crash after commit can only delay it, never change it.

Inside `outbox_collect` (the bridge's database thread, for the batch it is processing) the rows
are written already leased, as the publisher's claim would lease them, and each committed row is
handed back to the bridge, which publishes it without claiming it again (docs/PERFORMANCE.md).
`outbox_handed` does the same for any thread of a process whose bridge registered its publisher
(`outbox_handoff_set`): the network lane's handlers, the invoice watcher's reports.
"""

import contextlib
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from mostro_site.config import node_config
from nostrbridge.group_writes import Reply, hold_reply, holding, insert_replies
from nostrbridge.models import AddressableClock, OutboundMessage
from nostrbridge.node_identity import node_secret_key
from nostrbridge.protocol.enums import CantDoReason
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.nip01 import Event
from nostrbridge.protocol.transport import reply_v2
from nostrbridge.statements import advance_clock, db_connection, insert_instance, insert_row, insert_row_pk
from nostrbridge.wake import OUTBOX_CHANNEL, wake_on_commit

logger = logging.getLogger(__name__)

LEASE_REUSE_S = 0.5  # a collector's lease is shared by the rows it writes within this time


@functools.lru_cache(maxsize=1)
def node_keys() -> Keys:
    return Keys(node_secret_key())


def enqueue_message(*, recipient_pubkey: str, message: Message, order_id: uuid.UUID | str | None = None) -> str:
    """A direct message from the node, wrapped for the configured transport; returns its event id."""
    config = node_config()
    if config.protocol_version == 1:
        from nostrbridge.protocol.giftwrap import reply_v1

        event = reply_v1(message, node_keys(), recipient_pubkey)
    else:
        event = reply_v2(message, node_keys(), recipient_pubkey, dm_days=config.dm_days)
    # One per inbound message: a precompiled INSERT instead of Model.objects.create (hot path).
    event_json = event.to_json()
    values: dict[str, Any] = {
        "event_id": event.id,
        "kind": event.kind,
        "recipient_pubkey": recipient_pubkey,
        "action": message.action.value,
        "order_id": order_id,
        "event_json": event_json,
    }
    collector: _Collector | None = getattr(_collecting, "collector", None)
    held = holding()
    if held is not None:
        # At a group's own level (a refusal): written with the group's other replies in one
        # INSERT before its COMMIT (nostrbridge.group_writes), `created_at` the INSERT's time.
        if collector is None:
            hold_reply(held, values, written=None)
        else:
            values["next_attempt_at"], ends_at = collector.lease()
            hold_reply(held, values, written=functools.partial(collector.on_commit_event, event, event_json, ends_at))
    elif (batch := _batch_here()) is not None:
        # Inside `replies_together`, at its level: written with the block's other replies.
        written = None
        if collector is not None:
            values["next_attempt_at"], ends_at = collector.lease()
            written = functools.partial(collector.on_commit_event, event, event_json, ends_at)
        batch.replies.append(Reply(values, written))
    elif collector is None:
        insert_row(OutboundMessage, **values)
        _wake_publisher()
    else:
        values["next_attempt_at"], ends_at = collector.lease()
        pk = insert_row_pk(OutboundMessage, **values)
        collector.on_commit(pk, event, event_json, ends_at)
    return event.id


@dataclass
class ReplyBatch:
    db: Any
    depth: int  # savepoints open when the block began
    replies: list[Reply]

    def flush(self) -> None:
        """Write the replies held so far now (rows written after this come after them)."""
        if self.replies:
            insert_replies(self.replies)
            self.replies = []


_batching = threading.local()


@contextlib.contextmanager
def replies_together() -> Iterator[ReplyBatch]:
    """The rows this thread queues in the block (`enqueue_message`, and `enqueue_event` /
    `enqueue_signed`, which then return their row unsaved) go to the outbox as one multi-row
    INSERT when the block ends without an exception, instead of one INSERT each (a trade step
    sends two or three: docs/PERFORMANCE.md).

    Use it inside the transaction of the state change (`with atomic(), replies_together():`): the
    INSERT then runs before that transaction commits, so "every reply in the outbox in the
    transaction of its state change" holds; an exception drops the held rows with the rollback.
    Only a message queued at the block's own level is held (as `nostrbridge.group_writes` does):
    one queued inside a savepoint opened in the block is written at once and goes with its
    savepoint. Nothing may read a held row back before the block ends; nothing does (reply rows
    are read only by the publisher, after commit). Held rows keep the order they were queued in,
    after any row written at once meanwhile: `flush()` writes them at a point that must come first."""
    db = db_connection()
    if not db.in_atomic_block:
        raise RuntimeError("replies_together must run inside the transaction of the state change")
    previous = getattr(_batching, "batch", None)
    batch = ReplyBatch(db=db, depth=len(db.savepoint_ids), replies=[])
    _batching.batch = batch
    try:
        yield batch
        _batching.batch = previous  # the flush itself writes at once
        batch.flush()
    finally:
        _batching.batch = previous


def _batch_here() -> ReplyBatch | None:
    batch: ReplyBatch | None = getattr(_batching, "batch", None)
    if batch is None or batch.db.needs_rollback or len(batch.db.savepoint_ids) != batch.depth:
        return None
    return batch


def enqueue_cant_do(
    *, recipient_pubkey: str, reason: CantDoReason, request_id: int | None, order_id: uuid.UUID | None
) -> str:
    message = Message.cant_do(reason, request_id=request_id, id=order_id)
    return enqueue_message(recipient_pubkey=recipient_pubkey, message=message, order_id=order_id)


def enqueue_event(*, event: Event, order_id: uuid.UUID | str | None = None, d_tag: str = "") -> OutboundMessage:
    """A public event (38383, 38384, 38385, 38386, 8383, 0, 10002) already signed by the node."""
    return _store(event, recipient_pubkey="", action="", order_id=order_id, d_tag=d_tag)


def enqueue_signed(
    *, event: Event, recipient_pubkey: str, action: str, order_id: uuid.UUID | str | None = None
) -> OutboundMessage:
    """An event signed by another key than the node's (a solver's dispute chat): stored and
    published like every other outbound event; `action` names it in the admin and the hooks."""
    return _store(event, recipient_pubkey=recipient_pubkey, action=action, order_id=order_id)


def next_created_at(*, kind: int, d_tag: str, now: int | None = None) -> int:
    """max(now, previous + 1) per (kind, d), shared by every process through the database.

    Relays keep the revision with the highest created_at (ties: lowest id), so two revisions
    in the same second could resurrect a stale state. Must run inside a transaction.

    One upsert (`advance_clock`): the row lock it takes on conflict orders concurrent callers as
    the former `get_or_create` + `SELECT … FOR UPDATE` + `UPDATE` did, in one statement instead
    of four compiled queries (every order event asks; docs/PERFORMANCE.md).
    """
    now = int(time.time()) if now is None else now
    return advance_clock(AddressableClock, key={"kind": kind, "d_tag": d_tag}, column="last_created_at", floor=now)


def _store(
    event: Event, *, recipient_pubkey: str, action: str, order_id: uuid.UUID | str | None, d_tag: str = ""
) -> OutboundMessage:
    # A precompiled INSERT … RETURNING id instead of Model.objects.create: every order event (hot path).
    collector: _Collector | None = getattr(_collecting, "collector", None)
    batch = _batch_here()
    if batch is not None:
        return _store_held(batch, collector, event, recipient_pubkey, action, order_id, d_tag)
    lease_until, ends_at = (None, 0.0) if collector is None else collector.lease()
    row = insert_instance(
        OutboundMessage(
            event_id=event.id,
            kind=event.kind,
            recipient_pubkey=recipient_pubkey,
            action=action,
            order_id=order_id,
            d_tag=d_tag,
            event_json=event.to_json(),
            next_attempt_at=lease_until,
        )
    )
    if collector is None:
        _wake_publisher()
    else:
        collector.on_commit(row.pk, event, row.event_json, ends_at)
    return row


def _store_held(
    batch: "ReplyBatch",
    collector: "_Collector | None",
    event: Event,
    recipient_pubkey: str,
    action: str,
    order_id: uuid.UUID | str | None,
    d_tag: str,
) -> OutboundMessage:
    """`_store` inside `replies_together`: the row joins the block's INSERT; the instance returned
    is not saved yet (no primary key), as nothing in the block may read the row back."""
    event_json = event.to_json()
    values: dict[str, Any] = {
        "event_id": event.id,
        "kind": event.kind,
        "recipient_pubkey": recipient_pubkey,
        "action": action,
        "order_id": order_id,
        "d_tag": d_tag,
        "event_json": event_json,
    }
    written = None
    if collector is not None:
        values["next_attempt_at"], ends_at = collector.lease()
        written = functools.partial(collector.on_commit_event, event, event_json, ends_at)
    batch.replies.append(Reply(values, written))
    return OutboundMessage(**values)


@dataclass(frozen=True)
class Collected:
    """An outbound row written leased inside `outbox_collect`, committed: the publisher's to send."""

    pk: int
    event: Event
    event_json: str
    lease_ends_at: float = 0.0  # the lease's end on this process's `time.monotonic()` clock


class _Collector:
    def __init__(self, lease_s: float) -> None:
        self.lease_s = lease_s
        self.committed: list[Collected] = []
        self._lease: tuple[datetime, float] | None = None

    def lease(self) -> tuple[datetime, float]:
        """A row written now: its `next_attempt_at`, and that time on the monotonic clock. Renewed
        when older than `LEASE_REUSE_S`, not taken once for the block (a lane's handler may wait
        seconds on LND before it writes); shared meanwhile, so a multi-row INSERT converts it
        once (`insert_rows`). A lease taken a moment before the write is only shorter."""
        now = time.monotonic()
        if self._lease is None or now + self.lease_s - self._lease[1] > LEASE_REUSE_S:
            self._lease = (timezone.now() + timedelta(seconds=self.lease_s), now + self.lease_s)
        return self._lease

    def on_commit(self, pk: int, event: Event, event_json: str, lease_ends_at: float) -> None:
        # A row whose transaction (or savepoint) rolls back is not listed: Django drops the hook.
        row = Collected(pk, event, event_json, lease_ends_at)
        db_connection().on_commit(functools.partial(self.committed.append, row))  # transaction.on_commit's own call

    def on_commit_event(self, event: Event, event_json: str, lease_ends_at: float, pk: int) -> None:
        self.on_commit(pk, event, event_json, lease_ends_at)


_collecting = threading.local()


@contextlib.contextmanager
def outbox_collect(*, lease_s: float) -> Iterator[list[Collected]]:
    """Rows this thread writes in the block (`enqueue_message`, `enqueue_event`,
    `enqueue_signed`) are written leased for `lease_s` (`next_attempt_at`, as the publisher's
    claim leases them), and each one is appended to the yielded list once its transaction
    commits, instead of waking the publisher: the caller publishes them. A row that is not
    published (the process dies) is claimed again when its lease ends, as after a claim."""
    collector = _Collector(lease_s)
    previous = getattr(_collecting, "collector", None)
    _collecting.collector = collector
    try:
        yield collector.committed
    finally:
        _collecting.collector = previous


@dataclass(frozen=True)
class LeasedHandoff:
    """This process's publisher, for rows written leased on any thread (`outbox_handed`)."""

    lease_s: float
    take: Callable[[list[Collected]], None]  # callable from any thread; must not block


_handoff: LeasedHandoff | None = None


def outbox_handoff_set(handoff: LeasedHandoff | None, *, replacing: LeasedHandoff | None = None) -> None:
    """Register the bridge's publisher (at its start); None with `replacing` unregisters it
    (at its end), unless another bridge of the process registered since."""
    global _handoff
    if handoff is not None or _handoff is replacing:
        _handoff = handoff


@contextlib.contextmanager
def outbox_handed() -> Iterator[None]:
    """Rows this thread commits in the block are written leased and handed, at the block's end, to
    the publisher registered in this process (`outbox_handoff_set`), which publishes them without
    a claim of its own (a transaction on the database thread). Without a registered publisher,
    or inside `outbox_collect` already (its caller publishes), the rows are written as before.

    Durable as the claim: a row is handed over only after its transaction committed; a row
    rolled back is not handed; a hand-off lost (the process dies) leaves the row leased, and the
    publisher's claim takes it when the lease ends. The publisher's claim skips a leased row, so
    a row is never published by both at once."""
    handoff = _handoff
    if handoff is None or getattr(_collecting, "collector", None) is not None:
        yield
        return
    with outbox_collect(lease_s=handoff.lease_s) as committed:
        try:
            yield
        finally:
            if committed:
                try:
                    handoff.take(list(committed))
                except Exception:  # noqa: BLE001 — e.g. the loop closed: the rows wait for their lease
                    logger.exception(
                        "could not hand %s outbound row(s) over; claimed after their lease", len(committed)
                    )


def _wake_publisher() -> None:
    if transaction.get_connection().in_atomic_block:
        wake_on_commit(OUTBOX_CHANNEL)
