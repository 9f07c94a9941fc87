"""Release and cancel guards made to decide: a second actor between the first one's read and
its guarded write (03-actions.md §5.2, §6.1, §6.2)."""

import pytest

from nostrbridge.context import SilentDrop
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.payloads import PaymentRequestPayload
from orders.models import Order
from orders.services import cancel as cancel_service
from orders.services import release as release_service
from orders.services.cancel import dispute_close_on_user_resolution, order_cancel
from orders.services.release import order_mark_fiat_sent, order_release
from tests.guards.support import actions, after_first_call, audit_trail, fresh_trade, loses_to, payout_tasks, row_state
from tests.orders.services.support import mint_invoice, snapshot
from tests.orders.trade_states import taken_sell_trade
from tests.trade.harness import TradeClient

pytestmark = pytest.mark.django_db


def _fiat_sent(fake_ln):
    trade = fresh_trade(fake_ln)
    order_mark_fiat_sent(order_id=trade.order.id, sender=trade.buyer_key, request_id=4)
    trade.buyer.replies()
    trade.seller.replies()
    return trade


def test_second_release_between_settle_and_transition_is_dropped(
    node, fake_ln, monkeypatch, django_capture_on_commit_callbacks
):
    trade = _fiat_sent(fake_ln)
    order_id, seller = trade.order.id, trade.seller_key
    with django_capture_on_commit_callbacks() as callbacks:
        _, competitor = loses_to(
            monkeypatch,
            release_service,
            "escrow_settle",
            lambda: order_release(order_id=order_id, sender=seller, request_id=6),
            lambda: order_release(order_id=order_id, sender=seller, request_id=5),
            SilentDrop,
        )

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


def test_closing_one_orders_dispute_leaves_another_open_dispute_alone(node, fake_ln):
    from tests.disputes.support import disputed_trade

    mine = disputed_trade(fake_ln, fresh=True)
    other = disputed_trade(fake_ln, fresh=True)
    closed = dispute_close_on_user_resolution(order_id=mine.order.id, status="settled")
    assert (closed.pk, mine.refresh_dispute().status) == (mine.dispute.pk, "settled")
    assert other.refresh_dispute().status == "initiated"
