"""Release and cancel guards made to decide: a second actor between the first one's read and
its guarded write (docs/PROTOCOL.md §Release, §Cancel)."""

import pytest

from disputes.models import Dispute
from disputes.services import resolve as resolve_service
from disputes.services.resolve import dispute_close_by_parties
from lightning.types import InvoiceState
from nostrbridge.context import SilentDrop
from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.payloads import AmountPayload, NextTradePayload, PaymentRequestPayload
from orders.models import EscrowRefund, Order
from orders.services import cancel as cancel_service
from orders.services import release as release_service
from orders.services.cancel import order_cancel
from orders.services.escrow import escrow_on_accepted
from orders.services.escrow_refund import escrow_refunds_retry
from orders.services.release import order_mark_fiat_sent, order_release
from tests.guards.support import actions, after_first_call, audit_trail, fresh_trade, loses_to, payout_tasks, row_state
from tests.orders.services.support import make_order, mint_invoice, order_events, set_price, snapshot
from tests.orders.trade_states import KEYS, active_sell_trade, taken_sell_trade
from tests.trade.harness import TradeClient

pytestmark = pytest.mark.django_db


def _fiat_sent(fake_ln):
    trade = fresh_trade(fake_ln)
    order_mark_fiat_sent(order_id=trade.order.id, sender=trade.buyer_key, request_id=4)
    trade.buyer.replies()
    trade.seller.replies()
    return trade


def test_second_release_between_read_and_decision_is_refused(
    node, fake_ln, monkeypatch, django_capture_on_commit_callbacks
):
    trade = _fiat_sent(fake_ln)
    order_id, seller = trade.order.id, trade.seller_key
    with django_capture_on_commit_callbacks() as callbacks:
        refused, competitor = loses_to(
            monkeypatch,
            release_service,
            "escrow_ensure_held",
            lambda: order_release(order_id=order_id, sender=seller, request_id=6),
            lambda: order_release(order_id=order_id, sender=seller, request_id=5),
            CantDo,
        )

    assert refused.reason is CantDoReason.NOT_ALLOWED_BY_STATUS  # never silence
    assert competitor.status == "settled-hold-invoice"
    assert audit_trail(trade.order)[-1] == ("fiat-sent", "settled-hold-invoice")
    assert [a for a in audit_trail(trade.order) if a[1] == "settled-hold-invoice"] == [
        ("fiat-sent", "settled-hold-invoice")
    ]
    assert actions(trade.buyer) == ["released"]
    assert actions(trade.seller) == ["hold-invoice-payment-settled", "rate"]
    assert payout_tasks(callbacks) == 1
    assert row_state(trade.order, "payout_request_id")[0] == 6


def test_release_of_one_order_leaves_another_fiat_sent_order_alone(node, fake_ln, django_capture_on_commit_callbacks):
    mine, other = _fiat_sent(fake_ln), _fiat_sent(fake_ln)
    before = snapshot(other.order)
    order_release(order_id=mine.order.id, sender=mine.seller_key, request_id=5)
    assert row_state(mine.order, "status")[0] == "settled-hold-invoice"
    assert snapshot(other.order) == before


def test_fiat_sent_between_read_and_transition_is_refused_once(node, fake_ln, monkeypatch):
    trade = fresh_trade(fake_ln)
    order_id, buyer = trade.order.id, trade.buyer_key
    refused, competitor = loses_to(
        monkeypatch,
        release_service,
        "order_get_or_not_found",
        lambda: order_mark_fiat_sent(order_id=order_id, sender=buyer, request_id=7),
        lambda: order_mark_fiat_sent(order_id=order_id, sender=buyer, request_id=8),
        CantDo,
    )
    assert refused.reason is CantDoReason.NOT_ALLOWED_BY_STATUS
    assert competitor.status == "fiat-sent"
    assert actions(trade.buyer) == ["fiat-sent-ok"]


# --- cooperative cancel --------------------------------------------------------------------------


