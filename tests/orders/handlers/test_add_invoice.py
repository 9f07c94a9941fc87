"""`add-invoice` through the real pipeline (docs/PROTOCOL.md §Add-invoice)."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import PaymentRequestPayload
from orders.models import Order
from orders.services.escrow import escrow_on_accepted
from tests.orders.services.support import (
    assert_refused,
    cant_do_json,
    make_order,
    mint_invoice,
    outbox_count,
    set_price,
    snapshot,
)
from tests.trade.harness import TradeClient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("node")]


def _invoice(invoice: str) -> PaymentRequestPayload:
    return PaymentRequestPayload(None, invoice, None)


@pytest.fixture
def alice():
    return TradeClient("alice")


@pytest.fixture
def bob():
    return TradeClient("bob")


@pytest.fixture
def waiting_sell(alice, bob):
    """A sell order Bob took without an invoice."""
    set_price()
    order = make_order(alice)
    bob.send(Action.TAKE_SELL, index=1, order_id=order.id)
    alice.replies()
    order.refresh_from_db()
    return order


def test_sell_order_gets_its_hold_invoice_and_a_fresh_clock(waiting_sell, alice, bob, fake_ln):
    Order.objects.filter(pk=waiting_sell.pk).update(taken_at=timezone.now() - timedelta(minutes=10))
    payout = mint_invoice(amount_sats=7827)
    bob.send(Action.ADD_INVOICE, index=1, order_id=waiting_sell.id, payload=_invoice(payout), request_id=31)
    waiting_sell.refresh_from_db()

    assert (waiting_sell.status, waiting_sell.buyer_invoice, waiting_sell.hold_invoice_request_id) == (
        "waiting-payment",
        payout,
        31,
    )
    assert (timezone.now() - waiting_sell.taken_at).total_seconds() < 5
    assert [(r.action, r.message.request_id) for r in alice.replies()] == [("pay-invoice", None), ("pay-invoice", 31)]


def test_amountless_invoice_is_accepted(waiting_sell, bob):
    payout = mint_invoice(amount_sats=0)
    bob.send(Action.ADD_INVOICE, index=1, order_id=waiting_sell.id, payload=PaymentRequestPayload(None, payout, 7827))
    waiting_sell.refresh_from_db()
    assert (waiting_sell.status, waiting_sell.buyer_invoice) == ("waiting-payment", payout)


def test_lightning_address_is_accepted(waiting_sell, bob, lnurl_server):
    lnurl_server.pay_request("bob")
    bob.send(Action.ADD_INVOICE, index=1, order_id=waiting_sell.id, payload=_invoice(lnurl_server.address("bob")))
    waiting_sell.refresh_from_db()
    assert waiting_sell.status == "waiting-payment"


def test_buy_order_with_paid_escrow_becomes_active(alice, bob, fake_ln):
    set_price()
    order = make_order(alice, index=2, kind="buy")
    bob.send(Action.TAKE_BUY, index=2, order_id=order.id)
    order.refresh_from_db()
    fake_ln.mark_accepted(order.hold_invoice_hash)
    escrow_on_accepted(payment_hash_hex=order.hold_invoice_hash)
    writes = [name for name, _ in fake_ln.calls]

    alice.send(Action.ADD_INVOICE, index=2, order_id=order.id, payload=_invoice(mint_invoice(amount_sats=7827)))
    order.refresh_from_db()
    assert order.status == "active"
    assert [name for name, _ in fake_ln.calls if name != "get_info"] == [n for n in writes if n != "get_info"]


def test_replacing_a_failed_payout_invoice(waiting_sell, bob):
    Order.objects.filter(pk=waiting_sell.pk).update(
        status="settled-hold-invoice", failed_payment=True, payment_attempts=3, next_payout_at=timezone.now()
    )
    payout = mint_invoice(amount_sats=7827)
    replies = bob.send(Action.ADD_INVOICE, index=1, order_id=waiting_sell.id, payload=_invoice(payout), request_id=44)

    assert [r.message.to_json() for r in replies] == [
        '{"order":{"version":2,"request_id":44,"trade_index":null,'
        f'"id":"{waiting_sell.id}","action":"invoice-updated","payload":null}}}}'
    ]
    waiting_sell.refresh_from_db()
    assert (waiting_sell.buyer_invoice, waiting_sell.payment_attempts, waiting_sell.next_payout_at) == (payout, 0, None)
    assert waiting_sell.status == "settled-hold-invoice"


def test_no_swap_while_a_payout_is_in_flight(waiting_sell, bob, fake_ln):
    Order.objects.filter(pk=waiting_sell.pk).update(
        status="settled-hold-invoice", payout_payment_hash="ab" * 32, payout_claimed_at=timezone.now()
    )
    assert_refused(
        bob,
        Action.ADD_INVOICE,
        index=1,
        order_id=waiting_sell.id,
        payload=_invoice(mint_invoice(amount_sats=7827)),
        reason="not_allowed_by_status",
        fake_ln=fake_ln,
        orders=[waiting_sell],
    )


# --- refusals ----------------------------------------------------------------------------


def test_unknown_order(bob, fake_ln):
    assert_refused(
        bob,
        Action.ADD_INVOICE,
        index=1,
        order_id=uuid.uuid4(),
        payload=_invoice(mint_invoice()),
        reason="not_found",
        fake_ln=fake_ln,
    )


def test_only_the_buyer_may_send_it(waiting_sell, alice, fake_ln):
    assert_refused(
        alice,
        Action.ADD_INVOICE,
        index=1,
        order_id=waiting_sell.id,
        payload=_invoice(mint_invoice(amount_sats=7827)),
        reason="invalid_peer",
        fake_ln=fake_ln,
        orders=[waiting_sell],
    )


@pytest.mark.parametrize(
    ("_case", "invoice"),
    [
        ("amount_mismatch", lambda: mint_invoice(amount_sats=7875)),
        ("undecodable", lambda: "lnbcrt1garbage"),
        ("expires_too_soon", lambda: mint_invoice(amount_sats=7827, expiry_seconds=1200)),
    ],
)
def test_invalid_invoice(_case, invoice, waiting_sell, bob, fake_ln):
    assert_refused(
        bob,
        Action.ADD_INVOICE,
        index=1,
        order_id=waiting_sell.id,
        payload=_invoice(invoice()),
        reason="invalid_invoice",
        fake_ln=fake_ln,
        orders=[waiting_sell],
    )


def test_invoice_is_checked_before_the_status(waiting_sell, bob, fake_ln):
    Order.objects.filter(pk=waiting_sell.pk).update(status="active")
    assert_refused(
        bob,
        Action.ADD_INVOICE,
        index=1,
        order_id=waiting_sell.id,
        payload=_invoice("lnbcrt1garbage"),
        reason="invalid_invoice",
        fake_ln=fake_ln,
        orders=[waiting_sell],
    )


@pytest.mark.parametrize("status", ["waiting-payment", "active", "fiat-sent", "success", "canceled"])
def test_wrong_status(status, waiting_sell, bob, fake_ln):
    Order.objects.filter(pk=waiting_sell.pk).update(status=status)
    assert_refused(
        bob,
        Action.ADD_INVOICE,
        index=1,
        order_id=waiting_sell.id,
        payload=_invoice(mint_invoice(amount_sats=7827)),
        reason="not_allowed_by_status",
        fake_ln=fake_ln,
        orders=[waiting_sell],
    )


def test_replayed_add_invoice_creates_one_hold_invoice(waiting_sell, bob, fake_ln):
    payout = mint_invoice(amount_sats=7827)
    first = bob.send(Action.ADD_INVOICE, index=1, order_id=waiting_sell.id, payload=_invoice(payout), request_id=50)
    before, rows = snapshot(waiting_sell), outbox_count()
    # The same request built again (a client retry): refused by status, nothing changes.
    again = bob.send(Action.ADD_INVOICE, index=1, order_id=waiting_sell.id, payload=_invoice(payout), request_id=50)

    assert [r.action for r in first] == ["waiting-seller-to-pay"]
    assert [r.message.to_json() for r in again] == [
        cant_do_json("not_allowed_by_status", request_id=50, order_id=waiting_sell.id)
    ]
    assert snapshot(waiting_sell) == before
    assert outbox_count() == rows + 1
    assert [name for name, _ in fake_ln.calls].count("add_hold_invoice") == 1
