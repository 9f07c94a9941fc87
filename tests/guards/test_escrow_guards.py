"""The escrow's HTLC guards made to decide (docs/PROTOCOL.md §Escrow).

The watcher's report is read (`order_get_by_hold_hash`) before the guarded transition; a
competitor runs in between. An HTLC accepted for a hold invoice the order no longer uses must
never activate the order: the buyer would send fiat against an escrow that does not exist.
"""

import hashlib
from dataclasses import replace
from datetime import timedelta

import pytest
from django.utils import timezone

from disputes.models import Dispute
from lightning.errors import AlreadySettledOrCanceled
from lightning.types import InvoiceState
from mostro_site.config import clear_node_config_cache
from nostrbridge import wake
from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import PaymentRequestPayload
from orders.services import escrow, escrow_reconcile
from orders.services.cancel import order_cancel
from orders.services.escrow import escrow_deadline, escrow_on_accepted
from orders.services.escrow_reconcile import escrow_on_canceled
from orders.services.release import order_mark_fiat_sent
from tests.foundation.factories import make_order as factory_order
from tests.guards.support import actions, after_first_call, audit_trail, fresh_trade, row_state
from tests.orders.services.support import make_order, mint_invoice, order_events, set_price, snapshot
from tests.orders.trade_states import taken_sell_trade
from tests.trade.harness import TradeClient

pytestmark = pytest.mark.django_db


def _retake(order_id, taker: TradeClient, action=Action.TAKE_SELL, payload=None) -> None:
    payload = payload or PaymentRequestPayload(None, mint_invoice(amount_sats=0), None)
    taker.send(action, index=1, order_id=order_id, payload=payload, request_id=70)


def test_htlc_of_a_canceled_take_does_not_activate_the_next_take(node, fake_ln, monkeypatch):
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    old_hash, order_id, first_taker = trade.order.hold_invoice_hash, trade.order.id, trade.buyer_key
    fake_ln.mark_accepted(old_hash)
    second = TradeClient("second")

    def cancel_and_retake():
        order_cancel(order_id=order_id, sender=first_taker, request_id=61)  # refunds the old HTLC
        _retake(order_id, second)

    after_first_call(monkeypatch, escrow, "order_get_by_hold_hash", cancel_and_retake)
    assert escrow_on_accepted(payment_hash_hex=old_hash) is False

    order = trade.refresh()
    assert (order.status, order.buyer_pubkey, order.invoice_held_at) == ("waiting-payment", second.pubkey(1), None)
    assert order.hold_invoice_hash != old_hash
    assert fake_ln.invoice_state(old_hash) is InvoiceState.CANCELED
    assert "buyer-took-order" not in actions(trade.seller)


def test_htlc_of_a_canceled_buy_take_does_not_move_the_next_take(node, fake_ln, monkeypatch):
    maker, seller, second = TradeClient("buyer"), TradeClient("seller"), TradeClient("second-seller")
    set_price()
    order = make_order(maker, index=1, kind="buy")
    seller.send(Action.TAKE_BUY, index=1, order_id=order.id, request_id=3)
    order.refresh_from_db()
    old_hash = order.hold_invoice_hash
    fake_ln.mark_accepted(old_hash)

    def cancel_and_retake():
        order_cancel(order_id=order.id, sender=seller.pubkey(1), request_id=61)
        second.send(Action.TAKE_BUY, index=1, order_id=order.id, request_id=71)

    after_first_call(monkeypatch, escrow, "order_get_by_hold_hash", cancel_and_retake)
    assert escrow_on_accepted(payment_hash_hex=old_hash) is False

    assert row_state(order, "status", "seller_pubkey", "invoice_held_at") == (
        "waiting-payment",
        second.pubkey(1),
        None,
    )
    assert audit_trail(order)[-1] == ("pending", "waiting-payment")


