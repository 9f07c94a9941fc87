"""The maker's bond (docs/PROTOCOL.md §Bonds, Maker bond): hidden until locked, deadline, cancel."""

from datetime import timedelta

import pytest
from django.utils import timezone

from lightning.types import InvoiceState
from nostrbridge.protocol.enums import Action
from orders.bonds.jobs import reconcile_bonds
from orders.bonds.models import Bond
from orders.jobs import expire_pending_orders
from orders.models import Order
from tests.orders.bonds.support import history, htlc_accepted, lnd_calls
from tests.orders.services.support import configure, order_terms, published_statuses, set_price

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("bonds")]


@pytest.fixture(autouse=True)
def _maker_bonds(bonds, settings):
    configure(settings, MOSTRO_ANTI_ABUSE_BOND_APPLY_TO="make", MOSTRO_ANTI_ABUSE_BOND_AMOUNT_PCT=0.05)


def _new_order(alice, **terms):
    set_price()
    replies = alice.send(Action.NEW_ORDER, index=2, payload=order_terms(**terms), request_id=31)
    return replies, Order.objects.get()


def test_new_order_is_hidden_and_the_maker_is_asked_for_its_bond(alice, fake_ln):
    replies, order = _new_order(alice, kind="sell")
    bond = Bond.objects.get(order=order)
    # 100 VES at 1,260,900 VES/BTC = 7930 sats (no premium on the notional); 5 % = round(396.5) = 397 < 1000.
    assert (order.status, bond.role, bond.amount_sats, bond.request_id, bond.trade_index) == (
        "waiting-maker-bond", "maker", 1000, 31, 2,
    )  # fmt: skip
    assert [(r.action, r.message.request_id, r.message.trade_index) for r in replies] == [("pay-bond-invoice", 31, 2)]
    view = replies[0].json["order"]["payload"]["payment_request"][0]
    assert (view["status"], view["amount"], view["created_at"], view["expires_at"]) == ("pending", 1000, None, None)
    assert published_statuses(order.id) == []  # never published while hidden
    [hold] = lnd_calls(fake_ln, "add_hold_invoice")
    assert (hold["amount_sats"], hold["expiry_seconds"]) == (1000, 900)


def test_range_maker_bond_uses_the_maximum_converted(alice, fake_ln):
    _, order = _new_order(alice, kind="sell", fiat_amount=0, min_amount=100, max_amount=500)
    # 500 VES = floor(500 / 1,260,900 × 10^8) = 39654 sats; 5 % = round(1982.7) = 1983.
    assert Bond.objects.get(order=order).amount_sats == 1983


def test_locked_maker_bond_publishes_the_order_and_acks_with_the_original_request_id(alice, fake_ln):
    _, order = _new_order(alice, kind="sell")
    bond = Bond.objects.get(order=order)
    htlc_accepted(fake_ln, bond)
    order.refresh_from_db(), bond.refresh_from_db()
    assert (order.status, bond.state) == ("pending", "locked")
    assert [(r.action, r.message.request_id, r.message.trade_index) for r in alice.replies()] == [("new-order", 31, 2)]
    assert published_statuses(order.id) == ["pending"]


def test_unpaid_maker_bond_is_canceled_at_its_deadline_and_the_order_expires_silently(alice, fake_ln):
    _, order = _new_order(alice, kind="sell")
    alice.replies()
    bond = Bond.objects.get(order=order)
    assert reconcile_bonds(now=bond.invoice_expires_at - timedelta(seconds=1))["expired"] == 0
    assert reconcile_bonds(now=bond.invoice_expires_at + timedelta(seconds=1))["expired"] == 1
    order.refresh_from_db(), bond.refresh_from_db()
    assert (order.status, bond.state) == ("expired", "released")
    assert fake_ln.invoice_state(bond.hash) is InvoiceState.CANCELED
    assert (alice.replies(), published_statuses(order.id)) == ([], [])


def test_maker_cancel_during_waiting_maker_bond(alice, bob, fake_ln):
    _, order = _new_order(alice, kind="sell")
    alice.replies()
    refused = bob.send(Action.CANCEL, index=2, order_id=order.id, request_id=40)
    assert [r.json["cant-do"]["payload"] for r in refused] == [{"cant_do": "is_not_your_order"}]
    replies = alice.send(Action.CANCEL, index=2, order_id=order.id, request_id=41)
    assert [(r.action, r.message.request_id) for r in replies] == [("canceled", 41)]
    order.refresh_from_db()
    bond = Bond.objects.get(order=order)
    assert (order.status, bond.state, history(bond)) == ("canceled", "released", [("requested", "released")])
    assert fake_ln.invoice_state(bond.hash) is InvoiceState.CANCELED
    assert published_statuses(order.id) == []


def test_order_expiry_releases_the_locked_maker_bond(alice, fake_ln):
    _, order = _new_order(alice, kind="sell")
    bond = Bond.objects.get(order=order)
    htlc_accepted(fake_ln, bond)
    Order.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    expire_pending_orders()
    bond.refresh_from_db()
    assert (Order.objects.get(pk=order.pk).status, bond.state) == ("expired", "released")
    assert fake_ln.invoice_state(bond.hash) is InvoiceState.CANCELED


def test_both_maker_and_taker_post_bonds_and_a_taker_reset_keeps_the_maker_bond(alice, bob, fake_ln, settings):
    configure(settings, MOSTRO_ANTI_ABUSE_BOND_APPLY_TO="both")
    _, order = _new_order(alice, kind="sell")
    htlc_accepted(fake_ln, Bond.objects.get(order=order))
    alice.replies()
    bob.send(Action.TAKE_SELL, index=2, order_id=order.id, request_id=50)
    taker_bond = Bond.objects.get(order=order, role="taker")
    htlc_accepted(fake_ln, taker_bond)
    assert Order.objects.get(pk=order.pk).status == "waiting-buyer-invoice"
    bob.send(Action.CANCEL, index=2, order_id=order.id, request_id=51)
    states = dict(Bond.objects.filter(order=order).values_list("role", "state"))
    assert (Order.objects.get(pk=order.pk).status, states) == ("pending", {"maker": "locked", "taker": "released"})
