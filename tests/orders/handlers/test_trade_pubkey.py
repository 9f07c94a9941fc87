"""`trade-pubkey` (docs/PROTOCOL.md §Trade-pubkey): a maker moves its pending order to a new trade key."""

import pytest

from nostrbridge.protocol.enums import Action
from tests.orders.services.support import make_order, outbox_count, set_price, snapshot
from tests.orders.trade_states import KEYS, active_sell_trade, cant_do, vector, vector_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def pending(node, fake_ln):
    alice = vector_client("alice")
    set_price()
    return alice, make_order(alice, index=1, kind="sell")


def test_maker_moves_the_order_to_the_sending_key(pending):
    alice, order = pending
    replies = alice.send(Action.TRADE_PUBKEY, index=3, order_id=order.id, request_id=62, trade_index=None)
    assert [r.message.to_json() for r in replies] == [vector("F11_trade_pubkey_ack", order)]
    assert replies[0].recipient == KEYS["alice-trade-3"]["pk"]
    order.refresh_from_db()
    assert (order.seller_pubkey, order.creator_pubkey, order.status) == (
        KEYS["alice-trade-3"]["pk"],
        KEYS["alice-trade-3"]["pk"],
        "pending",
    )
    assert order.status_changes.count() == 1  # no status change


def test_other_identity_is_ignored(pending):
    _, order = pending
    bob = vector_client("bob")
    before, outbox = snapshot(order), outbox_count()
    assert bob.send(Action.TRADE_PUBKEY, index=2, order_id=order.id, request_id=62, trade_index=None) == []
    assert (snapshot(order), outbox_count()) == (before, outbox)


def test_taken_order_is_invalid_order_status(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    before, outbox = snapshot(trade.order), outbox_count()
    replies = trade.seller.send(Action.TRADE_PUBKEY, index=3, order_id=trade.order.id, request_id=62, trade_index=None)
    assert [r.json for r in replies] == [cant_do("invalid_order_status", 62, trade.order.id)]
    assert (snapshot(trade.order), outbox_count()) == (before, outbox + 1)


def test_unknown_order_is_not_found(pending):
    alice, _ = pending
    missing = "00000000-0000-4000-8000-000000000000"
    replies = alice.send(Action.TRADE_PUBKEY, index=3, order_id=missing, request_id=62, trade_index=None)
    assert [r.json for r in replies] == [cant_do("not_found", 62, missing)]
