"""The network lane: messages whose handlers may leave the database run on a few threads of
their own, so a hanging LND call (or a slow price or LNURL server) never holds up the database
thread, where every other trader's database-only messages are answered in group commits.

Which messages: every action outside `BridgeWiring.group_commit_actions` (take-*, add-invoice,
release, cancel, new-order, dispute, admin actions, ...), and any message that shares a key with
a message already here, so one order's (one trade key's, one identity's) messages keep their
order: a database-only `fiat-sent` queued behind that order's `release` runs after it, here.
A message's keys are its order id, its trade key and its identity; a task starts only when no
earlier task that shares a key is queued or running. Guarded transitions still decide races
between orders, as they did between processes.

Exactly once: the database thread claimed the row (its lease, `locked_by` this bridge) and
hands it over only after its group committed; the handler here runs as it ran in the database
thread (`dispatch_opened`: its own short transactions, the outcome and the replies in the
final one, no network call inside a transaction); the replies it committed are handed to the
bridge's publisher already leased (`outbox_handed`), not claimed by it from the database thread.
The bridge's claim skips the rows held here even once their lease ran out (and a row is never
queued twice); a task that waited past half a lease renews its lease first, and drops the
message if the lease went to another bridge process.

Bounded: `LANE_THREADS` threads, each with its own database connection (SQLite: its short
write transactions queue on the busy timeout with the database thread's); at most
`LANE_CAPACITY` tasks queued and running. When full, a message goes back to the inbox for
`FULL_RETRY_S` (`inbox_defer`: no attempt spent, no reply) and is claimed again after it: the
database thread never waits on the network, and a flood of messages from one key costs memory
for at most `LANE_CAPACITY` of them.

Shutdown: `stop()` starts nothing more and returns the queued messages, which the bridge hands
back to the inbox; the tasks in hand finish (their deadlines bound them). A process killed with
a message in hand leaves its lease, and the row comes back (`release_dead_leases` at the next
start, or lease expiry), as from the database thread.
"""

import contextvars
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass

from django.db import DatabaseError, close_old_connections, connections

from nostrbridge.context import InboundContext
from nostrbridge.dispatch import dispatch_opened
from nostrbridge.inbox import LEASE_SECONDS, inbox_defer, inbox_fail, inbox_release, inbox_renew
from nostrbridge.outbox import outbox_handed
from nostrbridge.wiring import bridge_wiring

logger = logging.getLogger(__name__)
# A row whose handling met a database error (a lost connection) is tried again after this.
DATABASE_RETRY_S = 2.0

# LND answers or times out within `LND_CALL_TIMEOUT_SECONDS` (10 s): four hanging calls leave
# no thread free, and the database-only path never waits on them.
LANE_THREADS = 4
LANE_CAPACITY = 64
FULL_RETRY_S = 1.0
CLOSE_OLD_CONNECTIONS_EVERY_S = 30.0


@dataclass(eq=False)
class _Task:
    ctx: InboundContext
    keys: frozenset[str]
    claimed_at: float  # monotonic time of the row's claim (its lease started then)
    context: contextvars.Context  # the database thread's log context


def lane_keys(ctx: InboundContext) -> frozenset[str]:
    """What a message must not overtake: its order's, its trade key's and its identity's messages
    (the trade-index gate counts per identity)."""
    keys = {f"key:{ctx.sender}", f"identity:{ctx.identity}"}
    if ctx.order_id is not None:
        keys.add(f"order:{ctx.order_id}")
    return frozenset(keys)


