"""`restore-session` and its exclusion list (docs/PROTOCOL.md §Restore-session)."""

import pytest

from disputes.models import Dispute
from nostrbridge.protocol.enums import Action, MessageType
from orders.models import Order
from orders.status import OrderStatus
from tests.nostrbridge.protocol.test_messages import with_counterparty
from tests.orders.services.support import make_order
from tests.orders.trade_states import active_sell_trade, vector
from tests.trade.harness import TradeClient

pytestmark = pytest.mark.django_db


def _restore(client, index=9):
    return client.send(Action.RESTORE_SESSION, index=index, type=MessageType.RESTORE, request_id=77, trade_index=None)


def test_restores_open_orders_and_disputes(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    pending = make_order(trade.seller, index=2, kind="sell")
    dispute = Dispute.objects.create(
        order=trade.order, initiator="buyer", initiator_pubkey=trade.buyer_key, order_previous_status="active"
    )
    [reply] = _restore(trade.seller)
    expected = vector(
        "F05_restore_resp",
        trade.order,
        **{
            "751bc178-801a-4cc4-983c-68682e6fb6af": str(pending.id),
            "efc75871-2568-40b9-a6ee-c382d4d6de01": str(dispute.id),
        },
    )
    assert reply.message.to_json() == with_counterparty(expected, trade.buyer.pubkey(1), None)
    assert reply.recipient == trade.seller.pubkey(9)


def test_the_buyer_side_gets_its_own_trade_index(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    [reply] = _restore(trade.buyer)
    orders = reply.payload.data.orders
    assert [(o.order_id, o.trade_index, o.status) for o in orders] == [(trade.order.id, 1, "active")]
    assert orders[0].counterparty_trade_pubkey == trade.seller.pubkey(1)


@pytest.mark.parametrize(
    "status",
    [
        OrderStatus.SUCCESS,
        OrderStatus.CANCELED,
        OrderStatus.COOPERATIVELY_CANCELED,
        OrderStatus.CANCELED_BY_ADMIN,
        OrderStatus.EXPIRED,
        OrderStatus.DISPUTE,
    ],
)
def test_terminal_and_disputed_orders_are_left_out(status, node, fake_ln):
    trade = active_sell_trade(fake_ln)
    Order.objects.filter(pk=trade.order.pk).update(status=status)
    [reply] = _restore(trade.seller)
    assert reply.payload.data.orders == []


def test_unknown_identity_gets_empty_lists(node, fake_ln):
    active_sell_trade(fake_ln)
    [reply] = _restore(TradeClient("eve"))
    assert reply.json == {
        "restore": {
            "version": 2,
            "request_id": None,
            "trade_index": None,
            "action": "restore-session",
            "payload": {"restore_data": {"orders": [], "disputes": []}},
        }
    }
