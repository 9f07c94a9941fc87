"""The durable inbox: store every inbound event once, claim it with a lease, record the outcome.

Claims are conditional UPDATEs, so two bridge processes on PostgreSQL never process the same
row; a lease that expires (process killed mid-handler) makes the row claimable again.
"""

import json
import logging
from collections import Counter
from collections.abc import Collection
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from nostrbridge.group_writes import hold_outcome, holding
from nostrbridge.models import InboundEvent, InboundStatus
from nostrbridge.statement_sql import table_name
from nostrbridge.statements import db_connection, insert_rows, loaded_rows, run_statement, select_where, update_where

logger = logging.getLogger(__name__)

# Retries for events whose handler crashed (internal errors), before the row is parked.
MAX_ATTEMPTS = 3
LEASE_SECONDS = 60
# A handler that could not reach LND (down, restarting, no answer in time) is not poison: the
# event is retried, backing off up to a minute between tries, for this long after it arrived
# (an LND restart or an outage of a few minutes), and only then counted against MAX_ATTEMPTS.
TRANSIENT_RETRY_WINDOW_SECONDS = 900
TRANSIENT_BACKOFF_MAX_SECONDS = 60


def inbox_store(*, items: list[tuple[str, dict]], catch_up: bool = False) -> list[int]:
    """Store events not seen before; return the primary keys of the new rows.

    `items` are (relay_url, event) pairs whose outer checks (kind, PoW, signature) passed.
    A duplicate (same id from another relay, or again after a restart) only bumps seen_count.
    """
    return _store(items, catch_up=catch_up, claim=None)


def inbox_store_claimed(*, items: list[tuple[str, dict]], worker_id: str, catch_up: bool = False) -> list[InboundEvent]:
    """`inbox_store`, with the new rows stored already claimed by `worker_id` (PROCESSING, a
    lease, one attempt: what `inbox_claim_rows` would make of them) and returned whole, in id order.

    The bridge's intake stores and processes a batch in one trip to the database thread instead
    of storing, nudging its consumer, and claiming the rows back (docs/PERFORMANCE.md). The store
    commits before any of them is processed, and a process that dies in between leaves rows
    whose lease brings them back, as after a claim. Only for rows nothing older waits before
    (`inbox_claimable_exists`): a claim takes the oldest rows first.
    """
    return _store(items, catch_up=catch_up, claim=worker_id)


def inbox_claimable_exists(*, exclude: Collection[int] = ()) -> bool:
    """Is any row claimable now (RECEIVED, or a lease that ran out) apart from `exclude`?"""
    db = db_connection()
    now = db.ops.adapt_datetimefield_value(timezone.now())
    held = f" AND id NOT IN ({', '.join(['%s'] * len(exclude))})" if exclude else ""
    sql = f"SELECT 1 FROM {table_name(InboundEvent)} WHERE {_CLAIMABLE}{held} LIMIT 1"
    return bool(run_statement(db, sql, [*_claimable_params(now), *exclude], fetch=True))


# Claimable: RECEIVED, or PROCESSING with an expired lease (`locked_until` before the given now).
_CLAIMABLE = "(status = %s OR (status = %s AND locked_until < %s))"


def _claimable_params(now: object) -> list[object]:
    return [InboundStatus.RECEIVED.value, InboundStatus.PROCESSING.value, now]


