"""The operator's pre-trade cancel with takers' bonds racing (docs/PROTOCOL.md §Admin-cancel, §Bonds;
upstream's CancelOrder, #944: "the maker and any bonded taker get `admin-canceled`, and taker bonds are released")."""

import pytest

from lightning.types import InvoiceState
from nostrbridge.protocol.enums import Action
from orders.bonds.models import Bond
from orders.models import Order
from orders.services.admin_cancel import order_admin_cancel_pretrade
from tests.orders.bonds.support import buy_order, history, htlc_accepted, lnd_calls
from tests.orders.services.support import configure, order_terms, set_price

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("bonds")]


def _take_buy(order, taker, *, index):
    return taker.send(Action.TAKE_BUY, index=index, order_id=order.id, request_id=12)


def test_every_bonded_taker_is_told_admin_canceled_and_every_bond_is_released(alice, bob, carol, fake_ln):
    order = buy_order(alice)
    _take_buy(order, bob, index=2)
    _take_buy(order, carol, index=5)
    bob.replies(), carol.replies()
    fake_ln.calls.clear()

    order_admin_cancel_pretrade(order_id=order.id, actor_label="admin:olga")

    assert Order.objects.get(pk=order.pk).status == "canceled-by-admin"
    assert [(r.action, r.message.request_id, r.message.payload) for r in alice.replies()] == [
        ("admin-canceled", None, None)
    ]
    told = [(r.recipient, r.action, r.message.id, r.message.payload) for r in bob.replies() + carol.replies()]
    assert told == [
        (bob.pubkey(2), "admin-canceled", order.id, None),
        (carol.pubkey(5), "admin-canceled", order.id, None),
    ]
    bonds = list(Bond.objects.order_by("pk"))
    assert [(b.pubkey, b.state, history(b)) for b in bonds] == [
        (bob.pubkey(2), "released", [("requested", "released")]),
        (carol.pubkey(5), "released", [("requested", "released")]),
    ]
    assert sorted(c["payment_hash"] for c in lnd_calls(fake_ln, "cancel_invoice")) == sorted(b.hash for b in bonds)
    assert {fake_ln.invoice_state(b.hash) for b in bonds} == {InvoiceState.CANCELED}


def test_the_makers_locked_bond_is_released_with_the_order(alice, bob, fake_ln, settings):
    configure(settings, MOSTRO_ANTI_ABUSE_BOND_APPLY_TO="both")
    set_price()
    alice.send(Action.NEW_ORDER, index=2, payload=order_terms(kind="buy", payment_method="face to face"))
    order = Order.objects.get()
    maker_bond = Bond.objects.get(order=order)
    htlc_accepted(fake_ln, maker_bond)
    alice.replies()
    _take_buy(order, bob, index=2)
    bob.replies()

    order_admin_cancel_pretrade(order_id=order.id, actor_label="admin:olga")

    states = list(Bond.objects.order_by("pk").values_list("role", "state"))
    assert states == [("maker", "released"), ("taker", "released")]
    assert [r.action for r in alice.replies()] == ["admin-canceled"]
    assert [r.action for r in bob.replies()] == ["admin-canceled"]
    assert fake_ln.invoice_state(maker_bond.hash) is InvoiceState.CANCELED
