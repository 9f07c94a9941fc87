"""`last-trade-index` (docs/PROTOCOL.md §Last-trade-index)."""

import pytest

from nostrbridge.protocol.enums import Action, MessageType
from orders.models import Trader
from tests.orders.services.support import make_order, set_price
from tests.orders.trade_states import VECTORS, cant_do, vector_client
from tests.trade.harness import TradeClient

pytestmark = pytest.mark.django_db


def _ask(client, request_id=9):
    return client.send(
        Action.LAST_TRADE_INDEX, index=1, type=MessageType.RESTORE, request_id=request_id, trade_index=None
    )


def test_answers_the_stored_index(node, fake_ln):
    alice = vector_client("alice")
    set_price()
    make_order(alice, index=7, kind="sell")
    [reply] = _ask(alice)
    assert reply.message.to_json() == VECTORS["F07_last_trade_index_resp"]


def test_unknown_identity_is_not_found(node):
    assert [r.json for r in _ask(TradeClient("eve"))] == [cant_do("not_found", 9, None)]


def test_full_privacy_has_no_index(node):
    assert [r.json for r in _ask(TradeClient("carol", full_privacy=True))] == [cant_do("not_found", 9, None)]


def test_stored_zero_is_invalid_trade_index(node):
    eve = TradeClient("eve")
    Trader.objects.create(pubkey=eve.identity.public_key_hex, last_trade_index=0)
    assert [r.json for r in _ask(eve)] == [cant_do("invalid_trade_index", 9, None)]