def test_take_reset_after_the_refund_check_is_decided_by_the_hash_guard_sell(node, fake_ln, monkeypatch):
    # The cancel and the re-take land after the report's refund-row check and before its lock:
    # the order waits again, without an HTLC, for a new escrow. Only the transition's hash
    # guard tells the old HTLC from the new take's.
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    old_hash, order_id, first_taker = trade.order.hold_invoice_hash, trade.order.id, trade.buyer_key
    fake_ln.mark_accepted(old_hash)
    second = TradeClient("second")

    def cancel_and_retake():
        order_cancel(order_id=order_id, sender=first_taker, request_id=61)
        _retake(order_id, second)
        trade.seller.replies(), second.replies()

    after_first_call(monkeypatch, escrow, "escrow_refund_is_decided", cancel_and_retake)
    assert escrow_on_accepted(payment_hash_hex=old_hash) is False

    order = trade.refresh()
    assert (order.status, order.buyer_pubkey, order.invoice_held_at) == ("waiting-payment", second.pubkey(1), None)
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.OPEN
    assert audit_trail(order)[-1] == ("pending", "waiting-payment")
    assert (actions(trade.seller), actions(second)) == ([], [])


def test_take_reset_after_the_refund_check_is_decided_by_the_hash_guard_buy(node, fake_ln, monkeypatch):
    maker, seller, second = TradeClient("buyer"), TradeClient("seller"), TradeClient("second-seller")
    set_price()
    order = make_order(maker, index=1, kind="buy")
    seller.send(Action.TAKE_BUY, index=1, order_id=order.id, request_id=3)
    order.refresh_from_db()
    old_hash = order.hold_invoice_hash
    fake_ln.mark_accepted(old_hash)

    def cancel_and_retake():
        order_cancel(order_id=order.id, sender=seller.pubkey(1), request_id=61)
        second.send(Action.TAKE_BUY, index=1, order_id=order.id, request_id=71)
        maker.replies()

    after_first_call(monkeypatch, escrow, "escrow_refund_is_decided", cancel_and_retake)
    assert escrow_on_accepted(payment_hash_hex=old_hash) is False

    assert row_state(order, "status", "seller_pubkey", "invoice_held_at", "taken_at")[:3] == (
        "waiting-payment",
        second.pubkey(1),
        None,
    )
    assert audit_trail(order)[-1] == ("pending", "waiting-payment")
    assert (actions(maker), actions(second)) == ([], [])


def test_htlc_reported_while_a_decided_refund_waits_for_lnd_is_refunded_at_once(node, fake_ln, monkeypatch):
    # The maker's cancel decided the refund between the report's read and its refund-row
    # check, and LND was down for the refund itself: the report refunds the HTLC now instead
    # of leaving the seller's sats locked until the retry sweep.
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    payment_hash, order_id, maker = trade.order.hold_invoice_hash, trade.order.id, trade.seller_key
    fake_ln.mark_accepted(payment_hash)

    def cancel_while_lnd_is_down():
        fake_ln.set_unavailable(True)
        try:
            order_cancel(order_id=order_id, sender=maker, request_id=60)
        finally:
            fake_ln.set_unavailable(False)

    after_first_call(monkeypatch, escrow, "order_get_by_hold_hash", cancel_while_lnd_is_down)
    assert escrow_on_accepted(payment_hash_hex=payment_hash) is False

    assert (trade.refresh().status, trade.order.invoice_held_at) == ("canceled", None)
    assert fake_ln.invoice_state(payment_hash) is InvoiceState.CANCELED
    assert "buyer-took-order" not in actions(trade.seller)


def test_htlc_reported_twice_at_once_is_recorded_once(node, fake_ln, monkeypatch):
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    payment_hash = trade.order.hold_invoice_hash
    fake_ln.mark_accepted(payment_hash)
    competitor = after_first_call(
        monkeypatch, escrow, "order_get_by_hold_hash", lambda: escrow_on_accepted(payment_hash_hex=payment_hash)
    )

    assert escrow_on_accepted(payment_hash_hex=payment_hash) is False

    assert competitor == [True]
    assert [edge for edge in audit_trail(trade.order) if edge[1] == "active"] == [("waiting-payment", "active")]
    assert actions(trade.seller) == ["buyer-took-order"]
    assert actions(trade.buyer) == ["hold-invoice-payment-accepted"]