def _store(items: list[tuple[str, dict]], *, catch_up: bool, claim: str | None) -> list[Any]:
    """The new rows: whole and claimed by `claim` if given, else their primary keys."""
    by_id: dict[str, tuple[str, dict]] = {}
    copies: Counter[str] = Counter()  # the same event from several relays in one batch
    for relay_url, event in items:
        by_id.setdefault(event["id"], (relay_url, event))
        copies[event["id"]] += 1
    if not by_id:
        return []
    claimed: dict[str, object] = {}
    if claim is not None:
        claimed = {
            "status": InboundStatus.PROCESSING.value,
            "locked_by": claim,
            "locked_until": timezone.now() + timedelta(seconds=LEASE_SECONDS),
            "attempts": 1,
        }
    rows = [
        {
            "event_id": event_id,
            "kind": event["kind"],
            "pubkey": event["pubkey"],
            "event_created_at": event["created_at"],
            "raw": json.dumps(event, separators=(",", ":"), ensure_ascii=False),
            "first_relay": relay_url[:300],
            "caught_up": catch_up,
            "seen_count": copies[event_id],
            **claimed,
        }
        for event_id, (relay_url, event) in by_id.items()
    ]
    # No savepoint inside the caller's transaction (the intake's store carries the publisher's
    # record, `worker._stored_with`): a failure here rolls all of it back, and it stores again.
    with transaction.atomic(savepoint=False):
        # One statement (plain SQL, once per intake batch): DO NOTHING on a known id — stored
        # before, or by another bridge process at the same moment — and RETURNING names exactly
        # the rows this statement inserted: with a claim the whole rows, as the claim reads them
        # back, else their keys. It replaced a SELECT of the known ids before the INSERT and a
        # SELECT of the new rows after it.
        if claim is not None:
            returned = insert_rows(InboundEvent, rows, conflict=["event_id"], returning=_COLUMNS)
            new: list[Any] = loaded_rows(InboundEvent, db_connection(), returned)
            inserted = {row.event_id for row in new}
        else:
            returned = insert_rows(InboundEvent, rows, conflict=["event_id"], returning=("id", "event_id"))
            new = [pk for pk, _ in returned]
            inserted = {event_id for _, event_id in returned}
        existing = [event_id for event_id in by_id if event_id not in inserted]
        for count in {copies[event_id] for event_id in existing}:
            seen = [event_id for event_id in existing if copies[event_id] == count]
            InboundEvent.objects.filter(event_id__in=seen).update(seen_count=F("seen_count") + count)
    # In id order (the driver returns them in any order), as a claim takes them.
    return sorted(new, key=lambda row: row.pk) if claim is not None else sorted(new)


# Every column in field order: `RETURNING` them makes the instances (`loaded_rows`).
_COLUMNS = tuple(field.attname for field in InboundEvent._meta.concrete_fields)


def inbox_claim(*, worker_id: str, limit: int = 50, exclude: Collection[int] = ()) -> list[int]:
    """Lease up to `limit` unprocessed rows to this worker; return their primary keys."""
    return [row.pk for row in inbox_claim_rows(worker_id=worker_id, limit=limit, exclude=exclude)]


def inbox_claim_rows(*, worker_id: str, limit: int = 50, exclude: Collection[int] = ()) -> list[InboundEvent]:
    """Lease up to `limit` unprocessed rows to this worker; return them, in id order.

    `exclude`: rows this worker still holds though their lease may have run out (queued in the
    bridge's network lane), so it never claims them twice.

    Claimable: RECEIVED, or PROCESSING with an expired lease. One statement, atomic on its own
    (no transaction around it): the UPDATE picks the oldest claimable ids and re-checks each row
    as it changes it, so a row another process claimed in between is skipped (on PostgreSQL the
    re-check sees the other claim once it committed), and RETURNING names exactly the rows this
    statement took. It replaced SELECT, BEGIN, UPDATE and COMMIT (round trips on PostgreSQL,
    docs/PERFORMANCE.md); the whole rows, which the dispatcher needs, are then read back by id.
    Plain SQL: it runs once per batch on the hot path.
    """
    db = db_connection()
    now = db.ops.adapt_datetimefield_value(timezone.now())
    lease_until = db.ops.adapt_datetimefield_value(timezone.now() + timedelta(seconds=LEASE_SECONDS))
    # Identifiers come from the model's metadata; every value is a parameter.
    table = table_name(InboundEvent)
    claimable_params = _claimable_params(now)
    held = f" AND id NOT IN ({', '.join(['%s'] * len(exclude))})" if exclude else ""
    claim_sql = (
        f"UPDATE {table} SET status = %s, locked_by = %s, locked_until = %s, attempts = attempts + 1"
        f" WHERE id IN (SELECT id FROM {table} WHERE {_CLAIMABLE}{held} ORDER BY id LIMIT %s) AND {_CLAIMABLE}"
        " RETURNING id"
    )
    params = [
        InboundStatus.PROCESSING.value, worker_id, lease_until, *claimable_params, *exclude, limit, *claimable_params
    ]  # fmt: skip
    # An UPDATE takes SQLite's one write lock even when it matches nothing: the idle polls look
    # first (a read, in-process: no round trip to save there).
    if db.vendor == "sqlite" and not inbox_claimable_exists(exclude=exclude):
        return []
    claimed = [row[0] for row in run_statement(db, claim_sql, params, fetch=True)]
    if not claimed:
        return []
    # The whole rows at once, in id order: the dispatcher needs them.
    return select_where(
        InboundEvent, where={"id": claimed, "status": InboundStatus.PROCESSING.value, "locked_by": worker_id}
    )


