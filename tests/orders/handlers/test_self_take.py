"""One identity may not take its own order with a second trade key (issue 13, part 5): it could
otherwise trade with itself and rate itself (docs/PROTOCOL.md §Take step 5)."""

import pytest

from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import PaymentRequestPayload
from orders.models import Trader
from tests.orders.services.support import assert_refused, make_order, mint_invoice, set_price
from tests.trade.harness import TradeClient

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("kind", "take"), [("sell", Action.TAKE_SELL), ("buy", Action.TAKE_BUY)])
def test_maker_identity_taking_with_a_second_trade_key_is_refused(kind, take, node, fake_ln):
    set_price()
    maker = TradeClient("maker")  # reputation mode: identity ≠ trade keys
    order = make_order(maker, index=1, kind=kind)
    payload = PaymentRequestPayload(None, mint_invoice(amount_sats=0), None) if kind == "sell" else None
    last_index = Trader.objects.get(pk=maker.identity.public_key_hex).last_trade_index
    assert_refused(
        maker,
        take,
        index=2,
        order_id=order.id,
        payload=payload,
        reason="invalid_pubkey",
        fake_ln=fake_ln,
        orders=[order],
    )
    assert Trader.objects.get(pk=maker.identity.public_key_hex).last_trade_index == last_index


def test_another_identity_still_takes(node, fake_ln):
    set_price()
    order = make_order(TradeClient("maker"), index=1, kind="sell")
    replies = TradeClient("taker").send(
        Action.TAKE_SELL,
        index=1,
        order_id=order.id,
        payload=PaymentRequestPayload(None, mint_invoice(amount_sats=0), None),
        request_id=3,
    )
    assert [r.action for r in replies] == ["waiting-seller-to-pay"]