def test_both_parties_initiating_at_once_records_one_initiator(node, fake_ln, monkeypatch):
    trade = fresh_trade(fake_ln)
    order_id, buyer, seller = trade.order.id, trade.buyer_key, trade.seller_key
    refused, _ = loses_to(
        monkeypatch,
        cancel_service,
        "order_get_or_not_found",
        lambda: order_cancel(order_id=order_id, sender=seller, request_id=51),
        lambda: order_cancel(order_id=order_id, sender=buyer, request_id=52),
        CantDo,
    )

    assert refused.reason is CantDoReason.NOT_ALLOWED_BY_STATUS
    order = trade.refresh()
    assert (order.status, order.cancel_initiator_pubkey) == ("active", seller)
    assert (order.seller_cooperative_cancel, order.buyer_cooperative_cancel) == (True, False)
    assert actions(trade.buyer) == ["cooperative-cancel-initiated-by-peer"]


def test_accept_for_a_withdrawn_initiator_is_refused(node, fake_ln, monkeypatch):
    trade = fresh_trade(fake_ln)
    order_cancel(order_id=trade.order.id, sender=trade.seller_key, request_id=51)
    order = trade.refresh()

    def initiator_changes():
        # Between the buyer's read and its accept, the initiation is replaced by the buyer's own.
        Order.objects.filter(pk=order.pk).update(cancel_initiator_pubkey=trade.buyer_key)

    after_first_call(monkeypatch, cancel_service, "order_get_or_not_found", initiator_changes)
    with pytest.raises(CantDo) as refused:
        order_cancel(order_id=order.id, sender=trade.buyer_key, request_id=53)
    assert refused.value.reason is CantDoReason.NOT_ALLOWED_BY_STATUS
    assert row_state(order, "status")[0] == "active"


def test_cooperative_initiation_on_one_order_leaves_another_active_order_alone(node, fake_ln):
    mine, other = fresh_trade(fake_ln), fresh_trade(fake_ln)
    before = snapshot(other.order)
    order_cancel(order_id=mine.order.id, sender=mine.buyer_key, request_id=51)
    assert row_state(mine.order, "cancel_initiator_pubkey")[0] == mine.buyer_key
    assert snapshot(other.order) == before


# --- taker and maker cancel -------------------------------------------------------------------


def test_stale_taker_cancel_does_not_reset_the_next_takers_trade(node, fake_ln, monkeypatch):
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    order_id, first_taker = trade.order.id, trade.buyer_key
    second = TradeClient("second-taker")

    def cancel_and_retake():
        order_cancel(order_id=order_id, sender=first_taker, request_id=61)
        second.send(
            Action.TAKE_SELL,
            index=1,
            order_id=order_id,
            payload=PaymentRequestPayload(None, mint_invoice(amount_sats=0), None),
            request_id=62,
        )

    after_first_call(monkeypatch, cancel_service, "order_get_or_not_found", cancel_and_retake)
    with pytest.raises(CantDo) as refused:
        order_cancel(order_id=order_id, sender=first_taker, request_id=63)

    assert refused.value.reason is CantDoReason.NOT_ALLOWED_BY_STATUS
    order = trade.refresh()
    assert (order.status, order.buyer_pubkey) == ("waiting-payment", second.pubkey(1))
    assert fake_ln.invoice_state(order.hold_invoice_hash).value == "OPEN"


def test_maker_cancel_racing_a_take_is_refused(node, fake_ln, monkeypatch):
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    order_id, taker = trade.order.id, trade.buyer_key
    order_cancel(order_id=order_id, sender=taker, request_id=61)  # back on the book
    maker = trade.seller_key
    retaker = TradeClient("retaker")
    after_first_call(
        monkeypatch,
        cancel_service,
        "order_get_or_not_found",
        lambda: retaker.send(
            Action.TAKE_SELL,
            index=1,
            order_id=order_id,
            payload=PaymentRequestPayload(None, mint_invoice(amount_sats=0), None),
            request_id=64,
        ),
    )
    with pytest.raises(CantDo) as refused:
        order_cancel(order_id=order_id, sender=maker, request_id=65)
    assert refused.value.reason is CantDoReason.NOT_ALLOWED_BY_STATUS
    assert row_state(trade.order, "status", "buyer_pubkey") == ("waiting-payment", retaker.pubkey(1))


def _take_sell(client: TradeClient, order_id, *, with_invoice: bool, request_id: int):
    payload = PaymentRequestPayload(None, mint_invoice(amount_sats=0), None) if with_invoice else None
    client.send(Action.TAKE_SELL, index=1, order_id=order_id, payload=payload, request_id=request_id)


