"""LND's escrow reports reconciled against the order, the guards made to decide (docs/PROTOCOL.md §Escrow).

A `canceled` report acts only on an order that still relies on that escrow (the statuses the
protocol lists, with the HTLC held) and that the node did not refund itself. The locked
re-check is made to decide: a competitor runs after the refund-row check and before the lock
(`after_first_call` on `escrow_refund_is_decided`). A `settled` report only logs what disagrees.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from disputes.models import Dispute
from lightning.types import InvoiceState
from nostrbridge.protocol.enums import Action
from orders.models import Order
from orders.services import escrow, escrow_reconcile
from orders.services.cancel import order_cancel
from orders.services.escrow import escrow_on_accepted
from orders.services.escrow_reconcile import escrow_on_canceled, escrow_on_settled, escrow_settle_decided
from orders.services.payout import payout_start
from orders.services.release import order_mark_fiat_sent, order_release
from tests.disputes.support import dispute_events
from tests.foundation.factories import make_order as factory_order
from tests.guards.support import actions, after_first_call, before_first_call, fresh_trade, settled_trade
from tests.orders.services.support import make_order, outbox_count, set_price, snapshot
from tests.trade.harness import TradeClient, reset_seen

pytestmark = pytest.mark.django_db


def _lnd_cancels(fake_ln, order: Order) -> None:
    fake_ln.cancel_invoice(payment_hash=bytes.fromhex(order.hold_invoice_hash))


def _buy_order(buyer: TradeClient) -> Order:
    set_price()
    return make_order(buyer, index=1, kind="buy")


def _seller_pays(fake_ln, order: Order, seller: TradeClient) -> Order:
    """`seller` takes the buy order and pays its escrow: `waiting-buyer-invoice`, HTLC held."""
    seller.send(Action.TAKE_BUY, index=1, order_id=order.id, request_id=3)
    order.refresh_from_db()
    fake_ln.mark_accepted(order.hold_invoice_hash)
    assert escrow_on_accepted(payment_hash_hex=order.hold_invoice_hash) is True
    order.refresh_from_db()
    assert (order.status, order.seller_pubkey) == ("waiting-buyer-invoice", seller.pubkey(1))
    return order


def _unchanged(*orders: Order):
    return [snapshot(o) for o in orders], outbox_count()


# --- which orders a cancel report moves ------------------------------------------------------------


def test_lost_escrow_of_a_buy_order_waiting_for_the_buyer_invoice_cancels_it(node, fake_ln):
    buyer, seller = TradeClient("buyer"), TradeClient("seller")
    order = _seller_pays(fake_ln, _buy_order(buyer), seller)
    reset_seen(buyer, seller)
    _lnd_cancels(fake_ln, order)

    assert escrow_on_canceled(payment_hash_hex=order.hold_invoice_hash) is True

    order.refresh_from_db()
    assert order.status == "canceled"
    assert (actions(buyer), actions(seller)) == (
        ["hold-invoice-payment-canceled", "canceled"],
        ["hold-invoice-payment-canceled", "canceled"],
    )


def test_each_report_moves_its_own_order(node, fake_ln):
    # Two orders lose their escrows: whichever of them the database lists first, each report
    # locks and cancels its own order.
    first, second = fresh_trade(fake_ln), fresh_trade(fake_ln)
    for trade in (first, second):
        _lnd_cancels(fake_ln, trade.order)

    assert escrow_on_canceled(payment_hash_hex=first.order.hold_invoice_hash) is True
    assert escrow_on_canceled(payment_hash_hex=second.order.hold_invoice_hash) is True

    assert (first.refresh().status, second.refresh().status) == ("canceled", "canceled")
    assert actions(second.buyer) == ["hold-invoice-payment-canceled", "canceled"]


def test_cancel_report_replayed_for_an_order_it_canceled_changes_nothing(node, fake_ln):
    trade = fresh_trade(fake_ln)
    _lnd_cancels(fake_ln, trade.order)
    assert escrow_on_canceled(payment_hash_hex=trade.order.hold_invoice_hash) is True
    assert trade.refresh().invoice_held_at is not None  # canceled, and its HTLC was held
    before = _unchanged(trade.order)

    assert escrow_on_canceled(payment_hash_hex=trade.order.hold_invoice_hash) is False

    assert _unchanged(trade.order) == before


def test_escrow_lnd_canceled_after_the_release_decided_leaves_the_decision_alone(node, fake_ln, monkeypatch):
    # The release committed settled-hold-invoice, then LND canceled the invoice before the
    # settle reached it: the decision stands (the payout withholds); no party is told of a
    # cancel, and the order is not moved.
    trade = fresh_trade(fake_ln)
    order_mark_fiat_sent(order_id=trade.order.id, sender=trade.buyer_key, request_id=4)
    before_first_call(
        monkeypatch, escrow_reconcile, "escrow_settle_decided", lambda: _lnd_cancels(fake_ln, trade.order)
    )
    order_release(order_id=trade.order.id, sender=trade.seller_key, request_id=5)
    order = trade.refresh()
    assert (order.status, fake_ln.invoice_state(order.hold_invoice_hash)) == (
        "settled-hold-invoice",
        InvoiceState.CANCELED,
    )
    before = _unchanged(order)

    assert escrow_on_canceled(payment_hash_hex=order.hold_invoice_hash) is False

    assert _unchanged(order) == before


def test_cancel_report_for_a_finished_trade_changes_nothing(node, fake_ln):
    trade = settled_trade(fake_ln)
    assert payout_start(order_id=trade.order.id) == "succeeded"
    order = trade.refresh()
    assert order.status == "success"
    before = _unchanged(order)

    assert escrow_on_canceled(payment_hash_hex=order.hold_invoice_hash) is False

    assert _unchanged(order) == before


def test_hold_invoice_never_paid_is_not_a_lost_escrow(node, fake_ln):
    # Unreachable through the protocol (the escrow is created on the way to waiting-payment),
    # but the rule holds: only a held HTLC can be lost. LND expiring an unpaid invoice of an
    # order waiting for the buyer's invoice moves nothing.
    invoice = escrow.escrow_create_hold_invoice(order=factory_order(amount_sats=5000, fee_sats=15))
    order = factory_order(
        status="waiting-buyer-invoice", amount_sats=5000, fee_sats=15, **invoice.order_fields(request_id=None)
    )
    fake_ln.cancel_invoice(payment_hash=bytes.fromhex(invoice.payment_hash_hex))
    before = _unchanged(order)

    assert escrow_on_canceled(payment_hash_hex=invoice.payment_hash_hex) is False

    assert _unchanged(order) == before


def test_lost_escrow_in_fiat_sent_opens_the_dispute_at_the_reports_time(node, fake_ln):
    trade = fresh_trade(fake_ln)
    order_mark_fiat_sent(order_id=trade.order.id, sender=trade.buyer_key, request_id=4)
    _lnd_cancels(fake_ln, trade.order)
    reported_at = (timezone.now() + timedelta(days=2)).replace(microsecond=0)

    assert escrow_on_canceled(payment_hash_hex=trade.order.hold_invoice_hash, now=reported_at) is True

    assert trade.refresh().status == "dispute"
    [event] = dispute_events(Dispute.objects.get(order=trade.order))
    assert (event.tag_value("s"), event.created_at) == ("initiated", int(reported_at.timestamp()))


# --- the locked re-check decides ----------------------------------------------------------------


def test_cancel_decided_between_the_refund_check_and_the_lock_is_not_reported(node, fake_ln, monkeypatch):
    # The parties' cooperative cancel lands after the report found no refund row: under the
    # lock the order no longer relies on the escrow, and the refund is the node's own.
    trade = fresh_trade(fake_ln)
    order_id = trade.order.id

    def cooperative_cancel():
        order_cancel(order_id=order_id, sender=trade.buyer_key, request_id=51)
        order_cancel(order_id=order_id, sender=trade.seller_key, request_id=52)
        reset_seen(trade.seller, trade.buyer)

    after_first_call(monkeypatch, escrow_reconcile, "escrow_refund_is_decided", cooperative_cancel)

    assert escrow_on_canceled(payment_hash_hex=trade.order.hold_invoice_hash) is False

    assert trade.refresh().status == "cooperatively-canceled"
    assert (actions(trade.buyer), actions(trade.seller)) == ([], [])


def test_report_for_the_previous_takers_escrow_leaves_the_next_take_alone(node, fake_ln, monkeypatch):
    # The first seller's escrow is reported canceled; before the lock that seller cancels
    # (the node refunds it) and a second seller takes and pays: the order relies on a new
    # escrow, which the old report must not cancel.
    buyer, first, second = TradeClient("buyer"), TradeClient("seller"), TradeClient("second")
    order = _seller_pays(fake_ln, _buy_order(buyer), first)
    old_hash = order.hold_invoice_hash

    def first_cancels_second_pays():
        order_cancel(order_id=order.id, sender=first.pubkey(1), request_id=61)
        _seller_pays(fake_ln, order, second)
        reset_seen(buyer, first, second)

    after_first_call(monkeypatch, escrow_reconcile, "escrow_refund_is_decided", first_cancels_second_pays)

    assert escrow_on_canceled(payment_hash_hex=old_hash) is False

    order.refresh_from_db()
    assert (order.status, order.seller_pubkey) == ("waiting-buyer-invoice", second.pubkey(1))
    assert order.hold_invoice_hash != old_hash
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.ACCEPTED
    assert (actions(buyer), actions(first), actions(second)) == ([], [], [])


# --- settled reports --------------------------------------------------------------------------


def test_settled_report_for_a_released_or_paid_trade_is_expected(node, fake_ln):
    trade = settled_trade(fake_ln)
    assert escrow_on_settled(payment_hash_hex=trade.order.hold_invoice_hash) is False
    assert payout_start(order_id=trade.order.id) == "succeeded"
    assert escrow_on_settled(payment_hash_hex=trade.order.hold_invoice_hash) is False
    assert escrow_on_settled(payment_hash_hex="ab" * 32) is False


def test_settled_report_for_an_order_that_did_not_decide_is_reported_and_changes_nothing(node, fake_ln, caplog):
    trade = fresh_trade(fake_ln)
    escrow.escrow_settle(order=trade.refresh())
    before = _unchanged(trade.order)

    assert escrow_on_settled(payment_hash_hex=trade.order.hold_invoice_hash) is True

    assert _unchanged(trade.order) == before
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        f"hold invoice of order {trade.order.pk} settled at LND while the order is active"
    ]


# --- the decided settle ---------------------------------------------------------------------------


def test_decided_settle_says_whether_lnd_settled(node, fake_ln):
    settled, refunded, unreachable = fresh_trade(fake_ln), fresh_trade(fake_ln), fresh_trade(fake_ln)
    _lnd_cancels(fake_ln, refunded.order)

    assert escrow_settle_decided(order=settled.refresh()) is True
    assert escrow_settle_decided(order=refunded.refresh()) is False
    fake_ln.set_unavailable(True)
    try:
        assert escrow_settle_decided(order=unreachable.refresh()) is False
    finally:
        fake_ln.set_unavailable(False)

    assert [fake_ln.invoice_state(t.order.hold_invoice_hash) for t in (settled, refunded, unreachable)] == [
        InvoiceState.SETTLED,
        InvoiceState.CANCELED,
        InvoiceState.ACCEPTED,
    ]
