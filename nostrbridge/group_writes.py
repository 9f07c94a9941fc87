"""Writes a group commit holds back to its end: its replies as one INSERT, its outcomes as one UPDATE.

In a group (`nostrbridge.bridge.group`) most messages end in a refusal or a drop: one outbox row
(the `cant-do`) and one inbox outcome each. Written one statement at a time they were a fifth of
the bridge's database thread (docs/PERFORMANCE.md); here the group's reply rows go to the
database as one multi-row INSERT and its outcomes as one UPDATE, flushed inside the group's
transaction just before its COMMIT.

Only a write made at the group's own level is held: no savepoint opened inside the group is
active (a `transaction.atomic(savepoint=False)` block belongs to the level it is in). Such a
write can only be undone together with the whole group, so holding it to the group's end changes
nothing a rollback could show: the group rolls back as a whole (the held writes are dropped with
it) or commits with them. A write inside a savepoint (a handler's `ctx.atomic()`) runs at once,
as before, and a savepoint rolled back takes it along; one opened after a held write cannot undo
that write, which was made before it. If the flush fails, the group rolls back and its messages
run again one at a time (`nostrbridge.bridge.group`), where nothing is held. So exactly-once and
"every reply in the outbox in the transaction of its state change" hold unchanged.

What a held write may not do: be read back in the group before its end. No handler of a group
reads another message's reply row or inbox outcome; a `cant-do` reply, the one row held, is
never looked up by anyone but the publisher after commit. Replies held are flushed after the
rows written at once in the same group, so they get higher ids (a client matches replies by
`request_id`, not by arrival order), and held rows carry the flush's time: a reply's
`created_at`, an outcome's `processed_at`.
"""

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import models
from django.utils import timezone

from nostrbridge.models import InboundEvent, InboundStatus, OutboundMessage
from nostrbridge.statement_sql import quoted_column, table_name
from nostrbridge.statements import db_connection, insert_rows, prep_lookup, prep_value, run_statement
from nostrbridge.wake import OUTBOX_CHANNEL, wake_on_commit

# Rows per statement: far under SQLite's and PostgreSQL's parameter limits (13 per outbox row).
CHUNK = 200


@dataclass
class Reply:
    values: dict[str, Any]  # the OutboundMessage columns by attname
    written: Callable[[int], None] | None  # given the row's primary key once it is inserted


@dataclass
class GroupWrites:
    """The held writes of one group, and the connection it runs on."""

    db: Any
    depth: int  # savepoints already open when the group began (a test's own transaction)
    begin: Callable[[], None] | None = None  # begins the group's transaction (`group_begin`)
    replies: list[Reply] = field(default_factory=list)
    outcomes: dict[int, dict[str, Any]] = field(default_factory=dict)


_local = threading.local()


@contextlib.contextmanager
def group_writes(*, begin: Callable[[], None] | None = None) -> Iterator[GroupWrites]:
    """Hold this thread's group-level reply rows and outcomes until the block ends without an
    exception, then write them. Call it inside the group's `transaction.atomic()`: the flush is
    then part of the group's transaction, and an exception (the flush's too) rolls it all back.
    `begin`: the group's transaction is begun lazily, by this call (`group_begin`), before the
    first statement that must run in it; then the block must be inside the context that call
    enters it in, so that it ends after the flush."""
    db = db_connection()
    writes = GroupWrites(db=db, depth=len(db.savepoint_ids), begin=begin)
    _local.writes = writes
    try:
        yield writes
        _local.writes = None  # the flush itself writes at once
        if writes.replies or writes.outcomes:
            _begin(writes)
        flush(writes)
    finally:
        _local.writes = None


def group_begin() -> None:
    """A statement that must be part of the group's transaction comes next (a handler in the
    group, a write that is not held): begin it if the group has not yet. No-op outside a group,
    and in a group whose transaction is open."""
    writes: GroupWrites | None = getattr(_local, "writes", None)
    if writes is not None:
        _begin(writes)


def _begin(writes: GroupWrites) -> None:
    begin, writes.begin = writes.begin, None
    if begin is not None:
        begin()
        # Inside a caller's transaction (a test's) the group's is a savepoint: the group's level.
        writes.depth = len(writes.db.savepoint_ids)


