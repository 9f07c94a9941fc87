"""The pipeline itself, before any trade handler: silent drops, cant-do, parking."""

import pytest

from nostrbridge.models import InboundEvent, OutboundMessage
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import PaymentRequestPayload
from tests.trade.harness import TradeClient, deliver

pytestmark = pytest.mark.django_db


def test_inbound_pay_invoice_is_answered_invalid_action():
    alice = TradeClient("alice")
    order_id = "c7dba9db-f13f-4c3f-a77f-3b82e43c2b1a"
    payload = PaymentRequestPayload(None, "lnbcrt1pSOMETHING", None)
    replies = alice.send(Action.PAY_INVOICE, index=1, order_id=order_id, payload=payload, request_id=77)
    assert [r.message.to_json() for r in replies] == [
        '{"cant-do":{"version":2,"request_id":77,"trade_index":null,"id":"c7dba9db-f13f-4c3f-a77f-3b82e43c2b1a",'
        '"action":"cant-do","payload":{"cant_do":"invalid_action"}}}'
    ]
    assert replies[0].recipient == alice.pubkey(1)
    assert InboundEvent.objects.get().status == "done"


def test_message_failing_verify_is_dropped_silently():
    alice = TradeClient("alice")
    replies = alice.send(Action.PAY_INVOICE, index=1, order_id="c7dba9db-f13f-4c3f-a77f-3b82e43c2b1a", payload=None)
    assert replies == []
    assert InboundEvent.objects.get().status == "dropped"
    assert OutboundMessage.objects.count() == 0


def test_duplicate_event_processed_once():
    alice = TradeClient("alice")
    event = alice.build(Action.ORDERS, index=1, payload=None, trade_index=None)
    deliver(event, relay="ws://r1")
    deliver(event, relay="ws://r2")
    row = InboundEvent.objects.get()
    assert (row.seen_count, row.first_relay) == (2, "ws://r1")
    assert OutboundMessage.objects.count() == 0
