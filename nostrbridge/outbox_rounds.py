"""The outbox's side of a publish round: which rows are due and leased (`outbox_claim`), and
what each relay's answers make of them (`outbox_record`): SENT, a retry with backoff, or PARKED.
The rounds themselves, on the event loop, are `nostrbridge.publisher.OutboxPublisher`'s."""

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.db import transaction
from django.utils import timezone

from nostrbridge.models import OutboundDelivery, OutboundMessage, OutboundStatus
from nostrbridge.outbox import Collected
from nostrbridge.relays import PublishResult
from nostrbridge.statement_sql import table_name
from nostrbridge.statements import db_connection, insert_rows, run_statement, update_where

logger = logging.getLogger(__name__)

NOT_CONNECTED = "not connected"  # RelayPool's answer for a relay without a socket
TIMEOUT_PREFIX = "timeout"  # RelayPool's answer for a connected relay that sent no OK in time
# A relay that dropped the connection mid-publish reconnects within a second or so (its pool
# backs off from 0.5 s): try again soon, without spending the attempt budget.
WAIT_FOR_RELAY_S = 0.5


def _attempted(result: PublishResult) -> bool:
    """Did the relay get to judge the event? An OK (True/False) or silence until the timeout;
    not a relay that was disconnected, or whose connection dropped before it answered."""
    return result.accepted is not None or result.message.startswith(TIMEOUT_PREFIX)


@dataclass(frozen=True)
class PublishPolicy:
    timeout_s: float = 10.0  # per round, for each relay's OK
    retry_base_s: float = 2.0  # 2, 4, 8 … seconds between rounds
    retry_max_s: float = 300.0
    max_attempts: int = 8  # rounds with at least one connected relay

    @property
    def lease_s(self) -> float:
        return self.timeout_s + 5.0

    def backoff_s(self, attempts: int) -> float:
        return min(self.retry_max_s, self.retry_base_s * 2 ** max(attempts - 1, 0))


@dataclass
class Claimed:
    pk: int
    event: dict[str, Any]
    status: str
    attempts: int
    deliveries: dict[str, tuple[bool | None, int]] = field(default_factory=dict)  # url -> (accepted, attempts)
    frame: str = ""  # the EVENT frame, around the stored JSON as it is (no encoding per publish)


# One published row and each relay's answer.
Outcome = tuple[Claimed, dict[str, PublishResult]]


def _due_rows(now: datetime, limit: int) -> list[tuple[int, str, str, int]]:
    """The oldest due rows: never tried, or whose retry time (or lease) has passed.

    Two queries, each on its own index: a single `OR … ORDER BY pk` makes SQLite walk the whole
    table in pk order, and the table keeps every reply ever sent. Only unfinished rows carry a
    next_attempt_at (done and PARKED rows have none). Plain SQL: runs once per published batch
    (see nostrbridge.statements); FOR UPDATE SKIP LOCKED where the database has it.
    """
    table = table_name(OutboundMessage)
    db = db_connection()
    lock = " FOR UPDATE SKIP LOCKED" if db.features.has_select_for_update_skip_locked else ""
    columns = "id, event_json, status, attempts"
    fresh = f"SELECT {columns} FROM {table} WHERE status = %s AND next_attempt_at IS NULL ORDER BY id LIMIT %s{lock}"
    retry = f"SELECT {columns} FROM {table} WHERE next_attempt_at <= %s ORDER BY next_attempt_at LIMIT %s{lock}"
    found = {row[0]: tuple(row) for row in run_statement(db, fresh, [OutboundStatus.PENDING.value, limit], fetch=True)}
    retried = run_statement(db, retry, [db.ops.adapt_datetimefield_value(now), limit], fetch=True)
    found.update((row[0], tuple(row)) for row in retried)
    return [found[pk] for pk in sorted(found)[:limit]]


def outbox_claim(*, limit: int, lease_s: float, now: datetime | None = None) -> list[Claimed]:
    """Lease up to `limit` due rows, oldest first; return them with their past deliveries."""
    now = now or timezone.now()
    deliveries: dict[int, dict[str, tuple[bool | None, int]]] = defaultdict(dict)
    with transaction.atomic():
        rows = _due_rows(now, limit)
        if not rows:
            return []
        pks = [row[0] for row in rows]
        lease = {"next_attempt_at": now + timedelta(seconds=lease_s)}
        update_where(OutboundMessage, where={"id": pks}, values=lease)
        retried = [pk for pk, _, status, attempts in rows if attempts or status != OutboundStatus.PENDING]
        if retried:  # a first round has no deliveries to read
            past = OutboundDelivery.objects.filter(message_id__in=retried)
            for message_id, url, accepted, tries in past.values_list("message_id", "relay_url", "accepted", "attempts"):
                deliveries[message_id][url] = (accepted, tries)
    claimed = []
    for pk, event_json, status, attempts in rows:
        event = _event(event_json)
        if event is None:
            _park(pk, "event_json is not valid JSON")
            continue
        frame = f'["EVENT",{event_json}]'
        claimed.append(Claimed(pk, event, status, attempts, deliveries.get(pk, {}), frame))
    return claimed


