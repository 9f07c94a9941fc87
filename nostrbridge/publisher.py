"""The outbox publisher: committed `OutboundMessage` rows → every connected relay.

One round per due row: publish to every relay at once, record each relay's answer as an
`OutboundDelivery` (accepted / refused + message, attempts), and then:

* accepted by at least one relay → SENT; relays that refused or did not answer are retried
  with exponential backoff until the attempt budget is spent;
* accepted by none → retried with backoff, then PARKED with the relays' answers in
  `last_error` (visible in the admin). A round in which no relay could judge the event (none
  connected, or the connection dropped before the OK) is not an attempt: the row waits for a
  connection instead of burning its budget.

Rows are claimed in id order with a lease (`next_attempt_at` moved past the publish timeout)
in a short transaction (`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL), so two bridge
processes do not publish the same row at once; a crash mid-round only re-publishes after the
lease, which relays treat as a duplicate. Several batches may be in flight; frames still
leave in id order because each batch queues its frames before the next batch is claimed.
"""

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.db import DatabaseError, transaction
from django.utils import timezone

from nostrbridge.bridge.dbthread import db_call
from nostrbridge.models import OutboundDelivery, OutboundMessage, OutboundStatus
from nostrbridge.outbox import Collected
from nostrbridge.relays import PublishResult
from nostrbridge.relays.interface import RelayPoolProtocol
from nostrbridge.statements import db_connection, insert_rows, run_statement, table_name, update_where

logger = logging.getLogger(__name__)

NOT_CONNECTED = "not connected"  # RelayPool's answer for a relay without a socket
TIMEOUT_PREFIX = "timeout"  # RelayPool's answer for a connected relay that sent no OK in time
# A relay that dropped the connection mid-publish reconnects within a second or so (its pool
# backs off from 0.5 s): try again soon, without spending the attempt budget.
WAIT_FOR_RELAY_S = 0.5
# A row handed over leased (`publish_handed`) starts its round only while its lease has a full
# round (the publish timeout) and this much left for recording the answers; a row that waited
# longer (no relay connected, every batch slot busy) is left to the claim after its lease.
HANDED_RECORD_SLACK_S = 2.5


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


