"""Replies committed on the lane's threads or the database thread, handed to the publisher leased.

A process running a bridge registers its publisher (`handoff_register`); the rows a handler of the
network lane or the invoice watcher's report commits inside `nostrbridge.outbox.outbox_handed` are
then written leased, as the publisher's claim would lease them, and handed to the publisher on
the event loop once committed: no claim round (a transaction on the database thread) for them.
A hand-off lost (the process dies first) leaves each row to the claim after its lease.
"""

import asyncio
import threading

from nostrbridge.outbox import Collected, LeasedHandoff, outbox_handoff_set
from nostrbridge.outbox_rounds import Claimed, claimed_from
from nostrbridge.publisher import OutboxPublisher


class ThreadsafeHandoff:
    """`LeasedHandoff.take` for a publisher on an event loop: any thread hands its committed leased
    rows over; they reach `publish_handed` on the loop, one hop for all the rows handed until it
    runs (each hop writes to the loop's self-pipe)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, publisher: OutboxPublisher) -> None:
        self._loop = loop
        self._publisher = publisher
        self._lock = threading.Lock()
        self._rows: list[tuple[float, Claimed]] = []

    def __call__(self, rows: list[Collected]) -> None:
        # Built here, in the handing thread: the loop only starts the batch.
        claimed = [(row.lease_ends_at, claimed_from(row)) for row in rows]
        with self._lock:
            hop = not self._rows
            self._rows += claimed
        if not hop:
            return  # the hop scheduled for the earlier rows has not run yet: it takes these too
        try:
            self._loop.call_soon_threadsafe(self._run)
        except RuntimeError:  # the loop is closed: the rows wait for their lease
            with self._lock:
                self._rows = []
            raise

    def _run(self) -> None:
        with self._lock:
            rows, self._rows = self._rows, []
        self._publisher.publish_handed(rows)


def handoff_register(loop: asyncio.AbstractEventLoop, publisher: OutboxPublisher) -> LeasedHandoff:
    """Make `publisher` this process's receiver of rows written in `outbox_handed`; returns the
    registration, for `handoff_unregister`."""
    handoff = LeasedHandoff(lease_s=publisher.policy.lease_s, take=ThreadsafeHandoff(loop, publisher))
    outbox_handoff_set(handoff)
    return handoff


def handoff_unregister(handoff: LeasedHandoff) -> None:
    outbox_handoff_set(None, replacing=handoff)
