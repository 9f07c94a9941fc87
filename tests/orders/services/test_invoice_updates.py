"""Which invoice states the watcher takes to the database (`orders.escrow_watcher.invoice_on_update`).

OPEN, the state every subscription reports first, means nothing to the bond rules or the escrow
services: no query. A SETTLED report goes to the escrow check without the bond lookup (the bond
rules act on ACCEPTED and CANCELED only).
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lightning.types import InvoiceState
from orders.escrow_watcher import invoice_on_update
from tests.guards.support import fresh_trade, settled_trade
from tests.orders.services.support import outbox_count, snapshot

pytestmark = pytest.mark.django_db


def test_open_report_reads_and_writes_nothing(node, fake_ln):
    trade = fresh_trade(fake_ln)
    before = (snapshot(trade.refresh()), outbox_count())

    with CaptureQueriesContext(connection) as queries:
        invoice_on_update(payment_hash_hex=trade.order.hold_invoice_hash, state=InvoiceState.OPEN)

    assert len(queries) == 0
    assert (snapshot(trade.refresh()), outbox_count()) == before


def test_settled_report_reads_the_order_only(node, fake_ln, caplog):
    trade = settled_trade(fake_ln)
    before = (snapshot(trade.refresh()), outbox_count())

    with CaptureQueriesContext(connection) as queries:
        invoice_on_update(payment_hash_hex=trade.order.hold_invoice_hash, state=InvoiceState.SETTLED)

    assert [query["sql"].split(" FROM ")[1].split()[0] for query in queries] == ['"orders_order"']
    assert (snapshot(trade.refresh()), outbox_count()) == before
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []


def test_the_watcher_hands_acted_on_states_to_the_database_thread(monkeypatch):
    import asyncio
    import threading

    from asgiref.sync import SyncToAsync

    from lightning.types import InvoiceUpdate
    from orders import escrow_watcher

    calls: list[tuple[str, InvoiceState, str]] = []

    def recorded(*, payment_hash_hex: str, state: InvoiceState) -> None:
        calls.append((payment_hash_hex, state, threading.current_thread().name))

    monkeypatch.setattr(escrow_watcher, "invoice_on_update", recorded)
    watcher = escrow_watcher.EscrowWatcher(client=object())

    async def report() -> str:
        for state in (InvoiceState.OPEN, InvoiceState.ACCEPTED, InvoiceState.SETTLED):
            await watcher.on_update(InvoiceUpdate(payment_hash_hex="AB" * 32, state=state))
        return await asyncio.get_running_loop().run_in_executor(
            SyncToAsync.single_thread_executor, lambda: threading.current_thread().name
        )

    db_thread = asyncio.run(report())
    assert calls == [("ab" * 32, InvoiceState.ACCEPTED, db_thread), ("ab" * 32, InvoiceState.SETTLED, db_thread)]
    assert db_thread != threading.current_thread().name
    assert watcher._finished == {"ab" * 32}