class OutboxPublisher:
    def __init__(
        self,
        pool: RelayPoolProtocol,
        *,
        policy: PublishPolicy | None = None,
        batch: int = 100,
        max_in_flight: int = 4,
        poll_s: float = 1.0,
        on_recorded: Callable[[list[dict[str, Any]]], Awaitable[None]] | None = None,
        share_record_s: float = 0.0,
    ):
        """`share_record_s`: how long a batch's relay answers may wait for a caller's database trip
        (`take_unrecorded`) before the publisher records them itself (0: at once)."""
        self._pool = pool
        self._on_recorded = on_recorded  # told which events' relay answers are now stored
        self.policy = policy or PublishPolicy()
        self._batch = batch
        self._max_in_flight = max_in_flight
        self._poll_s = poll_s
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        # Batches of rows handed over leased (`publish_handed`): outside the in-flight limit, which
        # bounds the claims; holding leased rows back would only spend their lease.
        self._handed_in_flight: set[asyncio.Task[None]] = set()
        # A claim was skipped because of the in-flight limit: the next batch to finish wakes the
        # loop (otherwise a finished batch costs no claim: an empty one is a write transaction).
        self._held_back = False
        self._share_record_s = share_record_s
        self._unrecorded: list[Outcome] = []
        self._record_timer: asyncio.TimerHandle | None = None
        self._recording: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._handed: list[tuple[float, Claimed]] = []  # (lease end, monotonic), oldest first
        self.published = 0

    def nudge(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                async with asyncio.timeout(self._poll_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            await self.publish_due()

    async def publish_due(self) -> int:
        """Claim and start batches until nothing is due or the in-flight limit is reached."""
        started = 0
        self._held_back = False
        if self._handed and self._pool.connected_urls():
            started += self._publish_handed()
        while self._pool.connected_urls():
            if len(self._in_flight) >= self._max_in_flight:
                self._held_back = True  # claimed again when a batch in flight finishes
                return started
            try:
                claimed = await db_call(outbox_claim)(limit=self._batch, lease_s=self.policy.lease_s)
            except DatabaseError:
                logger.exception("outbox claim failed")
                return started
            if not claimed:
                return started
            self.publish_claimed(claimed)
            started += len(claimed)
            if len(claimed) < self._batch:
                return started
        return started

    def can_publish(self) -> bool:
        """Would this publisher claim rows now (a relay connected, room in flight)? For a caller
        that leases the rows its own database call writes (`outbox_collect`) and hands them here;
        when not, the caller nudges the publisher, which claims them when it can."""
        return len(self._in_flight) < self._max_in_flight and bool(self._pool.connected_urls())

    def publish_claimed(self, claimed: list[Claimed]) -> None:
        """Publish leased rows: claimed by `outbox_claim`, or written leased (`outbox_collect`)
        by the caller's database call; their frames are queued now, in order."""
        self._start(claimed, self._in_flight)

    def _start(self, claimed: list[Claimed], in_flight: set[asyncio.Task[None]]) -> None:
        if not claimed:
            return
        task = asyncio.create_task(self._publish(claimed), name="outbox-batch")
        in_flight.add(task)
        task.add_done_callback(self._batch_done)

    def publish_handed(self, rows: list[tuple[float, Claimed]]) -> None:
        """Rows written leased and committed on another thread (`nostrbridge.outbox.outbox_handed`,
        through `ThreadsafeHandoff`), each with its lease's end: published now, or with no relay
        connected at the next `publish_due` that finds one (a connection nudges it), as long as
        the lease leaves a round's time; past that the claim takes them."""
        self._handed += rows
        if self._pool.connected_urls():
            self._publish_handed()
            return
        now = time.monotonic()  # rows whose lease ended are the claim's now: not kept meanwhile
        self._handed = [item for item in self._handed if item[0] > now]

    def _publish_handed(self) -> int:
        latest_start = time.monotonic() + self.policy.timeout_s + HANDED_RECORD_SLACK_S
        rows = [claimed for lease_ends_at, claimed in self._handed if lease_ends_at >= latest_start]
        self._handed = []
        self._start(rows, self._handed_in_flight)
        return len(rows)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._handed_in_flight.discard(task)
        if self._held_back:
            self._wake.set()  # rows may have become due while the in-flight limit was reached

    async def _publish(self, claimed: list[Claimed]) -> None:
        timeout = self.policy.timeout_s
        results = await self._pool.publish_many([(item.event["id"], item.frame) for item in claimed], timeout_s=timeout)
        outcomes = list(zip(claimed, results, strict=True))
        if not self._share_record_s or self._stopping:
            await self._record(outcomes)
            return
        # The relays' answers wait a moment for a database trip the bridge makes anyway (its
        # intake's next batch, `take_unrecorded`); without one they are recorded here after it.
        self._unrecorded += outcomes
        if self._record_timer is None:
            self._record_timer = asyncio.get_running_loop().call_later(self._share_record_s, self._record_unrecorded)

    def take_unrecorded(self) -> list[Outcome]:
        """The relays' answers not recorded yet, for a caller that records them in its own trip to
        the database thread (`outbox_record`) and then reports them with `recorded`."""
        outcomes, self._unrecorded = self._unrecorded, []
        if self._record_timer is not None:
            self._record_timer.cancel()
            self._record_timer = None
        return outcomes

    def give_back(self, outcomes: list[Outcome]) -> None:
        """Outcomes taken with `take_unrecorded` that the caller could not record: recorded here."""
        if outcomes:
            self._unrecorded = outcomes + self._unrecorded
            self._record_unrecorded()

    async def recorded(self, outcomes: list[Outcome]) -> None:
        """`outcomes` were recorded (by this publisher or by a caller of `take_unrecorded`)."""
        self.published += len(outcomes)
        if self._on_recorded is not None:
            await self._on_recorded([claimed.event for claimed, _ in outcomes])

    def _record_unrecorded(self) -> None:
        self._record_timer = None
        outcomes = self.take_unrecorded()
        if outcomes:
            task = asyncio.create_task(self._record(outcomes), name="outbox-record")
            self._recording.add(task)
            task.add_done_callback(self._recording.discard)

    async def _record(self, outcomes: list[Outcome]) -> None:
        try:
            await db_call(outbox_record)(outcomes=outcomes, policy=self.policy)
        except DatabaseError:
            logger.exception("could not record %s deliveries; they are re-published after the lease", len(outcomes))
            return
        await self.recorded(outcomes)

    async def stop(self, task: asyncio.Task[None]) -> None:
        """End `run` after its current step (batches it started keep going; see flush)."""
        self._stopping = True
        self._wake.set()
        await asyncio.gather(task, return_exceptions=True)

    async def flush(self, *, timeout_s: float) -> None:
        """At shutdown: publish what is due now, wait for the batches in flight, record them."""
        try:
            async with asyncio.timeout(timeout_s):
                while await self.publish_due() or self._in_flight or self._handed_in_flight:
                    if self._in_flight or self._handed_in_flight:
                        await asyncio.wait(self._in_flight | self._handed_in_flight)
                if outcomes := self.take_unrecorded():
                    await self._record(outcomes)
                if self._recording:
                    await asyncio.wait(set(self._recording))
        except TimeoutError:
            logger.warning("outbox flush stopped after %.0f s; the rest goes out on the next start", timeout_s)
