"""`fiat-sent` through the pipeline (docs/PROTOCOL.md §Fiat-sent)."""

import pytest

from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import NextTradePayload, TextMessagePayload
from orders.models import OrderStatusChange
from tests.orders.services.support import ln_writes, outbox_count, snapshot
from tests.orders.trade_states import KEYS, active_sell_trade, cant_do, vector

pytestmark = pytest.mark.django_db


def test_buyer_fiat_sent_notifies_both_parties(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    events = OutboundMessage.objects.filter(kind=38383, order_id=trade.order.id).count()
    replies = trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
    seller_replies = trade.seller.replies()

    assert [r.message.to_json() for r in replies] == [vector("A14_fiat_sent_ok_to_buyer", trade.order)]
    assert [r.message.to_json() for r in seller_replies] == [vector("A13_fiat_sent_ok_to_seller", trade.order)]
    assert (replies[0].recipient, seller_replies[0].recipient) == (trade.buyer_key, trade.seller_key)
    order = trade.refresh()
    assert order.status == "fiat-sent"
    last = OrderStatusChange.objects.filter(order=order).last()
    assert (last.from_status, last.to_status, last.actor) == ("active", "fiat-sent", trade.buyer_key)
    assert OutboundMessage.objects.filter(kind=38383, order_id=order.id).count() == events  # fiat-sent is unpublished


def test_next_trade_is_stored_for_a_range_order(node, fake_ln):
    trade = active_sell_trade(fake_ln, range_take=15)
    next_key = KEYS["bob-trade-2"]["pk"]
    trade.buyer.send(
        Action.FIAT_SENT, index=1, order_id=trade.order.id, payload=NextTradePayload(next_key, 2), request_id=4
    )
    order = trade.refresh()
    assert (order.status, order.next_trade_pubkey, order.next_trade_index) == ("fiat-sent", next_key, 2)


def test_next_trade_ignored_on_a_fixed_order(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    trade.buyer.send(
        Action.FIAT_SENT, index=1, order_id=trade.order.id, payload=NextTradePayload("ab" * 32, 2), request_id=4
    )
    order = trade.refresh()
    assert (order.status, order.next_trade_pubkey, order.next_trade_index) == ("fiat-sent", None, None)


def _refused(trade, fake_ln, client, index, **kwargs):
    before, outbox, writes = snapshot(trade.order), outbox_count(), ln_writes(fake_ln)
    replies = client.send(Action.FIAT_SENT, index=index, **kwargs)
    assert snapshot(trade.order) == before
    assert ln_writes(fake_ln) == writes
    assert outbox_count() == outbox + len(replies)
    return [r.json for r in replies]


def test_seller_cannot_send_fiat_sent(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    replies = _refused(trade, fake_ln, trade.seller, 1, order_id=trade.order.id, request_id=9)
    assert replies == [cant_do("invalid_pubkey", 9, trade.order.id)]


def test_fiat_sent_twice_is_invalid_order_status(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
    replies = _refused(trade, fake_ln, trade.buyer, 1, order_id=trade.order.id, request_id=5)
    assert replies == [cant_do("invalid_order_status", 5, trade.order.id)]


def test_unknown_order_is_not_found(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    missing = "00000000-0000-4000-8000-000000000000"
    replies = _refused(trade, fake_ln, trade.buyer, 1, order_id=missing, request_id=6)
    assert replies == [cant_do("not_found", 6, missing)]


def test_other_payload_is_dropped_silently(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    replies = _refused(
        trade, fake_ln, trade.buyer, 1, order_id=trade.order.id, payload=TextMessagePayload("hi"), request_id=7
    )
    assert replies == []
