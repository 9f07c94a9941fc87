"""Two takers' bond HTLCs reported at the same moment by two watcher threads (docs/PROTOCOL.md §Bonds):
exactly one bond locks and its take resumes, the other is released and its taker told `canceled`.
The order's row lock decides on PostgreSQL, SQLite's write lock on SQLite; the partial unique
index on one `locked` taker bond per order is the backstop either way."""

import threading

import pytest
from django.db import connection

from lightning.types import InvoiceState
from nostrbridge.protocol.enums import Action
from orders.bonds.lock import bond_on_update
from orders.bonds.models import Bond
from orders.models import Order
from tests.orders.bonds.support import buy_order

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("bonds")]


def test_two_bonds_reported_at_once_by_two_threads_exactly_one_locks(alice, bob, carol, fake_ln):
    order = buy_order(alice)
    bob.send(Action.TAKE_BUY, index=2, order_id=order.id, request_id=12)
    carol.send(Action.TAKE_BUY, index=5, order_id=order.id, request_id=13)
    bob.replies(), carol.replies()
    bonds = list(Bond.objects.order_by("pk"))
    for bond in bonds:
        fake_ln.mark_accepted(bond.hash)  # both wallets paid
    barrier = threading.Barrier(len(bonds))
    errors: list[BaseException] = []

    def report(bond: Bond) -> None:
        try:
            barrier.wait(timeout=10)
            bond_on_update(payment_hash_hex=bond.hash, state=InvoiceState.ACCEPTED)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=report, args=(bond,)) for bond in bonds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    states = {bond.pubkey: bond.state for bond in Bond.objects.all()}
    assert sorted(states.values()) == ["locked", "released"]
    [winner] = [key for key, state in states.items() if state == "locked"]
    [loser] = [key for key, state in states.items() if state == "released"]
    current = Order.objects.get(pk=order.pk)
    assert (current.status, current.seller_pubkey) == ("waiting-payment", winner)
    replies = {client.pubkey(index): client for client, index in ((bob, 2), (carol, 5))}
    assert [(r.action, r.message.payload) for r in replies[loser].replies()] == [("canceled", None)]
    assert [r.action for r in replies[winner].replies()] == ["pay-invoice"]
    assert {fake_ln.invoice_state(bond.hash) for bond in Bond.objects.filter(state="released")} == {
        InvoiceState.CANCELED
    }
    assert {fake_ln.invoice_state(bond.hash) for bond in Bond.objects.filter(state="locked")} == {InvoiceState.ACCEPTED}
