"""Premium bounds (issue 13, part 5): the limits are checked on the sats the escrow will hold, a
premium that prices the bitcoin at ≤ 0 is refused, and no amount outside 0…2^63−1 is sent."""

from decimal import Decimal

import pytest

from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.enums import Action
from orders.models import Order
from orders.wire import small_order
from tests.orders.services.support import (
    assert_refused,
    make_order,
    mint_invoice,
    order_terms,
    set_price,
    snapshot,
)
from tests.trade.harness import TradeClient

pytestmark = pytest.mark.django_db

I64_MIN = -(2**63)


def _new_order(client: TradeClient, **terms) -> list:
    return client.send(Action.NEW_ORDER, index=1, payload=order_terms(**terms), request_id=9)


@pytest.mark.parametrize(
    ("premium", "reason"),
    [
        (-100_000, "out_of_range_sats_amount"),  # 100 VES ×1001: 7,937,… sats against a 1,000,000 max
        (I64_MIN, "out_of_range_sats_amount"),  # saturates at 2^63−1 sats
        (100, "invalid_parameters"),  # price × (1 − 1) = 0
        (2**63 - 1, "invalid_parameters"),
    ],
)
def test_new_order_whose_premium_breaks_the_limits_is_refused_and_nothing_is_stored(premium, reason, node, fake_ln):
    set_price()
    maker = TradeClient("maker")
    orders, outbox = Order.objects.count(), OutboundMessage.objects.count()
    replies = _new_order(maker, premium=premium)
    assert [(r.action, r.json["cant-do"]["payload"]) for r in replies] == [("cant-do", {"cant_do": reason})]
    assert (Order.objects.count(), OutboundMessage.objects.count()) == (orders, outbox + 1)


def test_premium_just_inside_the_bounds_is_accepted(node, fake_ln):
    set_price()
    assert make_order(TradeClient("a"), premium=90).premium == 90  # 793 sats: a positive price
    # 100 VES at 1,260,900 VES/BTC = 7930 sats; ×(1 + 12000 %) = 959,… sats ≤ 1,000,000.
    assert make_order(TradeClient("b"), premium=-12_000).premium == -12_000


def test_take_checks_the_escrow_at_the_price_of_the_moment(node, fake_ln):
    set_price()
    order = make_order(TradeClient("maker"), premium=-12_000)  # fine at creation
    set_price(price=Decimal("1000000"))  # the bitcoin got cheaper: 10,000 × 121 sats now
    taker = TradeClient("taker")
    assert_refused(
        taker,
        Action.TAKE_SELL,
        index=1,
        order_id=order.id,
        reason="out_of_range_sats_amount",
        fake_ln=fake_ln,
        orders=[order],
    )
    assert snapshot(order)["status"] == "pending"


def test_take_escrow_includes_the_fee(node, fake_ln, settings):
    set_price()
    order = make_order(TradeClient("maker"), amount=1_000_000, premium=0)  # exactly the maximum
    payload_invoice = mint_invoice(amount_sats=0)
    from nostrbridge.protocol.payloads import PaymentRequestPayload

    assert_refused(
        TradeClient("taker"),
        Action.TAKE_SELL,
        index=1,
        order_id=order.id,
        payload=PaymentRequestPayload(None, payload_invoice, None),
        reason="out_of_range_sats_amount",  # 1,000,000 + the 3,000-sat fee would be escrowed
        fake_ln=fake_ln,
        orders=[order],
    )


@pytest.mark.parametrize("amount", [-1, 2**63])
def test_an_amount_outside_i64_is_never_put_on_the_wire(amount, node, fake_ln):
    set_price()
    order = make_order(TradeClient("maker"))
    with pytest.raises(ValueError, match="outside 0…2\\^63−1"):
        small_order(order, amount_sats=amount)
    assert small_order(order, amount_sats=2**63 - 1).amount == 2**63 - 1