def test_htlc_accepted_activates_only_its_own_order(node, fake_ln):
    mine, other = taken_sell_trade(fake_ln, with_invoice=True), _second_waiting_sell(fake_ln)
    before = snapshot(other)
    fake_ln.mark_accepted(mine.order.hold_invoice_hash)

    assert escrow_on_accepted(payment_hash_hex=mine.order.hold_invoice_hash) is True

    assert mine.refresh().status == "active"
    assert snapshot(other) == before


def _second_waiting_sell(fake_ln):
    seller, buyer = TradeClient("seller-2"), TradeClient("buyer-2")
    order = make_order(seller, index=1, kind="sell")
    _retake(order.id, buyer)
    order.refresh_from_db()
    assert order.status == "waiting-payment"
    return order


# --- the escrow lost at LND ------------------------------------------------------------------------


def test_escrow_lost_long_before_its_deadline_cancels_only_that_order(node, fake_ln):
    # Not one of the node's refunds (no refund row): the escrow is gone whatever the clock says.
    mine, other = fresh_trade(fake_ln), fresh_trade(fake_ln)
    before = snapshot(other.order)
    early = mine.refresh().invoice_held_at + timedelta(seconds=1)
    fake_ln.cancel_invoice(payment_hash=bytes.fromhex(mine.order.hold_invoice_hash))

    assert escrow_on_canceled(payment_hash_hex=mine.order.hold_invoice_hash, now=early) is True

    assert mine.refresh().status == "canceled"
    assert snapshot(other.order) == before
    assert actions(mine.buyer) == ["hold-invoice-payment-canceled", "canceled"]


def test_escrow_lost_while_the_order_leaves_escrow_does_nothing(node, fake_ln, monkeypatch):
    trade = fresh_trade(fake_ln)
    deadline = escrow_deadline(trade.refresh())
    trade.buyer.replies()
    order_id = trade.order.id

    def cooperative_cancel():
        order_cancel(order_id=order_id, sender=trade.buyer_key, request_id=51)
        order_cancel(order_id=order_id, sender=trade.seller_key, request_id=52)

    after_first_call(monkeypatch, escrow_reconcile, "order_get_by_hold_hash", cooperative_cancel)
    assert escrow_on_canceled(payment_hash_hex=trade.order.hold_invoice_hash, now=deadline) is False

    assert trade.refresh().status == "cooperatively-canceled"
    assert "hold-invoice-payment-canceled" not in actions(trade.buyer)


def test_buy_order_htlc_starts_the_buyers_duty_clock(node, fake_ln):
    maker, seller = TradeClient("buyer"), TradeClient("seller")
    set_price()
    order = make_order(maker, index=1, kind="buy")
    seller.send(Action.TAKE_BUY, index=1, order_id=order.id, request_id=3)
    order.refresh_from_db()
    taken_at = order.taken_at
    fake_ln.mark_accepted(order.hold_invoice_hash)

    assert escrow_on_accepted(payment_hash_hex=order.hold_invoice_hash) is True

    order.refresh_from_db()
    assert order.status == "waiting-buyer-invoice"
    assert order.taken_at == order.invoice_held_at
    assert order.taken_at > taken_at


# --- the hold invoice itself -----------------------------------------------------------------------


def test_smallest_escrow_is_one_sat_with_a_fresh_32_byte_preimage(node, fake_ln):
    order = factory_order(amount_sats=1, fee_sats=0)
    invoice = escrow.escrow_create_hold_invoice(order=order)
    [(_, call)] = [c for c in fake_ln.calls if c[0] == "add_hold_invoice"]
    assert (call["amount_sats"], len(bytes.fromhex(invoice.preimage_hex))) == (1, 32)
    assert hashlib.sha256(bytes.fromhex(invoice.preimage_hex)).hexdigest() == invoice.payment_hash_hex


