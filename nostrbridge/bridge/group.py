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
So does a database-only message that must not overtake one already in the lane. The group's
transaction begins at its first statement that must be in it (`_Opening`): a group that such
a message ends before anything ran in it costs no BEGIN and COMMIT. If the group
itself fails — an exception outside the handlers' transactions, a statement that aborts the
transaction on PostgreSQL, or the COMMIT (a deferred foreign key, a full disk) — it is rolled
back and its messages are run again one at a time, each in its own transactions (or handed to
the lane), so a poison message still fails alone.
"""

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping

from django.db import DatabaseError, transaction

from nostrbridge.context import InboundContext, NeedsOwnTransaction
from nostrbridge.dispatch import HandlerLane, dispatch_opened, process_inbound
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
    checked: Mapping[str, Event] | None = None,
) -> None:
    """Process claimed `rows` in order, in as few transactions as their actions allow.

    `process_alone(row)`: the one-message path (its own transactions, poison guard); `release`
    hands rows back when `stop` is set before they ran; `lane`: where messages that leave a
    group go once it committed (None: they run here).
    `checked`: by event id, the intake's parsed and signature-checked events the rows were stored
    from (`process_inbound`'s `checked`); a row rerun alone after a rollback is checked afresh.
    """
    index = 0
    while index < len(rows):
        if stop.is_set():
            release([row.pk for row in rows[index:]])
            return
        index = _group(rows, index, stop=stop, process_alone=process_alone, lane=lane, checked=checked or {})


def _group(
    rows: list[InboundEvent],
    start: int,
    *,
    stop: threading.Event,
    process_alone: Callable[[InboundEvent], None],
    lane: HandlerLane | None,
    checked: Mapping[str, Event],
) -> int:
    """Run rows[start:] in one transaction until one needs its own; return the next index."""
    tried: list[InboundEvent] = []
    alone: InboundContext | None = None
    opened = _Opening()
    try:
        # The transaction outside, begun by `opened` only once a statement must run in it; the
        # replies and outcomes written at the group's own level (refusals, drops) are held and
        # written in one statement each just before the COMMIT (nostrbridge.group_writes).
        with opened.transaction, group_writes(begin=opened.begin):
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
        return start + len(tried)
    if alone is not None and lane is not None:
        lane.submit(alone)
    elif alone is not None:
        _dispatch_alone(alone)
    return start + len(tried)


class _Opening:
    """The group's transaction, begun lazily: by `begin()`, which `group_writes.group_begin()`
    calls before the group's first statement that must be in it (a message that runs its handler
    in the group, a signature refusal's write, the flush of held writes). A group whose message
    leaves it at once (`NeedsOwnTransaction`) with nothing held opens none: no BEGIN and empty
    COMMIT for a message bound for the lane. The reads before (that message's intake checks and
    gates) run in autocommit, as for a message processed alone."""

    def __init__(self) -> None:
        self.transaction = contextlib.ExitStack()
        self._begun = False

    def begin(self) -> None:
        if not self._begun:
            self._begun = True
            self.transaction.enter_context(transaction.atomic())


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
