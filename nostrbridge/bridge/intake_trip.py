"""The intake's one trip to the database thread, and the nudge the database thread sends back.

`store_process_claim` stores a batch the intake gathered, processes it and hands the replies its
handlers committed to the publisher, all in one call on the database thread (see
docs/ARCHITECTURE.md, "the intake's one trip"); `store_inbound` is the event loop's side of that
trip, the intake's store. `ThreadsafeNudge` is the waker the database thread calls at every
commit. All were in `nostrbridge.bridge.runner`, which runs the loop around them.
"""

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence

from django.db import DatabaseError, transaction

from nostrbridge.bridge.dbthread import db_call
from nostrbridge.bridge.lane import NetworkLane
from nostrbridge.bridge.worker import DEFAULT_CLAIM_BATCH, InboxLane, store_and_process
from nostrbridge.outbox import Collected, outbox_collect
from nostrbridge.outbox_rounds import Claimed, Outcome, PublishPolicy, claimed_from, outbox_record
from nostrbridge.protocol.nip01 import Event
from nostrbridge.publisher import OutboxPublisher

logger = logging.getLogger(__name__)


def store_process_claim(
    batch: list[tuple[str, dict, bool]],
    *,
    worker_id: str,
    stop: threading.Event,
    network: NetworkLane | None,
    publish: bool,
    policy: PublishPolicy,
    outcomes: Sequence[Outcome] = (),
    limit: int = DEFAULT_CLAIM_BATCH,
    recorded_out: list[bool] | None = None,
    checked: Mapping[str, tuple[dict, Event]] | None = None,
) -> tuple[int, int, list[Claimed], bool]:
    """In the database thread: `store_and_process`; with `publish` (the publisher can take more),
    the outbound rows its handlers commit are written leased to this bridge and returned for
    the publisher (`outbox_collect`): no trip of the publisher's own to claim them back. The
    relays' answers to earlier batches (`outcomes`) are recorded (`outbox_record`) in the store's
    transaction, or in one of their own if that failed: no trip or transaction of the publisher's
    own for them either. Returns (rows left for the consumer, rows processed, the
    replies to publish, whether `outcomes` were recorded); `recorded_out` gets True appended once
    they are, so a caller whose call raised afterwards does not hand them back for recording.
    `checked`: the intake's checked events of the batch (`store_and_process`)."""
    committed_record: list[bool] = [] if recorded_out is None else recorded_out

    def record() -> None:
        outbox_record(outcomes=outcomes, policy=policy)
        # Known once the transaction commits: a failure after that must not record them again.
        transaction.on_commit(lambda: committed_record.append(True))

    collect: contextlib.AbstractContextManager[list[Collected]] = (
        outbox_collect(lease_s=policy.lease_s) if publish else contextlib.nullcontext([])
    )
    with collect as committed:
        unclaimed, processed, _ = store_and_process(
            batch,
            worker_id=worker_id,
            stop=stop,
            network=network,
            first=record if outcomes else None,
            limit=limit,
            checked=checked,
        )
    if outcomes and not committed_record:
        try:
            with transaction.atomic():  # the store's transaction failed with them: in one of their own
                record()
        except DatabaseError:
            logger.exception("could not record %s deliveries; they are re-published after the lease", len(outcomes))
    return unclaimed, processed, [claimed_from(row) for row in committed], not outcomes or bool(committed_record)


async def store_inbound(
    batch: list[tuple[str, dict, bool]],
    checked: dict[str, tuple[dict, Event]] | None,
    *,
    lane: InboxLane,
    publisher: OutboxPublisher,
) -> int:
    """The intake's store: the batch is processed in the same trip to the database thread when
    nothing older waits (`store_and_process`, on the events the intake `checked` already), and
    the replies it committed are claimed for the publisher in that trip too; returns the rows
    left for the consumer. The worker id, network lane and batch size are the `lane`'s (the
    bridge's own)."""
    publish = publisher.can_publish()
    outcomes = publisher.take_unrecorded()
    recorded_out: list[bool] = []
    try:
        unclaimed, processed, replies, recorded = await db_call(store_process_claim)(
            batch,
            worker_id=lane.worker_id,
            stop=lane.stopping,
            network=lane.network,
            publish=publish,
            policy=publisher.policy,
            outcomes=outcomes,
            limit=lane.batch,
            recorded_out=recorded_out,
            checked=checked,
        )
    except BaseException:
        if outcomes and recorded_out:
            await publisher.recorded(outcomes)
        else:
            publisher.give_back(outcomes)  # not recorded: the publisher records them
        raise
    if processed:
        lane.processed += processed
        publisher.publish_claimed(replies)
        if not publish:
            publisher.nudge()  # once per batch, as after a consumer's batch
    if outcomes and recorded:
        await publisher.recorded(outcomes)
    return unclaimed


class ThreadsafeNudge:
    """A waker for the database thread (called at every commit): hops onto the loop, but only
    once until the loop has run it, because each hop writes to the loop's self-pipe."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None], *, skip: Callable[[], bool] = lambda: False
    ):
        self._loop = loop
        self._callback = callback
        self._skip = skip
        self._pending = False

    def __call__(self) -> None:
        if self._pending or self._skip():
            return  # the scheduled run happens after this commit, so it covers it
        self._pending = True
        self._loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        self._pending = False
        self._callback()
