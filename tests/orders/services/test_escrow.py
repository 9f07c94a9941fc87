"""Escrow services against the fake LND: creation, HTLC events, settle and cancel."""

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from lightning.errors import AlreadySettledOrCanceled
from lightning.types import InvoiceState
from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import PaymentRequestPayload
from orders.models import EscrowRefund, Order, OrderStatusChange, Trader
from orders.services.escrow import (
    EscrowAlreadyCanceled,
    EscrowCancelError,
    EscrowError,
    EscrowSettleError,
    escrow_cancel,
    escrow_create_hold_invoice,
    escrow_deadline,
    escrow_on_accepted,
    escrow_settle,
)
from orders.services.escrow_reconcile import escrow_on_canceled
from tests.orders.services.support import (
    configure,
    make_order,
    mint_invoice,
    outbox_count,
    published_statuses,
    set_price,
    snapshot,
)
from tests.trade.harness import TradeClient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("node")]


@pytest.fixture
def parties():
    return TradeClient("alice"), TradeClient("bob")


@pytest.fixture
def waiting_payment(parties) -> Order:
    """A sell order Bob took with his invoice: the seller owes the escrow."""
    alice, bob = parties
    set_price()
    order = make_order(alice)
    payload = PaymentRequestPayload(None, mint_invoice(amount_sats=7827), None)
    bob.send(Action.TAKE_SELL, index=1, order_id=order.id, payload=payload, request_id=70)
    alice.replies()
    order.refresh_from_db()
    return order


@pytest.fixture
def active(waiting_payment, fake_ln, parties) -> Order:
    fake_ln.mark_accepted(waiting_payment.hold_invoice_hash)
    escrow_on_accepted(payment_hash_hex=waiting_payment.hold_invoice_hash)
    for client in parties:
        client.replies()
    waiting_payment.refresh_from_db()
    return waiting_payment


def test_hold_invoice_terms(fake_ln):
    order = Order(amount_sats=7851, fee_sats=24, fiat_code="VES", fiat_amount=100)
    escrow = escrow_create_hold_invoice(order=order)

    assert hashlib.sha256(bytes.fromhex(escrow.preimage_hex)).hexdigest() == escrow.payment_hash_hex
    invoice = fake_ln.invoices[escrow.payment_hash_hex]
    assert (invoice.amount_sats, invoice.cltv_expiry, invoice.is_hold) == (7875, 144, True)
    assert invoice.payment_request == escrow.payment_request
    assert escrow.order_fields(request_id=9) == {
        "hold_invoice_hash": escrow.payment_hash_hex,
        "hold_invoice_preimage": escrow.preimage_hex,
        "hold_invoice_payment_request": escrow.payment_request,
        "hold_invoice_request_id": 9,
        "invoice_held_at": None,
    }


def test_cltv_delta_comes_from_the_node_config(fake_ln, settings):
    configure(settings, LND_HOLD_INVOICE_CLTV_DELTA=200)
    escrow = escrow_create_hold_invoice(order=Order(amount_sats=1000, fee_sats=3, fiat_code="USD", fiat_amount=1))
    assert fake_ln.invoices[escrow.payment_hash_hex].cltv_expiry == 200


def test_no_amountless_hold_invoice(fake_ln):
    with pytest.raises(EscrowError):
        escrow_create_hold_invoice(order=Order(amount_sats=0, fee_sats=0, fiat_code="USD", fiat_amount=1))
    assert fake_ln.calls == []


# --- HTLC accepted -------------------------------------------------------------------------


def test_accepted_is_applied_once(waiting_payment, fake_ln):
    fake_ln.mark_accepted(waiting_payment.hold_invoice_hash)
    assert escrow_on_accepted(payment_hash_hex=waiting_payment.hold_invoice_hash) is True
    after_first = (snapshot(waiting_payment), outbox_count())

    # LND replays the state on every resubscription.
    assert escrow_on_accepted(payment_hash_hex=waiting_payment.hold_invoice_hash) is False
    assert (snapshot(waiting_payment), outbox_count()) == after_first
    assert waiting_payment.status == "active"
    assert waiting_payment.invoice_held_at is not None


def test_unwanted_htlc_is_refunded_when_the_take_was_reset(waiting_payment, fake_ln):
    # The take was undone meanwhile (hash cleared) but the seller's payment still arrived.
    held_hash = waiting_payment.hold_invoice_hash
    Order.objects.filter(pk=waiting_payment.pk).update(status="pending", hold_invoice_hash=None)
    fake_ln.mark_accepted(held_hash)
    before = (snapshot(waiting_payment), outbox_count())

    assert escrow_on_accepted(payment_hash_hex=held_hash) is False
    assert (snapshot(waiting_payment), outbox_count()) == before
    assert fake_ln.invoice_state(held_hash) is InvoiceState.CANCELED


def test_unwanted_htlc_is_refunded_when_the_order_was_canceled(waiting_payment, fake_ln):
    Order.objects.filter(pk=waiting_payment.pk).update(status="canceled")
    fake_ln.mark_accepted(waiting_payment.hold_invoice_hash)
    before = (snapshot(waiting_payment), outbox_count())

    assert escrow_on_accepted(payment_hash_hex=waiting_payment.hold_invoice_hash) is False
    assert (snapshot(waiting_payment), outbox_count()) == before
    assert fake_ln.invoice_state(waiting_payment.hold_invoice_hash) is InvoiceState.CANCELED


