"""`orders` (docs/PROTOCOL.md §Orders): the caller's own orders by id."""

import uuid

import pytest

from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import IdsPayload, OrdersPayload
from tests.orders.services.support import outbox_count
from tests.orders.trade_states import active_sell_trade, cant_do, unix, vector
from tests.trade.harness import TradeClient

pytestmark = pytest.mark.django_db

OTHER_ID = uuid.UUID("751bc178-801a-4cc4-983c-68682e6fb6af")


def test_returns_only_the_callers_orders_as_full_views(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    order = trade.order
    replies = trade.seller.send(
        Action.ORDERS, index=1, payload=IdsPayload([order.id, OTHER_ID]), request_id=8721, trade_index=None
    )
    assert [r.message.to_json() for r in replies] == [
        vector("F03_orders_resp", order, **{"1700000000": unix(order.created_at), "1700086400": unix(order.expires_at)})
    ]


def test_any_trade_key_of_the_identity_may_ask(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    replies = trade.buyer.send(Action.ORDERS, index=3, payload=IdsPayload([trade.order.id]), trade_index=None)
    [view] = replies[0].payload.orders
    assert (replies[0].recipient, view.id, view.buyer_invoice) == (trade.buyer.pubkey(3), trade.order.id, None)


@pytest.mark.parametrize(
    ("_case", "payload", "reason"),
    [
        ("empty list", IdsPayload([]), "invalid_parameters"),
        ("orders instead of ids", OrdersPayload([]), "invalid_parameters"),
        ("more than max_orders_per_response", IdsPayload([uuid.uuid4() for _ in range(11)]), "too_many_requests"),
        ("nothing of the caller", IdsPayload([OTHER_ID]), "not_found"),
    ],
)
def test_refusals(_case, payload, reason, node, fake_ln):
    trade = active_sell_trade(fake_ln)
    outbox = outbox_count()
    replies = TradeClient("eve").send(Action.ORDERS, index=1, payload=payload, request_id=5, trade_index=None)
    assert [r.json for r in replies] == [cant_do(reason, 5, None)]
    assert outbox_count() == outbox + 1
    assert trade.refresh().status == "active"
