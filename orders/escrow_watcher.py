"""The escrow watcher: follow every escrow hold invoice at LND (docs/PROTOCOL.md §Escrow).

Run by `manage.py invoice_watcher` on its own, or inside `mostrod` next to the handlers.

At start it subscribes the invoices whose state still matters (docs/PROTOCOL.md §Escrow), then polls
the database every second for new ones, and at once when a service in the same process (the
take handlers in `mostrod`) commits a new hold invoice. ACCEPTED, CANCELED and SETTLED updates go to the escrow
services in the database thread (the bridge's `db_call`: one DB thread, services stay sync).
"""

import asyncio
import logging

from django.db import DatabaseError

from lightning import get_lightning_client
from lightning.types import InvoiceState, InvoiceUpdate
from lightning.watcher import InvoiceWatcher
from nostrbridge.bridge.dbthread import db_call
from nostrbridge.log_context import bind as bind_log_context
from nostrbridge.outbox import outbox_handed
from nostrbridge.wake import INVOICES_CHANNEL, register_waker, unregister_waker
from orders.bonds.lock import bond_hashes_watched, bond_on_update
from orders.selectors import watched_invoice_hashes
from orders.services.escrow import escrow_on_accepted
from orders.services.escrow_reconcile import escrow_on_canceled, escrow_on_settled
from orders.watch_handoff import hold_invoices_handed

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0


def hashes_to_watch() -> list[str]:
    """Every hold invoice (escrows, then bonds) whose LND state still matters: one trip to the
    database thread per refresh instead of two."""
    return watched_invoice_hashes() + bond_hashes_watched()


# The bridge's `db_call` (looked up at each call, so a test's patch applies): it closes a broken
# connection at once and an old one every 30 s. Closing before every refresh, as before, closed
# a healthy connection once a second where CONN_MAX_AGE is 0 (`mostrod` on SQLite, where this
# thread is the bridge's database thread): each reopening parsed the schema again and emptied the
# statement cache, ~10 % of mostrod's instructions in a one-at-a-time trade run.
_hashes_in_db_thread = db_call(lambda: hashes_to_watch())


# States the bond rules or the escrow services act on; OPEN, the state every subscription
# reports first, means nothing to either (no trip to the database thread for it).
ACTED_ON = frozenset({InvoiceState.ACCEPTED, InvoiceState.CANCELED, InvoiceState.SETTLED})


def invoice_on_update(*, payment_hash_hex: str, state: InvoiceState) -> None:
    """A hold invoice's new state: a bond's goes to the bond rules, an escrow's to the escrow services."""
    if state is InvoiceState.SETTLED:
        # The bond rules act on ACCEPTED and CANCELED only, and a bond's hash is no order's: the
        # escrow check alone, without the bond lookup (every release's settle reports here).
        escrow_on_settled(payment_hash_hex=payment_hash_hex)
        return
    if state not in ACTED_ON:
        return
    if bond_on_update(payment_hash_hex=payment_hash_hex, state=state):
        return  # a bond's invoice (docs/PROTOCOL.md §Bonds), never an escrow
    if state is InvoiceState.ACCEPTED:
        escrow_on_accepted(payment_hash_hex=payment_hash_hex)
    else:
        escrow_on_canceled(payment_hash_hex=payment_hash_hex)


def _invoice_on_update_handed(**update) -> None:
    # In `mostrod` the bridge's publisher gets the report's replies leased, without a claim round.
    # (`invoice_on_update` looked up at each call, so a test's patch of it applies.)
    with outbox_handed():
        invoice_on_update(**update)


_invoice_on_update_in_db_thread = db_call(_invoice_on_update_handed)


class EscrowWatcher:
    """Wires the generic `InvoiceWatcher` to the escrow services."""

    def __init__(self, client=None, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.poll_seconds = poll_seconds
        # Hashes seen in a final state: not resubscribed by the poll, or a canceled escrow
        # of a fiat-sent order would be reported to the parties every second.
        self._finished: set[str] = set()
        self._refreshed_at = 0.0  # the event loop's clock at the last full refresh
        self.watcher = InvoiceWatcher(client or get_lightning_client(), self.on_update, hashes=self.hashes)

    async def hashes(self) -> list[str]:
        current = await _hashes_in_db_thread()
        self._finished &= set(current)  # forget orders that left the watched statuses
        return [payment_hash for payment_hash in current if payment_hash not in self._finished]

    async def on_update(self, update: InvoiceUpdate) -> None:
        payment_hash = update.payment_hash_hex.lower()
        if update.state in (InvoiceState.SETTLED, InvoiceState.CANCELED):
            self._finished.add(payment_hash)
        if update.state not in ACTED_ON:
            return
        # One trip to the database thread (in `mostrod` it is the bridge's, busy with its batches):
        # the bond check and the escrow service together, not a wait in its queue for each. The
        # bridge's `db_call`: the same thread as `sync_to_async`, without its per-call machinery.
        await _invoice_on_update_in_db_thread(payment_hash_hex=payment_hash, state=update.state)

    async def run(self, stop: asyncio.Event) -> None:
        bind_log_context(role="watcher")  # this task's lines (in `mostrod` other roles share the process)
        loop = asyncio.get_running_loop()
        hold_invoices_handed()  # hints older than this start: the first refresh reads them all
        await self.watcher.start()
        self._refreshed_at = loop.time()
        logger.info("invoice watcher started with %d invoices", len(self.watcher.watched))
        # In `mostrod` the take handlers run in this process: they hand over each new hold
        # invoice and nudge us when it is committed, so it is subscribed before the seller's
        # wallet pays it.
        nudged = asyncio.Event()

        def waker() -> None:
            loop.call_soon_threadsafe(nudged.set)

        register_waker(INVOICES_CHANNEL, waker)
        try:
            while not stop.is_set():
                await self._wait(stop, nudged)
                nudged.clear()
                if not stop.is_set():
                    await self._follow_new(loop.time())
        finally:
            unregister_waker(INVOICES_CHANNEL, waker)
            await self.watcher.stop()
            logger.info("invoice watcher stopped")

    async def _wait(self, stop: asyncio.Event, nudged: asyncio.Event) -> None:
        """Until a stop, a nudge, or the poll interval, whichever comes first."""
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(nudged.wait())]
        try:
            await asyncio.wait(waits, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    async def _follow_new(self, now: float) -> None:
        """Subscribe the hold invoices handed over by this process's commits; read every watched
        invoice from the database only when nothing was handed over (a nudge from elsewhere) or
        at the poll interval (the invoices of other processes)."""
        handed = [payment_hash for payment_hash in hold_invoices_handed() if payment_hash not in self._finished]
        for payment_hash in handed:
            self.watcher.add(payment_hash)
        if not handed or now - self._refreshed_at >= self.poll_seconds:
            self._refreshed_at = now
            await self._refresh()

    async def _refresh(self) -> None:
        try:
            await self.watcher.refresh()
        except DatabaseError:
            # A database hiccup must not end the process: the next poll retries.
            logger.exception("invoice watcher could not read the watched invoices")
