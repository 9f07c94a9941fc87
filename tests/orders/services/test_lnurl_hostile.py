"""Hostile LNURL answers on the trade paths (issue 13, part 5): a take or add-invoice naming such a
Lightning address gets `invalid_invoice` and nothing moves; a payout to one is recorded as a
failed attempt (`payment-failed` to the buyer), never an internal error."""

import pytest

from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import PaymentRequestPayload
from tests.orders.services.support import make_order, mint_invoice, set_price, snapshot
from tests.orders.trade_states import active_sell_trade
from tests.trade.harness import TradeClient

pytestmark = pytest.mark.django_db

HOSTILE = {
    "1e999": b'{"tag":"payRequest","callback":"http://127.0.0.1:1/cb","minSendable":1e999,"maxSendable":1e999}',
    "deep-json": b"[" * 30_000 + b"]" * 30_000,
    "non-utf8": b'\xff\xfe{"tag":"payRequest"}',
    "i64-min": b'{"tag":"payRequest","callback":"http://127.0.0.1:1/cb","minSendable":-9223372036854775808,'
    b'"maxSendable":1000}',
}


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_take_with_a_hostile_lightning_address_is_invalid_invoice(body, node, fake_ln, lnurl_server):
    set_price()
    order = make_order(TradeClient("seller"), index=1, kind="sell")
    lnurl_server.set_raw("/.well-known/lnurlp/bob", body)
    before = snapshot(order)

    replies = TradeClient("buyer").send(
        Action.TAKE_SELL,
        index=1,
        order_id=order.id,
        payload=PaymentRequestPayload(None, lnurl_server.address("bob"), None),
        request_id=3,
    )

    assert [(r.action, r.json["cant-do"]["payload"]) for r in replies] == [("cant-do", {"cant_do": "invalid_invoice"})]
    assert snapshot(order) == before
    assert [name for name, _ in fake_ln.calls if name == "add_hold_invoice"] == []


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_payout_to_a_lightning_address_turned_hostile_is_a_recorded_failure(
    body, node, fake_ln, lnurl_server, django_capture_on_commit_callbacks
):
    lnurl_server.pay_request("bob")
    lnurl_server.set_json("/lnurlp/bob/callback", {"pr": mint_invoice(amount_sats=7827)})
    trade = active_sell_trade(fake_ln, buyer_invoice=lnurl_server.address("bob"))
    trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
    trade.buyer.replies()
    lnurl_server.set_raw("/.well-known/lnurlp/bob", body)  # the address turns hostile before the payout

    with django_capture_on_commit_callbacks(execute=True):
        trade.seller.send(Action.RELEASE, index=1, order_id=trade.order.id, request_id=5)

    order = trade.refresh()
    assert (order.status, order.failed_payment, order.payment_attempts, order.payout_payment_hash) == (
        "settled-hold-invoice",
        True,
        1,
        None,
    )
    assert [r.action for r in trade.buyer.replies()] == ["released", "payment-failed"]
    assert [name for name, _ in fake_ln.calls if name == "send_payment"] == []
