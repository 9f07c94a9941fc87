"""Scenarios A, B and C of tests/vectors/mostro.vectors.json, compared byte for byte with the canonical vectors.

Generated ids, trade keys, timestamps and hold invoices are mapped onto the vector values
before comparing; everything else (field order, nulls, request ids, trade indexes, amounts)
must match exactly.
"""

import hashlib

import pytest

from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import AmountPayload, PaymentRequestPayload
from orders.models import Order, Trader
from orders.services.escrow import escrow_on_accepted
from tests.orders.services.support import (
    VECTORS,
    canonical,
    make_order,
    mint_invoice,
    order_events,
    published_statuses,
    set_price,
)
from tests.trade.harness import TradeClient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("node")]

ALICE = {
    1: "c8f012bff2461b3a946ab1748a73a78c8889c88a595dbc11d329e7910f050e12",
    2: "c388539918d879dbbadaaf9bad13fda2753632c5f146fa36f8e0e983b28c8680",
}
BOB = {
    1: "b7eab0999542093c73c742f091d56403814c497e1e43ce00eba7a4303ec87e99",
    2: "a1e5708c5ff5995bdc46887fd336fb8c5cc22df0aab1a19129164edaf02e4d3f",
}
HOLD_PLACEHOLDER = "lnbcrt78750n1pHOLDINVOICEFORSELLER"
PAYOUT_PLACEHOLDER = "lnbcrt78270n1pBUYERPAYOUTINVOICE"


def _mapping(order: Order, alice: TradeClient, bob: TradeClient, index: int, vector_id: str, **extra) -> dict:
    order.refresh_from_db()
    mapping = {
        str(order.id): vector_id,
        alice.pubkey(index): ALICE[index],
        bob.pubkey(index): BOB[index],
        f'"created_at":{int(order.created_at.timestamp())}': '"created_at":1700000000',
        f'"expires_at":{int(order.expires_at.timestamp())}': '"expires_at":1700086400',
    }
    if order.hold_invoice_payment_request:
        mapping[order.hold_invoice_payment_request] = HOLD_PLACEHOLDER
    return mapping | extra


def _wire(replies, mapping) -> list[str]:
    return [canonical(r.message.to_json(), mapping) for r in replies]


def _with_since(vector: str, client: TradeClient) -> str:
    """A 0.18.5 taker-reputation notice as sent now: the taker has a record (made by its take),
    so its `UserInfo` carries that record's UTC day as `since` (docs/PROTOCOL.md §User-info)."""
    created = int(Trader.objects.get(pk=client.identity.public_key_hex).created_at.timestamp())
    since = created - created % 86_400
    return vector.replace('"operating_days":0}', f'"operating_days":0,"since":{since}}}')


def test_sell_order_at_market_price(fake_ln):
    set_price()
    alice, bob = TradeClient("alice"), TradeClient("bob")
    order = make_order(alice, index=1, request_id=1)
    alice.replies()

    # A3–A5: Bob takes without an invoice.
    to_bob = bob.send(Action.TAKE_SELL, index=1, order_id=order.id, request_id=2)
    to_alice = alice.replies()
    vid = "c7dba9db-f13f-4c3f-a77f-3b82e43c2b1a"
    mapping = _mapping(order, alice, bob, 1, vid)
    assert _wire(to_bob, mapping) == [VECTORS["A04_add_invoice_to_buyer"]]
    assert _wire(to_alice, mapping) == [VECTORS["A05_waiting_buyer_invoice_to_seller"]]

    # A6–A9: Bob sends a 7827-sat invoice; Alice gets the reputation notice and the hold invoice.
    payout = mint_invoice(amount_sats=7827)
    to_bob = bob.send(
        Action.ADD_INVOICE, index=1, order_id=order.id, payload=PaymentRequestPayload(None, payout, None), request_id=3
    )
    to_alice = alice.replies()
    mapping = _mapping(order, alice, bob, 1, vid, **{payout: PAYOUT_PLACEHOLDER})
    assert _wire(to_alice, mapping) == [
        _with_since(VECTORS["A07_taker_reputation_to_seller"], bob),
        VECTORS["A08_pay_invoice_to_seller"],
    ]
    assert _wire(to_bob, mapping) == [VECTORS["A09_waiting_seller_to_pay_to_buyer"]]

    # A10–A11: Alice pays the hold invoice.
    fake_ln.mark_accepted(order.hold_invoice_hash)
    assert escrow_on_accepted(payment_hash_hex=order.hold_invoice_hash) is True
    assert _wire(alice.replies(), mapping) == [VECTORS["A10_buyer_took_order_to_seller"]]
    assert _wire(bob.replies(), mapping) == [VECTORS["A11_hold_invoice_payment_accepted_to_buyer"]]
    order.refresh_from_db()
    assert (order.status, order.amount_sats, order.fee_sats, order.dev_fee_sats) == ("active", 7851, 24, 14)
    assert hashlib.sha256(bytes.fromhex(order.hold_invoice_preimage)).hexdigest() == order.hold_invoice_hash
    # pending, then in-progress at the take; waiting-payment and active are not published.
    assert published_statuses(order.id) == ["pending", "in-progress"]