def test_maker_cancel_read_before_a_take_reset_and_retake_is_refused(node, fake_ln, monkeypatch):
    # Still waiting-payment with no HTLC, but for another take: only the escrow's hash tells.
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    order_id, first_taker, old_hash = trade.order.id, trade.buyer_key, trade.order.hold_invoice_hash
    retaker = TradeClient("retaker")

    def reset_and_retake():
        order_cancel(order_id=order_id, sender=first_taker, request_id=61)
        _take_sell(retaker, order_id, with_invoice=True, request_id=62)

    after_first_call(monkeypatch, cancel_service, "order_get_or_not_found", reset_and_retake)
    with pytest.raises(CantDo) as refused:
        order_cancel(order_id=order_id, sender=trade.seller_key, request_id=63)

    assert refused.value.reason is CantDoReason.NOT_ALLOWED_BY_STATUS
    order = trade.refresh()
    assert (order.status, order.buyer_pubkey) == ("waiting-payment", retaker.pubkey(1))
    assert order.hold_invoice_hash != old_hash
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.OPEN
    assert list(EscrowRefund.objects.filter(order=order).values_list("hold_invoice_hash", flat=True)) == [old_hash]


def test_buy_makers_cancel_read_before_the_htlc_is_refused(node, fake_ln, monkeypatch):
    # The seller's HTLC is recorded between the maker's read and its write: still a waiting
    # status (waiting-buyer-invoice), but with an escrow the cancel did not see.
    maker, seller = TradeClient("buyer"), TradeClient("seller")
    set_price()
    order = make_order(maker, index=1, kind="buy")
    seller.send(Action.TAKE_BUY, index=1, order_id=order.id, request_id=3)
    order.refresh_from_db()

    def htlc_arrives():
        fake_ln.mark_accepted(order.hold_invoice_hash)
        assert escrow_on_accepted(payment_hash_hex=order.hold_invoice_hash) is True

    after_first_call(monkeypatch, cancel_service, "order_get_or_not_found", htlc_arrives)
    with pytest.raises(CantDo) as refused:
        order_cancel(order_id=order.id, sender=maker.pubkey(1), request_id=64)

    assert refused.value.reason is CantDoReason.NOT_ALLOWED_BY_STATUS
    assert row_state(order, "status")[0] == "waiting-buyer-invoice"
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.ACCEPTED
    assert EscrowRefund.objects.filter(order=order).count() == 0


def test_stale_taker_cancel_before_any_escrow_does_not_reset_the_next_take(node, fake_ln, monkeypatch):
    # No hold invoice yet on either take (the buyers took without an invoice): only the taker
    # guard tells the first buyer's stale cancel from the second buyer's take.
    trade = taken_sell_trade(fake_ln, with_invoice=False)
    order_id, first_taker = trade.order.id, trade.buyer_key
    second = TradeClient("second-taker")

    def cancel_and_retake():
        order_cancel(order_id=order_id, sender=first_taker, request_id=61)
        _take_sell(second, order_id, with_invoice=False, request_id=62)
        second.replies()

    after_first_call(monkeypatch, cancel_service, "order_get_or_not_found", cancel_and_retake)
    with pytest.raises(CantDo) as refused:
        order_cancel(order_id=order_id, sender=first_taker, request_id=63)

    assert refused.value.reason is CantDoReason.NOT_ALLOWED_BY_STATUS
    assert row_state(trade.order, "status", "buyer_pubkey", "hold_invoice_hash") == (
        "waiting-buyer-invoice",
        second.pubkey(1),
        None,
    )
    assert actions(second) == []


def test_release_before_fiat_sent_is_refused_without_asking_lnd(node, fake_ln):
    trade = fresh_trade(fake_ln)
    before = snapshot(trade.order)
    fake_ln.calls.clear()

    with pytest.raises(CantDo) as refused:
        order_release(order_id=trade.order.id, sender=trade.seller_key, request_id=5)

    assert refused.value.reason is CantDoReason.NOT_ALLOWED_BY_STATUS
    assert (snapshot(trade.order), fake_ln.calls) == (before, [])


def test_closing_one_orders_dispute_leaves_another_open_dispute_alone(node, fake_ln):
    from tests.disputes.support import disputed_trade

    mine = disputed_trade(fake_ln, fresh=True)
    other = disputed_trade(fake_ln, fresh=True)
    closed = dispute_close_by_parties(order_id=mine.order.id, order_status="settled-hold-invoice", actor="seller")
    assert (closed.pk, mine.refresh_dispute().status) == (mine.dispute.pk, "released")
    assert other.refresh_dispute().status == "initiated"