def _event(event_json: str) -> dict[str, Any] | None:
    """The stored event as a dict with a string id, or None (not a JSON object, or no id)."""
    try:
        event = orjson.loads(event_json)
    except orjson.JSONDecodeError:  # orjson refuses some JSON `json` reads (a lone surrogate escape)
        try:
            event = json.loads(event_json)
        except ValueError:
            return None
    return event if isinstance(event, dict) and isinstance(event.get("id"), str) else None


def claimed_from(row: Collected) -> Claimed:
    """A row written leased by `outbox_collect`, as `outbox_claim` would return it (first round)."""
    frame = f'["EVENT",{row.event_json}]'
    return Claimed(row.pk, row.event.to_dict(), OutboundStatus.PENDING.value, 0, {}, frame)


def _park(pk: int, error: str) -> None:
    OutboundMessage.objects.filter(pk=pk).update(status=OutboundStatus.PARKED, next_attempt_at=None, last_error=error)


@dataclass(frozen=True)
class _Update:
    """One UPDATE shared by every row of a batch that ends the same way."""

    status: str
    first_sent: bool
    next_attempt_at: datetime | None
    attempted: bool
    last_error: str


# Accepted on the first try by the one relay it went to: nothing to retry, no error.
_SENT_FIRST = _Update(OutboundStatus.SENT, True, None, True, "")
_SENT_AGAIN = _Update(OutboundStatus.SENT, False, None, True, "")


def outbox_record(*, outcomes: Sequence[Outcome], policy: PublishPolicy, now: datetime | None = None) -> None:
    """Write the relays' answers for one published batch (one transaction, a few statements)."""
    now = now or timezone.now()
    deliveries: list[dict[str, Any]] = []
    groups: dict[_Update, list[int]] = defaultdict(list)
    for claimed, results in outcomes:
        deliveries += _deliveries(claimed, results)
        groups[_plan(claimed, results, policy, now)].append(claimed.pk)
    # No savepoint inside the intake's store transaction (it records there): a failure here
    # rolls the store back, which the bridge then stores again without it.
    with transaction.atomic(savepoint=False):
        # Plain SQL (see nostrbridge.statements): one upsert and one UPDATE per outcome group.
        insert_rows(
            OutboundDelivery,
            deliveries,
            conflict=["message_id", "relay_url"],
            update=["accepted", "relay_message", "attempts"],
        )
        for update, pks in groups.items():
            values: dict[str, Any] = {
                "status": update.status,
                "next_attempt_at": update.next_attempt_at,
                "last_error": update.last_error,
            }
            if update.first_sent:
                values["sent_at"] = now
            increments = ["attempts"] if update.attempted else []
            update_where(OutboundMessage, where={"id": pks}, values=values, increments=increments)


def _deliveries(claimed: Claimed, results: dict[str, PublishResult]) -> list[dict[str, Any]]:
    rows = []
    for url, result in results.items():
        accepted_before, attempts = claimed.deliveries.get(url, (None, 0))
        if accepted_before:
            continue  # never downgrade a relay that already has the event
        if _attempted(result):
            attempts += 1
        rows.append(
            {
                "message_id": claimed.pk,
                "relay_url": url[:300],
                "accepted": result.accepted,
                "relay_message": result.message[:300],
                "attempts": attempts,
            }
        )
    return rows


def _plan(claimed: Claimed, results: dict[str, PublishResult], policy: PublishPolicy, now: datetime) -> _Update:
    # First: a first round its one relay accepted (every reply of a one-relay node); the same
    # answer as `_plan_rounds`'s (tested), without its dozen set, dict and string operations.
    if not claimed.deliveries and len(results) == 1:
        for result in results.values():
            if result.accepted is True:
                return _SENT_AGAIN if claimed.status == OutboundStatus.SENT else _SENT_FIRST
    return _plan_rounds(claimed, results, policy, now)


def _plan_rounds(claimed: Claimed, results: dict[str, PublishResult], policy: PublishPolicy, now: datetime) -> _Update:
    has_it = {url for url, (accepted, _) in claimed.deliveries.items() if accepted}
    has_it |= {url for url, result in results.items() if result.accepted}
    missing = {url: result.message for url, result in results.items() if url not in has_it}
    attempted = any(_attempted(result) for result in results.values())
    attempts = claimed.attempts + (1 if attempted else 0)
    error = "; ".join(f"{url}: {message or 'refused'}" for url, message in sorted(missing.items()))[-2000:]
    retry_at = now + timedelta(seconds=policy.backoff_s(attempts))
    first_sent = claimed.status != OutboundStatus.SENT
    if has_it:
        keep_trying = bool(missing) and attempts < policy.max_attempts
        return _Update(OutboundStatus.SENT, first_sent, retry_at if keep_trying else None, attempted, error)
    if not attempted:
        return _Update(OutboundStatus.PENDING, False, now + timedelta(seconds=WAIT_FOR_RELAY_S), False, error)
    if attempts >= policy.max_attempts:
        logger.error("outbound event %s parked after %s attempts: %s", claimed.event.get("id"), attempts, error)
        return _Update(OutboundStatus.PARKED, False, None, True, error)
    return _Update(OutboundStatus.PENDING, False, retry_at, True, error)