def test_buy_order_at_market_price(fake_ln):
    set_price()
    alice, bob = TradeClient("alice"), TradeClient("bob")
    order = make_order(alice, index=2, request_id=11, kind="buy", payment_method="face to face")
    alice.replies()
    vid = "751bc178-801a-4cc4-983c-68682e6fb6af"

    # B3–B5: Bob takes and is asked to pay.
    to_bob = bob.send(Action.TAKE_BUY, index=2, order_id=order.id, request_id=12)
    to_alice = alice.replies()
    mapping = _mapping(order, alice, bob, 2, vid)
    assert _wire(to_bob, mapping) == [VECTORS["B04_pay_invoice_to_seller"]]
    assert _wire(to_alice, mapping) == [VECTORS["B05_waiting_seller_to_pay_to_buyer"]]

    # B6–B8: Bob pays; Alice owes the invoice.
    fake_ln.mark_accepted(order.hold_invoice_hash)
    escrow_on_accepted(payment_hash_hex=order.hold_invoice_hash)
    assert _wire(alice.replies(), mapping) == [
        VECTORS["B06_add_invoice_to_buyer"],
        _with_since(VECTORS["B08_taker_reputation_to_buyer"], bob),
    ]
    assert _wire(bob.replies(), mapping) == [VECTORS["B07_waiting_buyer_invoice_to_seller"]]

    # B9–B11: Alice sends her invoice; the trade is active.
    payout = mint_invoice(amount_sats=7827)
    to_alice = alice.send(
        Action.ADD_INVOICE, index=2, order_id=order.id, payload=PaymentRequestPayload(None, payout, None), request_id=13
    )
    mapping[payout] = PAYOUT_PLACEHOLDER
    assert _wire(bob.replies(), mapping) == [VECTORS["B10_buyer_took_order_to_seller"]]
    assert _wire(to_alice, mapping) == [VECTORS["B11_hold_invoice_payment_accepted_to_buyer"]]
    order.refresh_from_db()
    assert (order.status, order.buyer_invoice) == ("active", payout)
    assert published_statuses(order.id) == ["pending", "in-progress"]


def test_range_sell_order(fake_ln):
    set_price()
    alice, bob = TradeClient("alice"), TradeClient("bob")
    order = make_order(
        alice, index=3, request_id=21, fiat_amount=0, min_amount=10, max_amount=50, payment_method="face to face"
    )
    to_bob = bob.send(Action.TAKE_SELL, index=3, order_id=order.id, payload=AmountPayload(15), request_id=22)
    order.refresh_from_db()
    mapping = {
        str(order.id): "4fd93fc9-e909-4fc9-acef-9976122b5dfa",
        f'"created_at":{int(order.created_at.timestamp())}': '"created_at":1700000000',
    }
    assert _wire(to_bob, mapping) == [VECTORS["C04_add_invoice_to_buyer"]]
    assert (order.fiat_amount, order.amount_sats, order.fee_sats) == (15, 1177, 4)
    in_progress = order_events(order.id)[-1]
    assert ["fa", "15"] in in_progress.tags
    assert ["amt", "1177"] in in_progress.tags