class NetworkLane:
    def __init__(
        self,
        *,
        worker_id: str,
        threads: int = LANE_THREADS,
        capacity: int = LANE_CAPACITY,
    ) -> None:
        self.worker_id = worker_id
        self._threads_wanted = threads
        self._capacity = capacity
        self._cond = threading.Condition()
        self._queue: list[_Task] = []
        self._running: list[_Task] = []
        self._held: Counter[str] = Counter()  # keys of the queued and running tasks
        self._pks: set[int] = set()
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def start(self) -> None:
        for number in range(self._threads_wanted):
            thread = threading.Thread(target=self._work, name=f"bridge-lane-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    # -- the database thread's side -------------------------------------------------------
    def takes(self, ctx: InboundContext) -> bool:
        """Must this message run here: it may leave the database, or a message it must not
        overtake is here."""
        if not bridge_wiring().stays_in_database(ctx):
            return True
        with self._cond:
            return bool(self._held) and any(self._held[key] for key in lane_keys(ctx))

    def submit(self, ctx: InboundContext, *, claimed_at: float) -> None:
        """Queue the message, or hand it back to the inbox for a moment when the lane is full.
        Called from the database thread outside any transaction: the lane reads committed state."""
        keys = lane_keys(ctx)
        pk = ctx.inbound_pk
        assert pk is not None, "only claimed inbox rows travel through the lane"
        with self._cond:
            if pk in self._pks:
                return  # already here (the claim skips such rows; kept as a guard)
            stopping, full = self._stopping, len(self._queue) + len(self._running) >= self._capacity
            if not stopping and not full:
                self._queue.append(_Task(ctx, keys, claimed_at, contextvars.copy_context()))
                self._held.update(keys)
                self._pks.add(pk)
                self._cond.notify()
                return
        if stopping:  # the batch in hand outlived the shutdown's wait: the next start takes it
            inbox_release(pks=[pk], worker_id=self.worker_id)
            return
        inbox_defer(pk=pk, seconds=FULL_RETRY_S)
        logger.info("network lane full: %s (%s) retried in %.0f s", ctx.action, ctx.event_id[:12], FULL_RETRY_S)

    # -- shutdown ------------------------------------------------------------------------
    def stop(self) -> list[int]:
        """Start no more tasks; return the inbox rows of the queued ones (to hand back)."""
        with self._cond:
            self._stopping = True
            queued, self._queue = self._queue, []
            for task in queued:
                self._forget(task)
            self._cond.notify_all()
        return [task.ctx.inbound_pk for task in queued if task.ctx.inbound_pk is not None]

    def join(self, timeout_s: float) -> bool:
        """Wait for the tasks in hand; True when every thread ended in time."""
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def held_rows(self) -> list[int]:
        """The inbox rows queued or running here (the claim skips them)."""
        with self._cond:
            return list(self._pks)

    @property
    def busy(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._running)

    # -- the lane's threads --------------------------------------------------------------
    def _work(self) -> None:
        closed_at = time.monotonic()
        try:
            while (task := self._next()) is not None:
                if time.monotonic() - closed_at >= CLOSE_OLD_CONNECTIONS_EVERY_S:
                    closed_at = time.monotonic()
                    close_old_connections()
                try:
                    task.context.run(self._run, task)
                finally:
                    with self._cond:
                        self._running.remove(task)
                        self._forget(task)
                        # No wake-up: this thread looks at the queue next itself, and wakes
                        # another if more is left (`_next`). Waking every thread at every
                        # task's end was most of the lane's own cost at light load.
        finally:
            connections.close_all()  # this thread's connection

    def _next(self) -> _Task | None:
        with self._cond:
            while not self._stopping:
                blocked = {key for task in self._running for key in task.keys}
                for index, task in enumerate(self._queue):
                    if blocked.isdisjoint(task.keys):
                        self._running.append(self._queue.pop(index))
                        if self._queue:
                            # One waiting thread looks at what is left (and wakes the next in
                            # turn if it takes a task): the tasks a finished one unblocked run
                            # in parallel, without every thread waking at every change.
                            self._cond.notify()
                        return task
                    blocked |= task.keys  # a later task must not overtake this one
                self._cond.wait()
            return None

    def _forget(self, task: _Task) -> None:
        self._held.subtract(task.keys)
        for key in task.keys:
            if self._held[key] <= 0:
                del self._held[key]
        self._pks.discard(task.ctx.inbound_pk)

    def _run(self, task: _Task) -> None:
        ctx = task.ctx
        pk = ctx.inbound_pk
        assert pk is not None
        try:
            if time.monotonic() - task.claimed_at > LEASE_SECONDS / 2 and not inbox_renew(
                pk=pk, worker_id=self.worker_id
            ):
                logger.warning("inbound event %s: lease lost while queued in the lane; not processed here", pk)
                return
            with outbox_handed():  # its committed replies go to the publisher leased, unclaimed
                dispatch_opened(ctx)
        except DatabaseError:
            close_old_connections()  # drops a broken connection
            logger.exception("database error in the lane handling inbound event %s", pk)
            # The handler's transaction rolled back (a committed one finished the row, which the
            # defer then leaves alone): claimable again in seconds, not at the lease's end (60 s).
            try:
                inbox_defer(pk=pk, seconds=DATABASE_RETRY_S)
            except DatabaseError:
                close_old_connections()  # still down: the lease brings the row back
        except Exception as exc:  # noqa: BLE001 — last-resort guard, as in the database thread
            logger.exception("inbound event %s crashed outside its handler", pk)
            try:
                inbox_fail(pk=pk, error=f"{type(exc).__name__}: {exc}")
            except DatabaseError:
                close_old_connections()


@dataclass(frozen=True)
class BatchHandoff:
    """The lane as one claimed batch sees it (`nostrbridge.dispatch.HandlerLane`)."""

    lane: NetworkLane
    claimed_at: float

    def takes(self, ctx: InboundContext) -> bool:
        return self.lane.takes(ctx)

    def submit(self, ctx: InboundContext) -> None:
        self.lane.submit(ctx, claimed_at=self.claimed_at)