# --- what a taker cancel gives back -----------------------------------------------------------------


def _taken(fake_ln, *, kind="sell", take=None, **terms):
    maker, taker = TradeClient("maker"), TradeClient("taker")
    set_price()
    order = make_order(maker, index=1, kind=kind, **terms)
    if kind == "sell":
        payload = PaymentRequestPayload(None, mint_invoice(amount_sats=0), take)
        taker.send(Action.TAKE_SELL, index=1, order_id=order.id, payload=payload, request_id=70)
    else:
        taker.send(Action.TAKE_BUY, index=1, order_id=order.id, request_id=70)
    order.refresh_from_db()
    return order, maker, taker


def test_taker_cancel_clears_the_whole_escrow(node, fake_ln):
    order, _, taker = _taken(fake_ln)
    assert order.hold_invoice_request_id == 70
    order_cancel(order_id=order.id, sender=taker.pubkey(1), request_id=71)
    assert row_state(
        order, "hold_invoice_hash", "hold_invoice_payment_request", "hold_invoice_request_id", "invoice_held_at"
    ) == (None, None, None, None)


def test_buy_order_taker_cancel_keeps_the_makers_invoice_and_fixed_amount(node, fake_ln):
    invoice = mint_invoice(amount_sats=0)
    order, _, seller = _taken(fake_ln, kind="buy", amount=10_000, premium=0, buyer_invoice=invoice)
    order_cancel(order_id=order.id, sender=seller.pubkey(1), request_id=71)
    assert row_state(order, "status", "seller_pubkey", "buyer_invoice", "amount_sats", "dev_fee_sats") == (
        "pending",
        None,
        invoice,
        10_000,
        18,
    )


def test_taker_cancel_after_the_htlc_forgets_the_refunded_escrow(node, fake_ln):
    order, _, seller = _taken(fake_ln, kind="buy")
    payment_hash = order.hold_invoice_hash
    fake_ln.mark_accepted(payment_hash)
    escrow_on_accepted(payment_hash_hex=payment_hash)
    assert row_state(order, "status")[0] == "waiting-buyer-invoice"

    order_cancel(order_id=order.id, sender=seller.pubkey(1), request_id=71)

    assert row_state(order, "status", "invoice_held_at", "hold_invoice_hash") == ("pending", None, None)
    assert fake_ln.invoice_state(payment_hash) is InvoiceState.CANCELED


def test_range_order_taker_cancel_gives_the_range_back(node, fake_ln):
    order, _, taker = _taken(
        fake_ln, fiat_amount=0, min_amount=10, max_amount=50, payment_method="face to face", take=15
    )
    assert order.fiat_amount == 15
    order_cancel(order_id=order.id, sender=taker.pubkey(1), request_id=71)
    assert row_state(order, "status", "fiat_amount", "min_fiat_amount", "max_fiat_amount") == ("pending", 0, 10, 50)


# --- refusals and LND trouble -------------------------------------------------------------------------


def test_stranger_cancelling_a_settled_order_is_not_allowed_by_status(node, fake_ln):
    trade = _fiat_sent(fake_ln)
    order_release(order_id=trade.order.id, sender=trade.seller_key, request_id=5)
    before = snapshot(trade.order)
    with pytest.raises(CantDo) as refused:
        order_cancel(order_id=trade.order.id, sender="c" * 64, request_id=72)
    assert refused.value.reason is CantDoReason.NOT_ALLOWED_BY_STATUS
    assert snapshot(trade.order) == before


def test_node_down_during_a_cancel_keeps_the_decision_and_the_sweep_refunds(node, fake_ln):
    order, maker, _ = _taken(fake_ln)
    fake_ln.set_unavailable(True)
    try:
        order_cancel(order_id=order.id, sender=maker.pubkey(1), request_id=73)
    finally:
        fake_ln.set_unavailable(False)
    assert row_state(order, "status")[0] == "canceled"
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.OPEN
    assert escrow_refunds_retry() == 1
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.CANCELED


def test_cancel_publishes_with_the_nodes_network(node, fake_ln):
    order, maker, _ = _taken(fake_ln)
    order_cancel(order_id=order.id, sender=maker.pubkey(1), request_id=74)
    assert order_events(order.id)[-1].tag_value("network") == "regtest"