def test_node_answering_another_hash_is_refused(node, fake_ln, monkeypatch):
    order = factory_order(amount_sats=5000, fee_sats=15)
    real = fake_ln.add_hold_invoice

    def wrong_hash(**kwargs):
        return replace(real(**kwargs), payment_hash_hex="ab" * 32)

    monkeypatch.setattr(fake_ln, "add_hold_invoice", wrong_hash)
    with pytest.raises(escrow.EscrowError) as refused:
        escrow.escrow_create_hold_invoice(order=order)
    assert str(refused.value) == f"LND returned hash {'ab' * 32} for order {order.id}"


def test_unused_hold_invoice_is_canceled_and_a_failure_is_only_logged(node, fake_ln, monkeypatch, caplog):
    first = escrow.escrow_create_hold_invoice(order=factory_order(amount_sats=5000, fee_sats=15))
    escrow.escrow_cancel_unused(invoice=first, order_id="o-1")
    assert fake_ln.invoice_state(first.payment_hash_hex) is InvoiceState.CANCELED

    second = escrow.escrow_create_hold_invoice(order=factory_order(amount_sats=5000, fee_sats=15))
    fake_ln.set_unavailable(True)
    try:
        escrow.escrow_cancel_unused(invoice=second, order_id="o-2")
    finally:
        fake_ln.set_unavailable(False)
    assert fake_ln.invoice_state(second.payment_hash_hex) is InvoiceState.OPEN
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"][-1] == (
        f"could not cancel unused hold invoice {second.payment_hash_hex} of order o-2"
    )


def test_cancel_of_an_invoice_the_node_already_canceled_succeeds(node, fake_ln, monkeypatch):
    trade = fresh_trade(fake_ln)

    def already_canceled(**kwargs):
        raise AlreadySettledOrCanceled("invoice already canceled", code="UNKNOWN", details="invoice already canceled")

    monkeypatch.setattr(fake_ln, "cancel_invoice", already_canceled)
    escrow.escrow_cancel(order=trade.refresh())  # no error: the seller is refunded either way


# --- the escrow deadline -----------------------------------------------------------------------------


def test_deadline_needs_a_held_escrow(node, fake_ln):
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    assert escrow_deadline(trade.refresh()) is None


@pytest.mark.parametrize(("cltv", "margin", "blocks"), [(145, 145, 73), (145, 144, 1), (144, 143, 1), (144, 144, 72)])
def test_deadline_margin_at_the_cltv_delta_is_clamped_to_half(cltv, margin, blocks, node, fake_ln, settings):
    settings.LND_HOLD_INVOICE_CLTV_DELTA = cltv
    settings.LND_ESCROW_DEADLINE_MARGIN_BLOCKS = margin
    clear_node_config_cache()
    order = fresh_trade(fake_ln).refresh()
    assert escrow_deadline(order) == order.invoice_held_at + timedelta(seconds=blocks * 600)


def test_cancel_report_for_an_unknown_or_unlocked_escrow_does_nothing(node, fake_ln):
    waiting = taken_sell_trade(fake_ln, with_invoice=True).refresh()
    later = timezone.now() + timedelta(days=30)
    outbox = OutboundMessage.objects.count()

    assert escrow_on_canceled(payment_hash_hex="ab" * 32, now=later) is False
    assert escrow_on_canceled(payment_hash_hex=waiting.hold_invoice_hash, now=later) is False
    assert OutboundMessage.objects.count() == outbox


def test_cancel_report_on_fiat_sent_tells_both_and_opens_the_buyers_dispute(node, fake_ln):
    trade = fresh_trade(fake_ln)
    order_mark_fiat_sent(order_id=trade.order.id, sender=trade.buyer_key, request_id=4)
    trade.buyer.replies(), trade.seller.replies()
    other = fresh_trade(fake_ln)
    before = snapshot(other.order)
    order = trade.refresh()

    assert escrow_on_canceled(payment_hash_hex=order.hold_invoice_hash, now=escrow_deadline(order)) is True

    assert trade.refresh().status == "dispute"  # never stays fiat-sent without its escrow
    assert Dispute.objects.get(order=order).initiator == "buyer"
    assert (actions(trade.buyer), actions(trade.seller)) == (
        ["hold-invoice-payment-canceled", "dispute-initiated-by-you"],
        ["hold-invoice-payment-canceled", "dispute-initiated-by-peer"],
    )
    assert snapshot(other.order) == before


