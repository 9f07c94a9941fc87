import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import PaymentRequestPayload
from orders.services.escrow import escrow_on_accepted
from tests.orders.services.support import make_order, mint_invoice, set_price
from tests.orders.trade_states import vector_client, reset_seen

pytestmark = pytest.mark.django_db


def show(name, ctx):
    print(f"\n=== {name}: {len(ctx.captured_queries)} queries")
    for q in ctx.captured_queries:
        print("   ", q["sql"][:230])


def test_counts(node, fake_ln):
    seller, buyer = vector_client("alice"), vector_client("bob")
    set_price()
    with CaptureQueriesContext(connection) as c:
        order = make_order(seller, index=1, kind="sell")
    show("new-order", c)
    invoice = mint_invoice(amount_sats=0)
    with CaptureQueriesContext(connection) as c:
        buyer.send(Action.TAKE_SELL, index=1, order_id=order.id, payload=PaymentRequestPayload(None, invoice, None), request_id=3)
    show("take-sell", c)
    order.refresh_from_db()
    fake_ln.mark_accepted(order.hold_invoice_hash)
    with CaptureQueriesContext(connection) as c:
        escrow_on_accepted(payment_hash_hex=order.hold_invoice_hash)
    show("accepted", c)
    reset_seen(seller, buyer)
    with CaptureQueriesContext(connection) as c:
        buyer.send(Action.FIAT_SENT, index=1, order_id=order.id, request_id=4)
    show("fiat-sent", c)
    with CaptureQueriesContext(connection) as c:
        seller.send(Action.RELEASE, index=1, order_id=order.id, request_id=5)
    show("release", c)