def test_seller_reputation_notice_carries_the_seller_reputation(parties, fake_ln):
    alice, bob = parties
    set_price()
    order = make_order(alice, kind="buy")
    Trader.objects.filter(pk=bob.identity.public_key_hex).delete()
    seller = Trader.objects.create(pubkey=bob.identity.public_key_hex, total_reviews=3, total_rating=4.0)
    created = int(seller.created_at.timestamp())
    bob.send(Action.TAKE_BUY, index=1, order_id=order.id)
    order.refresh_from_db()
    alice.replies()
    fake_ln.mark_accepted(order.hold_invoice_hash)
    escrow_on_accepted(payment_hash_hex=order.hold_invoice_hash)

    notice = alice.replies()[-1]
    assert notice.message.to_json() == (
        f'{{"order":{{"version":2,"request_id":null,"trade_index":null,"id":"{order.id}","action":"add-invoice",'
        '"payload":{"peer":{"pubkey":"","reputation":{"rating":4.0,"reviews":3,"operating_days":0,'
        f'"since":{created - created % 86_400}' + "}}}}}"
    )


# --- HTLC canceled by LND ----------------------------------------------------------------


def test_deadline_is_cltv_minus_margin_blocks(active, settings):
    assert escrow_deadline(active) == active.invoice_held_at + timedelta(hours=20)
    configure(settings, LND_ESCROW_DEADLINE_MARGIN_BLOCKS=200)  # ≥ cltv delta: clamped to half
    assert escrow_deadline(active) == active.invoice_held_at + timedelta(seconds=72 * 600)


def test_cancel_of_the_nodes_own_refund_is_silent(active):
    EscrowRefund.objects.create(order=active, hold_invoice_hash=active.hold_invoice_hash, reason="test")
    before = (snapshot(active), outbox_count())
    assert escrow_on_canceled(payment_hash_hex=active.hold_invoice_hash) is False
    assert (snapshot(active), outbox_count()) == before


def test_escrow_lost_after_the_deadline_cancels_an_active_order(active, parties):
    alice, bob = parties
    late = active.invoice_held_at + timedelta(hours=20)
    assert escrow_on_canceled(payment_hash_hex=active.hold_invoice_hash, now=late) is True

    active.refresh_from_db()
    assert active.status == "canceled"
    expected = ["hold-invoice-payment-canceled", "canceled"]
    for client in (alice, bob):
        replies = client.replies()
        assert [(r.action, r.message.request_id, r.payload) for r in replies] == [(a, None, None) for a in expected]
    assert published_statuses(active.id) == ["pending", "canceled"]


def test_escrow_lost_on_dispute_keeps_the_status_for_the_solver(active, parties):
    Order.objects.filter(pk=active.pk).update(status="dispute")
    late = active.invoice_held_at + timedelta(days=1)
    changes = OrderStatusChange.objects.count()
    assert escrow_on_canceled(payment_hash_hex=active.hold_invoice_hash, now=late) is True

    active.refresh_from_db()
    assert active.status == "dispute"
    assert OrderStatusChange.objects.count() == changes
    for client in parties:
        assert [r.action for r in client.replies()] == ["hold-invoice-payment-canceled"]


def test_cancel_of_an_unpaid_hold_invoice_is_silent(waiting_payment):
    before = (snapshot(waiting_payment), outbox_count())
    assert escrow_on_canceled(payment_hash_hex=waiting_payment.hold_invoice_hash, now=timezone.now()) is False
    assert (snapshot(waiting_payment), outbox_count()) == before


# --- settle / cancel helpers ---------------------------------------------------------------


def test_settle(active, fake_ln):
    escrow_settle(order=active)
    assert fake_ln.invoice_state(active.hold_invoice_hash) is InvoiceState.SETTLED
    escrow_settle(order=active)  # a retry after a crash is harmless
    assert fake_ln.invoice_state(active.hold_invoice_hash) is InvoiceState.SETTLED


def test_settle_after_a_refund_raises_typed_error(active, fake_ln):
    escrow_cancel(order=active)
    with pytest.raises(EscrowAlreadyCanceled) as caught:
        escrow_settle(order=active)
    assert isinstance(caught.value, EscrowSettleError)
    assert isinstance(caught.value, AlreadySettledOrCanceled)
    assert caught.value.settled is False


def test_settle_without_preimage(waiting_payment):
    waiting_payment.hold_invoice_preimage = None
    with pytest.raises(EscrowSettleError):
        escrow_settle(order=waiting_payment)


def test_settle_with_lnd_down(active, fake_ln):
    fake_ln.set_unavailable()
    with pytest.raises(EscrowSettleError):
        escrow_settle(order=active)


def test_cancel_is_idempotent(active, fake_ln):
    escrow_cancel(order=active)
    escrow_cancel(order=active)
    assert fake_ln.invoice_state(active.hold_invoice_hash) is InvoiceState.CANCELED


def test_cancel_without_invoice_is_a_no_op(fake_ln):
    escrow_cancel(order=Order(hold_invoice_hash=None))
    assert fake_ln.calls == []


def test_cancel_of_an_invoice_unknown_to_lnd_succeeds(fake_ln):
    escrow_cancel(order=Order(hold_invoice_hash="11" * 32))
    assert [name for name, _ in fake_ln.calls] == ["cancel_invoice"]


def test_cancel_after_settle_raises(active, fake_ln):
    escrow_settle(order=active)
    with pytest.raises(EscrowCancelError):
        escrow_cancel(order=active)


def test_cancel_with_lnd_down_raises(active, fake_ln):
    fake_ln.set_unavailable()
    with pytest.raises(EscrowCancelError):
        escrow_cancel(order=active)
    assert OutboundMessage.objects.filter(action="canceled").count() == 0