# --- replays, late reports and the watcher's nudge -----------------------------------------------


def test_replayed_htlc_report_for_an_active_escrow_is_ignored_not_refunded(node, fake_ln):
    trade = fresh_trade(fake_ln)  # active: its HTLC was recorded
    before = snapshot(trade.order)
    outbox = OutboundMessage.objects.count()

    assert escrow_on_accepted(payment_hash_hex=trade.order.hold_invoice_hash) is False

    assert fake_ln.invoice_state(trade.order.hold_invoice_hash) is InvoiceState.ACCEPTED
    assert (snapshot(trade.order), OutboundMessage.objects.count()) == (before, outbox)


def test_htlc_report_racing_a_maker_cancel_stops_quietly(node, fake_ln, monkeypatch):
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    payment_hash, order_id, maker = trade.order.hold_invoice_hash, trade.order.id, trade.seller_key
    fake_ln.mark_accepted(payment_hash)
    after_first_call(
        monkeypatch,
        escrow,
        "order_get_by_hold_hash",
        lambda: order_cancel(order_id=order_id, sender=maker, request_id=60),
    )

    assert escrow_on_accepted(payment_hash_hex=payment_hash) is False
    assert trade.refresh().status == "canceled"
    assert fake_ln.invoice_state(payment_hash) is InvoiceState.CANCELED


def test_htlc_on_an_order_already_waiting_for_the_buyer_invoice_is_recorded(node, fake_ln):
    invoice = escrow.escrow_create_hold_invoice(order=factory_order(amount_sats=5000, fee_sats=15))
    order = factory_order(
        status="waiting-buyer-invoice", amount_sats=5000, fee_sats=15, **invoice.order_fields(request_id=None)
    )
    fake_ln.mark_accepted(invoice.payment_hash_hex)

    assert escrow_on_accepted(payment_hash_hex=invoice.payment_hash_hex) is True

    assert row_state(order, "status")[0] == "waiting-buyer-invoice"
    assert order.invoice_held_at is not None


def test_htlc_events_publish_with_the_nodes_network(node, fake_ln):
    buy = taken_buy_waiting_payment(fake_ln)
    fake_ln.mark_accepted(buy.hold_invoice_hash)
    assert escrow_on_accepted(payment_hash_hex=buy.hold_invoice_hash) is True
    sell = fresh_trade(fake_ln)
    order = sell.refresh()
    fake_ln.cancel_invoice(payment_hash=bytes.fromhex(order.hold_invoice_hash))
    assert escrow_on_canceled(payment_hash_hex=order.hold_invoice_hash, now=escrow_deadline(order)) is True
    assert order_events(order.id)[-1].tag_value("network") == "regtest"
    assert {event.tag_value("network") for event in order_events(buy.id)} == {"regtest"}


def test_new_escrow_wakes_the_invoice_watcher_after_the_commit(
    node, fake_ln, monkeypatch, django_capture_on_commit_callbacks
):
    woken: list[str] = []
    monkeypatch.setattr(wake, "wake", woken.append)
    set_price()
    order = make_order(TradeClient("seller"), index=1, kind="sell")
    with django_capture_on_commit_callbacks(execute=True):
        _retake(order.id, TradeClient("buyer"))
    assert woken.count(wake.INVOICES_CHANNEL) == 1


def taken_buy_waiting_payment(fake_ln):
    maker, seller = TradeClient("buyer"), TradeClient("seller")
    set_price()
    order = make_order(maker, index=1, kind="buy")
    seller.send(Action.TAKE_BUY, index=1, order_id=order.id, request_id=3)
    order.refresh_from_db()
    assert order.status == "waiting-payment"
    return order
