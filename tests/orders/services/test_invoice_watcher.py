"""The invoice watcher process wiring: resubscription at start, polling, HTLC events."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from nostrbridge import wake
from nostrbridge.protocol.enums import Action
from orders.escrow_watcher import EscrowWatcher
from orders.models import Order
from tests.orders.services.support import make_order, set_price
from tests.trade.harness import TradeClient

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("node")]


def _taken_buy_order() -> Order:
    set_price()
    alice, bob = TradeClient("alice"), TradeClient("bob")
    order = make_order(alice, kind="buy")
    bob.send(Action.TAKE_BUY, index=1, order_id=order.id)
    order.refresh_from_db()
    return order


async def _until(predicate) -> None:
    for _ in range(250):  # 5 s
        if await predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


def _status(order_id) -> str:
    return Order.objects.get(pk=order_id).status


async def test_watcher_drives_existing_and_new_escrows(fake_ln):
    first = await sync_to_async(_taken_buy_order)()
    stop = asyncio.Event()
    watcher = EscrowWatcher(fake_ln, poll_seconds=0.05)
    task = asyncio.create_task(watcher.run(stop))
    try:
        # Resubscribed at start.
        await _until(lambda: _async_true(first.hold_invoice_hash in watcher.watcher.watched))
        fake_ln.mark_accepted(first.hold_invoice_hash)
        await _until(lambda: _equals(_status, first.id, "waiting-buyer-invoice"))

        # A hold invoice created later is picked up by the poll.
        second = await sync_to_async(_taken_buy_order)()
        await _until(lambda: _async_true(second.hold_invoice_hash in watcher.watcher.watched))

        # LND cancels it (e.g. its own expiry): followed once, never resubscribed.
        fake_ln.cancel_invoice(payment_hash=bytes.fromhex(second.hold_invoice_hash))
        await _until(lambda: _async_true(second.hold_invoice_hash not in watcher.watcher.watched))
        await asyncio.sleep(0.2)  # several polls
        assert second.hold_invoice_hash not in watcher.watcher.watched
        assert await sync_to_async(_status)(second.id) == "waiting-payment"
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        await sync_to_async(connections.close_all)()  # the DB thread's connection, for teardown
    assert watcher.watcher.watched == frozenset()


async def _async_true(value: bool) -> bool:
    return value


async def _equals(func, order_id, expected) -> bool:
    return await sync_to_async(func)(order_id) == expected


async def test_a_new_escrow_is_subscribed_on_commit_not_at_the_next_poll(fake_ln):
    stop = asyncio.Event()
    watcher = EscrowWatcher(fake_ln, poll_seconds=60)  # only the commit nudge can explain a quick pick-up
    task = asyncio.create_task(watcher.run(stop))
    try:
        await _until(lambda: _async_true(len(wake._local_wakers[wake.INVOICES_CHANNEL]) == 1))
        order = await sync_to_async(_taken_buy_order)()
        await _until(lambda: _async_true(order.hold_invoice_hash in watcher.watcher.watched))
        fake_ln.mark_accepted(order.hold_invoice_hash)
        await _until(lambda: _equals(_status, order.id, "waiting-buyer-invoice"))
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        await sync_to_async(connections.close_all)()
    assert wake._local_wakers[wake.INVOICES_CHANNEL] == []


async def test_a_handed_over_escrow_is_subscribed_without_reading_every_watched_invoice(fake_ln, monkeypatch):
    from orders import escrow_watcher

    reads: list[int] = []
    real = escrow_watcher.hashes_to_watch

    def counted() -> list[str]:
        reads.append(1)
        return real()

    monkeypatch.setattr(escrow_watcher, "hashes_to_watch", counted)
    stop = asyncio.Event()
    watcher = EscrowWatcher(fake_ln, poll_seconds=60)
    task = asyncio.create_task(watcher.run(stop))
    try:
        await _until(lambda: _async_true(len(wake._local_wakers[wake.INVOICES_CHANNEL]) == 1))
        assert reads == [1]  # the start
        order = await sync_to_async(_taken_buy_order)()
        await _until(lambda: _async_true(order.hold_invoice_hash in watcher.watcher.watched))
        assert reads == [1]  # handed over by the take's commit: no read of every watched invoice
        wake.wake(wake.INVOICES_CHANNEL)  # a nudge without a hand-over (e.g. another process's)
        await _until(lambda: _async_true(reads == [1, 1]))
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        await sync_to_async(connections.close_all)()


def test_the_standalone_watcher_keeps_its_database_connections():
    """`manage.py invoice_watcher` closes old connections before every poll: with Django's
    CONN_MAX_AGE = 0 that reconnected once a second (on PostgreSQL a new server backend)."""
    from django import db

    from orders.management.commands.invoice_watcher import keep_connections

    saved = {alias: dict(db.connections.settings[alias]) for alias in db.connections.settings}
    try:
        keep_connections()
        assert {alias: db.connections.settings[alias]["CONN_MAX_AGE"] for alias in saved} == dict.fromkeys(saved, 300)
    finally:
        for alias, before in saved.items():
            db.connections.settings[alias].clear()
            db.connections.settings[alias].update(before)


async def test_a_refresh_keeps_the_database_threads_connection(fake_ln):
    """In `mostrod` the watcher's refresh runs in the bridge's database thread, where SQLite's
    CONN_MAX_AGE is 0: a `close_old_connections()` before every refresh closed that thread's
    healthy connection once a second (a schema parse and an empty statement cache each time)."""
    from nostrbridge.bridge import dbthread

    def connection_id() -> int:
        connections["default"].ensure_connection()
        return id(connections["default"].connection)

    in_db_thread = dbthread.db_call(connection_id)
    saved = dbthread._last_closed
    dbthread._last_closed = float("inf")  # the thread's own 30 s close is not due (not "now")
    watcher = EscrowWatcher(fake_ln, poll_seconds=60)
    try:
        first = await in_db_thread()
        assert await watcher.hashes() == []
        assert await watcher.hashes() == []
        assert await in_db_thread() == first
    finally:
        dbthread._last_closed = saved
        await sync_to_async(connections.close_all)()
