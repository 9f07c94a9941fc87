"""Group commit: a batch of claimed inbound events in one transaction, a savepoint per write.

Per-message transactions cost the bridge a COMMIT (on SQLite a WAL write) for every `orders`
query. Here consecutive messages share one transaction. Inside it every transaction a handler
opens (`ctx.atomic()`, a service's `transaction.atomic()`, the dispatcher's cant-do reply)
becomes a savepoint, so each message's writes commit or roll back exactly as they would alone:
a `CantDo` or a crash inside its final transaction leaves none of that transaction's writes
behind, and the row is answered, retried or parked inside the group. A message that writes
nothing before it is refused costs no savepoint at all. Exactly-once still holds: each
message's outcome (`inbox_finish`), its state change and its outbox rows commit together,
with the rest of the group or not at all; the claims (committed before) keep the leases, so a
crash mid-group leaves every row of the group claimable again with nothing of it applied.

Only actions whose handlers never leave the database join a group
(`BridgeWiring.group_commit_actions`): any other message ends the group (commit), then is
handed to the bridge's network lane (`nostrbridge.bridge.lane`), or without one runs alone with
its handler's own short transactions, since no network call may happen inside a transaction.
So does a database-only message that must not overtake one already in the lane. If the group
itself fails — an exception outside the handlers' transactions, a statement that aborts the
transaction on PostgreSQL, or the COMMIT (a deferred foreign key, a full disk) — it is rolled
back and its messages are run again one at a time, each in its own transactions (or handed to
the lane), so a poison message still fails alone.
"""

import logging
import threading
from collections.abc import Callable, Mapping

from django.db import DatabaseError, transaction

from nostrbridge.context import InboundContext
from nostrbridge.dispatch import HandlerLane, NeedsOwnTransaction, dispatch_opened, process_inbound
from nostrbridge.group_writes import group_writes
from nostrbridge.inbox import inbox_fail
from nostrbridge.models import InboundEvent
from nostrbridge.protocol.nip01 import Event

logger = logging.getLogger(__name__)


def process_rows(
    rows: list[InboundEvent],
    *,
    stop: threading.Event,
    process_alone: Callable[[InboundEvent], None],
    release: Callable[[list[int]], None],
    lane: HandlerLane | None = None,
    first: Callable[[], None] | None = None,
    checked: Mapping[str, Event] | None = None,
) -> bool:
    """Process claimed `rows` in order, in as few transactions as their actions allow.

    `process_alone(row)`: the one-message path (its own transactions, poison guard); `release`
    hands rows back when `stop` is set before they ran; `lane`: where messages that leave a
    group go once it committed (None: they run here). `first`: writes that commit with the
    first group, run in its transaction before its messages (the publisher's record of earlier
    batches: the pages both write are then written once); returns whether they committed (not
    if that group rolled back, or none ran), so the caller can write them on their own.
    `checked`: by event id, the intake's parsed and signature-checked events the rows were stored
    from (`process_inbound`'s `checked`); a row rerun alone after a rollback is checked afresh.
    """
    index = 0
    committed = False
    while index < len(rows):
        if stop.is_set():
            release([row.pk for row in rows[index:]])
            return committed
        index, ran_first = _group(
            rows,
            index,
            stop=stop,
            process_alone=process_alone,
            lane=lane,
            first=None if committed else first,
            checked=checked or {},
        )
        committed = committed or ran_first
    return committed


def _group(
    rows: list[InboundEvent],
    start: int,
    *,
    stop: threading.Event,
    process_alone: Callable[[InboundEvent], None],
    lane: HandlerLane | None,
    first: Callable[[], None] | None = None,
    checked: Mapping[str, Event],
) -> tuple[int, bool]:
    """Run rows[start:] in one transaction until one needs its own; return the next index and
    whether `first` ran and committed with them."""
    tried: list[InboundEvent] = []
    alone: InboundContext | None = None
    try:
        # The replies and outcomes written at the group's own level (refusals, drops) are held
        # and written in one statement each just before the COMMIT (nostrbridge.group_writes).
        with transaction.atomic(), group_writes():
            if first is not None:
                first()
            for row in rows[start:]:
                if stop.is_set():
                    break
                tried.append(row)
                try:
                    process_inbound(row.pk, row=row, grouped=True, lane=lane, checked=checked.get(row.event_id))
                except NeedsOwnTransaction as exc:
                    alone = exc.ctx  # nothing of it was written: its savepoint never opened
                    break
    except Exception:  # noqa: BLE001 — the group rolled back as a whole: redo its messages one by one
        logger.warning(
            "group of %s inbound event(s) rolled back; processing them one at a time", len(tried), exc_info=True
        )
        for row in tried:
            process_alone(row)
        return start + len(tried), False
    if alone is not None and lane is not None:
        lane.submit(alone)
    elif alone is not None:
        _dispatch_alone(alone)
    return start + len(tried), first is not None


def _dispatch_alone(ctx: InboundContext) -> None:
    """The message that ended a group, already opened: its handler with its own transactions."""
    try:
        dispatch_opened(ctx)
    except DatabaseError:
        raise  # the database is gone: the lease makes the row come back later
    except Exception as exc:  # noqa: BLE001 — last-resort guard, as for a message processed alone
        logger.exception("inbound event %s crashed outside its handler", ctx.inbound_pk)
        if ctx.inbound_pk is not None:
            inbox_fail(pk=ctx.inbound_pk, error=f"{type(exc).__name__}: {exc}")
