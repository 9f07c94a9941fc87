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
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from django.db import DatabaseError

from nostrbridge.bridge.dbthread import db_call
from nostrbridge.outbox_rounds import Claimed, Outcome, PublishPolicy, outbox_claim, outbox_record
from nostrbridge.relays.interface import RelayPoolProtocol

logger = logging.getLogger(__name__)

# A row handed over leased (`publish_handed`) starts its round only while its lease has a full
# round (the publish timeout) and this much left for recording the answers; a row that waited
# longer (no relay connected, every batch slot busy) is left to the claim after its lease.
HANDED_RECORD_SLACK_S = 2.5


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