def inbox_release(*, pks: list[int], worker_id: str) -> None:
    """Hand claimed rows back unprocessed (a shutdown): claimable at once, no attempt spent."""
    InboundEvent.objects.filter(pk__in=pks, status=InboundStatus.PROCESSING, locked_by=worker_id).update(
        status=InboundStatus.RECEIVED, locked_until=None, attempts=F("attempts") - 1
    )


def inbox_renew(*, pk: int, worker_id: str) -> bool:
    """Extend this worker's lease on a claimed row by LEASE_SECONDS; False when the row is no
    longer this worker's to process (done, or claimed by another process after the lease ran out)."""
    lease_until = timezone.now() + timedelta(seconds=LEASE_SECONDS)
    renewed = InboundEvent.objects.filter(pk=pk, status=InboundStatus.PROCESSING, locked_by=worker_id).update(
        locked_until=lease_until
    )
    return renewed == 1


def inbox_finish(*, pk: int, status: str, action: str = "", drop_reason: str = "") -> bool:
    """Record the final outcome; only the current lease holder's row in PROCESSING changes.

    Runs once per message inside the handler's transaction: a precompiled statement (hot path).
    """
    values = _outcome(status, action, drop_reason)
    return update_where(InboundEvent, where={"id": pk, "status": InboundStatus.PROCESSING}, values=values) == 1


def inbox_finish_or_hold(*, pk: int, status: str, action: str = "", drop_reason: str = "") -> None:
    """`inbox_finish` for a caller that need not know whether the row changed: at a group
    commit's own level the outcome is held and written with the group's others in one UPDATE
    before its COMMIT (`nostrbridge.group_writes`); anywhere else at once."""
    held = holding()
    if held is None:
        inbox_finish(pk=pk, status=status, action=action, drop_reason=drop_reason)
    else:
        hold_outcome(held, pk, _outcome(status, action, drop_reason))


def _outcome(status: str, action: str, drop_reason: str) -> dict[str, Any]:
    return {
        "status": status,
        "action": action[:40],
        "drop_reason": drop_reason[:200],
        "processed_at": timezone.now(),
        "locked_until": None,
    }


def inbox_fail(*, pk: int, error: str, transient: bool = False) -> str:
    """An internal error: retry later, or park the row after MAX_ATTEMPTS.

    `transient` (LND or the database unreachable): within TRANSIENT_RETRY_WINDOW_SECONDS of its arrival the row
    waits out a backoff as an ownerless lease (PROCESSING, no `locked_by`), which the claim
    takes back once it expires; no retry is spent in the first seconds of an outage.
    """
    row = InboundEvent.objects.filter(pk=pk).values("attempts", "received_at").first()
    if row is None:
        return InboundStatus.PARKED
    now = timezone.now()
    if transient and row["received_at"] > now - timedelta(seconds=TRANSIENT_RETRY_WINDOW_SECONDS):
        delay = min(TRANSIENT_BACKOFF_MAX_SECONDS, 2 ** min(row["attempts"], 6))
        InboundEvent.objects.filter(pk=pk, status=InboundStatus.PROCESSING).update(
            locked_by="", locked_until=now + timedelta(seconds=delay), last_error=error[-4000:]
        )
        logger.warning("inbound event %s: LND or database unavailable, retried in %s s", pk, delay)
        return InboundStatus.PROCESSING
    status = InboundStatus.PARKED if row["attempts"] >= MAX_ATTEMPTS else InboundStatus.RECEIVED
    InboundEvent.objects.filter(pk=pk, status=InboundStatus.PROCESSING).update(
        status=status, last_error=error[-4000:], locked_until=None
    )
    if status == InboundStatus.PARKED:
        logger.error("inbound event %s parked after %s attempts", pk, row["attempts"])
    return status


def inbox_defer(*, pk: int, seconds: float) -> None:
    """Hand a claimed row back for `seconds` (a short lease nobody holds): not an attempt, no
    reply; the claim takes it again once the lease ends (or at the next nudge after it)."""
    InboundEvent.objects.filter(pk=pk, status=InboundStatus.PROCESSING).update(
        locked_by="deferred",
        locked_until=timezone.now() + timedelta(seconds=seconds),
        attempts=F("attempts") - 1,
    )


def inbox_age_seconds(*, pk: int) -> float:
    """Seconds since the row was first received (a deferred message's wait so far)."""
    received_at = InboundEvent.objects.filter(pk=pk).values_list("received_at", flat=True).first()
    return 0.0 if received_at is None else (timezone.now() - received_at).total_seconds()


def inbox_latest_created_at() -> int | None:
    """Newest `created_at` seen, the anchor of the `since` filter after a restart."""
    return InboundEvent.objects.order_by("-event_created_at").values_list("event_created_at", flat=True).first()