def test_buyer_initiated_cooperative_cancel_tells_the_seller(node, fake_ln):
    trade = fresh_trade(fake_ln)
    order_cancel(order_id=trade.order.id, sender=trade.buyer_key, request_id=51)
    assert actions(trade.seller) == ["cooperative-cancel-initiated-by-peer"]
    assert actions(trade.buyer) == ["cooperative-cancel-initiated-by-you"]


def test_dispute_closed_meanwhile_is_not_closed_twice(node, fake_ln, monkeypatch):
    from tests.disputes.support import disputed_trade

    trade = disputed_trade(fake_ln, fresh=True)
    real_select = resolve_service.select_where

    def read_then_compete(model, **kwargs):
        seen = real_select(model, **kwargs)
        if model is resolve_service.Dispute and seen:
            model.objects.filter(pk=seen[0].pk).update(status="settled")  # the solver closed it meanwhile
        return seen

    monkeypatch.setattr(resolve_service, "select_where", read_then_compete)
    events = OutboundMessage.objects.filter(kind=38386).count()

    assert (
        dispute_close_by_parties(order_id=trade.order.id, order_status="cooperatively-canceled", actor="buyer") is None
    )
    assert (trade.refresh_dispute().status, OutboundMessage.objects.filter(kind=38386).count()) == ("settled", events)


def test_closing_by_the_parties_without_an_open_dispute_changes_nothing(node, fake_ln):
    from tests.disputes.support import disputed_trade

    # The order's only dispute was closed by a solver already; the parties' close finds none open.
    trade = disputed_trade(fake_ln, fresh=True)
    Dispute.objects.filter(pk=trade.dispute.pk).update(status="settled")
    events = OutboundMessage.objects.filter(kind=38386).count()

    assert (
        dispute_close_by_parties(order_id=trade.order.id, order_status="settled-hold-invoice", actor="seller") is None
    )
    assert (trade.refresh_dispute().status, OutboundMessage.objects.filter(kind=38386).count()) == ("settled", events)


def test_closed_dispute_gets_its_resolution_time(node, fake_ln):
    from tests.disputes.support import disputed_trade

    trade = disputed_trade(fake_ln, fresh=True)
    closed = dispute_close_by_parties(order_id=trade.order.id, order_status="settled-hold-invoice", actor="seller")
    assert (closed.status, closed.resolved_at is not None, closed.updated_at >= closed.resolved_at) == (
        "released",
        True,
        True,
    )


def test_closing_by_the_parties_closes_its_own_orders_dispute_only(node, fake_ln):
    from tests.disputes.support import disputed_trade

    # The other order's dispute is older (first by primary key) and open as well.
    other, mine = disputed_trade(fake_ln, fresh=True), disputed_trade(fake_ln, fresh=True)

    closed = dispute_close_by_parties(order_id=mine.order.id, order_status="settled-hold-invoice", actor="seller")

    assert (closed.pk, closed.status) == (mine.dispute.pk, "released")
    assert (other.refresh_dispute().status, mine.refresh_dispute().status) == ("initiated", "released")


# --- release payloads --------------------------------------------------------------------------------


def test_release_with_another_payload_is_dropped_before_the_escrow_moves(node, fake_ln):
    trade = _fiat_sent(fake_ln)
    before = snapshot(trade.order)
    with pytest.raises(SilentDrop):
        order_release(order_id=trade.order.id, sender=trade.seller_key, request_id=5, payload=AmountPayload(15))
    assert snapshot(trade.order) == before
    assert fake_ln.invoice_state(trade.order.hold_invoice_hash) is InvoiceState.ACCEPTED


def test_range_child_is_published_with_the_nodes_network(node, fake_ln):
    trade = active_sell_trade(fake_ln, range_take=15)
    order_mark_fiat_sent(order_id=trade.order.id, sender=trade.buyer_key, request_id=4)
    next_key = KEYS["alice-trade-4"]["pk"]

    order_release(order_id=trade.order.id, sender=trade.seller_key, request_id=5, payload=NextTradePayload(next_key, 4))

    child = Order.objects.get(range_parent=trade.order)
    assert [event.tag_value("network") for event in order_events(child.id)] == ["regtest"]
