"""`dispute` through the pipeline (docs/PROTOCOL.md §Dispute; vectors D01–D03)."""

import uuid

import pytest

from disputes.models import Dispute, DisputeLog
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.messages import Message
from orders.models import OrderStatusChange
from tests.disputes.support import VECTOR_DISPUTE_ID, dispute_events, disputed_trade
from tests.orders.services.support import assert_refused, assert_silent, order_events
from tests.orders.trade_states import active_sell_trade, taken_sell_trade, unix, vector
from tests.trade.harness import TradeClient

pytestmark = pytest.mark.django_db


def test_request_parses_from_the_canonical_vector(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    message = Message.from_json(vector("D01_dispute_req", trade.order))
    assert (message.action, message.id, message.request_id, message.payload) == ("dispute", trade.order.id, 31, None)
    assert message.to_json() == vector("D01_dispute_req", trade.order)


def test_buyer_opens_from_fiat_sent_and_both_parties_are_told(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
    trade.seller.replies()
    published_before = len(order_events(trade.order.id))

    buyer_replies = trade.buyer.send(Action.DISPUTE, index=1, order_id=trade.order.id, request_id=31)
    seller_replies = trade.seller.replies()

    dispute = Dispute.objects.get(order=trade.order)
    ids = {VECTOR_DISPUTE_ID: str(dispute.id)}
    assert [r.message.to_json() for r in buyer_replies] == [vector("D02_dispute_initiated_by_you", trade.order, **ids)]
    assert [r.message.to_json() for r in seller_replies] == [
        vector("D03_dispute_initiated_by_peer", trade.order, **ids)
    ]
    order = trade.refresh()
    assert (order.status, order.buyer_dispute, order.seller_dispute) == ("dispute", True, False)
    assert (dispute.status, dispute.initiator, dispute.initiator_pubkey, dispute.order_previous_status) == (
        "initiated",
        "buyer",
        trade.buyer_key,
        "fiat-sent",
    )
    last = OrderStatusChange.objects.filter(order=order).last()
    assert (last.from_status, last.to_status, last.actor) == ("fiat-sent", "dispute", trade.buyer_key)
    assert list(DisputeLog.objects.filter(dispute=dispute).values_list("action", "actor")) == [
        ("opened", trade.buyer_key)
    ]
    [event] = dispute_events(dispute)
    assert event.tags == [
        ["d", str(dispute.id)],
        ["expiration", event.tags[1][1]],
        ["s", "initiated"],
        ["initiator", "buyer"],
        ["published_at", unix(dispute.created_at)],
        ["y", "mostro", "Example Mostro"],
        ["z", "dispute"],
    ]
    # The order event is not republished: `dispute` is not a published bucket.
    assert len(order_events(order.id)) == published_before


def test_seller_opens_from_active(node, fake_ln):
    trade = disputed_trade(fake_ln, fiat_sent=False, by="seller")
    order = trade.refresh()
    assert (order.status, order.buyer_dispute, order.seller_dispute) == ("dispute", False, True)
    assert (trade.dispute.initiator, trade.dispute.order_previous_status) == ("seller", "active")


def test_second_dispute_on_the_order_is_silent(node, fake_ln):
    trade = disputed_trade(fake_ln)
    assert_silent(trade.seller, Action.DISPUTE, index=1, order_id=trade.order.id, fake_ln=fake_ln, orders=[trade.order])
    assert Dispute.objects.filter(order=trade.order).count() == 1


def test_stranger_gets_invalid_pubkey(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    assert_refused(
        TradeClient("mallory"),
        Action.DISPUTE,
        index=1,
        order_id=trade.order.id,
        reason="invalid_pubkey",
        fake_ln=fake_ln,
        orders=[trade.order],
    )
    assert not Dispute.objects.exists()


def test_waiting_order_gets_not_allowed_by_status(node, fake_ln):
    trade = taken_sell_trade(fake_ln)
    assert_refused(
        trade.buyer,
        Action.DISPUTE,
        index=1,
        order_id=trade.order.id,
        reason="not_allowed_by_status",
        fake_ln=fake_ln,
        orders=[trade.order],
    )


def test_unknown_order_gets_not_found(node, fake_ln):
    assert_refused(
        TradeClient("bob"), Action.DISPUTE, index=1, order_id=uuid.uuid4(), reason="not_found", fake_ln=fake_ln
    )