def holding() -> GroupWrites | None:
    """The group's held writes if a write made now may join them: in a group, at its own level
    (no savepoint opened since it began), in a transaction not already doomed."""
    writes: GroupWrites | None = getattr(_local, "writes", None)
    if writes is None:
        return None
    db = writes.db
    if db.needs_rollback or any(db.savepoint_ids[writes.depth :]):
        return None
    return writes


def hold_reply(writes: GroupWrites, values: dict[str, Any], *, written: Callable[[int], None] | None) -> None:
    """An outbox row to insert at the group's end; `written(pk)` runs when it is inserted."""
    writes.replies.append(Reply(values, written))


def hold_outcome(writes: GroupWrites, pk: int, values: dict[str, Any]) -> None:
    """An inbox outcome (`inbox_finish`'s values) to write at the group's end. The first one held
    for a row wins: a later one would find the row no longer PROCESSING and change nothing."""
    writes.outcomes.setdefault(pk, values)


def flush(writes: GroupWrites) -> None:
    if writes.replies:
        insert_replies(writes.replies)
        writes.replies = []
    if writes.outcomes:
        _update_outcomes(writes.outcomes)
        writes.outcomes = {}


def insert_replies(replies: list[Reply]) -> None:
    """The rows as multi-row INSERTs (`written(pk)` called for each row that has one)."""
    for start in range(0, len(replies), CHUNK):
        chunk = replies[start : start + CHUNK]
        rows = [reply.values for reply in chunk]
        if not any(reply.written for reply in chunk):
            insert_rows(OutboundMessage, rows)
            wake_on_commit(OUTBOX_CHANNEL)
            continue
        # The driver may return the rows in any order: matched by the unique event id.
        returned = insert_rows(OutboundMessage, rows, returning=("id", "event_id"))
        pks = {event_id: pk for pk, event_id in returned}
        for reply in chunk:
            if reply.written is not None:
                reply.written(pks[reply.values["event_id"]])


def _update_outcomes(outcomes: dict[int, dict[str, Any]]) -> None:
    # `processed_at` is the flush's time, as `created_at` is for the held replies: the outcome is
    # written now, a few milliseconds after its handler, and one value shared by the group's
    # rows is one parameter, not a `CASE` branch and a datetime conversion per row.
    now = timezone.now()
    for values in outcomes.values():
        values["processed_at"] = now
    pks = list(outcomes)
    for start in range(0, len(pks), CHUNK):
        chunk = {pk: outcomes[pk] for pk in pks[start : start + CHUNK]}
        update_by_pk(InboundEvent, rows=chunk, where={"status": InboundStatus.PROCESSING.value})


def update_by_pk(model: type[models.Model], *, rows: dict[Any, dict[str, Any]], where: dict[str, Any]) -> int:
    """One UPDATE for several rows, each with its own values, by primary key:
    `SET column = CASE id WHEN … THEN … END` for a column whose values differ, `column = value`
    for one they all share; `WHERE id IN (…)` and each `where` column equal to its value. Every
    row sets the same columns (by field name; plain columns, no foreign keys). Returns the row count."""
    db = db_connection()
    pks = list(rows)
    meta = model._meta
    pk_column = quoted_column(model, meta.pk.attname)
    pk_params = [prep_lookup(meta.pk, pk, db) for pk in pks]
    assignments: list[str] = []
    params: list[Any] = []
    for name in rows[pks[0]]:
        column_field = _concrete(model, name)
        column = quoted_column(model, name)
        values = [rows[pk][name] for pk in pks]
        first = values[0]
        if all(value == first and type(value) is type(first) for value in values):
            assignments.append(f"{column} = %s")
            params.append(prep_value(column_field, first, db))
            continue
        assignments.append(f"{column} = CASE {pk_column}{' WHEN %s THEN %s' * len(pks)} END")
        for pk_param, value in zip(pk_params, values, strict=True):
            params += [pk_param, prep_value(column_field, value, db)]
    conditions = [f"{pk_column} IN ({', '.join(['%s'] * len(pks))})"]
    params += pk_params
    for name, value in where.items():
        conditions.append(f"{quoted_column(model, name)} = %s")
        params.append(prep_lookup(_concrete(model, name), value, db))
    sql = f"UPDATE {table_name(model)} SET {', '.join(assignments)} WHERE {' AND '.join(conditions)}"
    return int(run_statement(db, sql, params))


def _concrete(model: type[models.Model], name: str) -> models.Field:
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field), name  # a column, not a reverse relation
    return field
