"""Maintenance ("drain") mode at the intake (docs/PROTOCOL.md §Maintenance): `new-order`,
`take-buy` and `take-sell` get `cant-do` `maintenance_mode` before the trade-index gate and
`verify()`, with nothing stored; every other action keeps running."""

import uuid

import pytest
from django.utils import timezone

from mostro_site.models import MaintenanceState
from nostrbridge.models import InboundEvent, OutboundMessage
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import PaymentRequestPayload
from orders.models import Order, OrderStatusChange, Trader
from tests.orders.services.support import (
    assert_refused,
    ln_writes,
    make_order,
    mint_invoice,
    order_terms,
    set_price,
)
from tests.trade.harness import TradeClient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("node")]

# docs/PROTOCOL.md §Maintenance: the reply of mostrod's `manage_errors`, byte for byte.
MAINTENANCE_REPLY = (
    '{"cant-do":{"version":2,"request_id":12,"trade_index":null,"id":"%s",'
    '"action":"cant-do","payload":{"cant_do":"maintenance_mode"}}}'
)
MAINTENANCE_REPLY_NO_ID = (
    '{"cant-do":{"version":2,"request_id":12,"trade_index":null,'
    '"action":"cant-do","payload":{"cant_do":"maintenance_mode"}}}'
)


def _drain() -> None:
    MaintenanceState.objects.create(pk=1, enabled=True, reason="moving LND", since=timezone.now())


def _undrain() -> None:
    MaintenanceState.objects.filter(pk=1).update(enabled=False, reason="", since=None)


@pytest.fixture
def alice():
    return TradeClient("alice")


@pytest.fixture
def bob():
    return TradeClient("bob")


def test_new_order_is_refused_and_creates_no_user_and_burns_no_index(alice, fake_ln):
    set_price()
    _drain()

    replies = alice.send(Action.NEW_ORDER, index=1, payload=order_terms(), request_id=12)

    assert [(r.recipient, r.message.to_json()) for r in replies] == [(alice.pubkey(1), MAINTENANCE_REPLY_NO_ID)]
    assert (Order.objects.count(), OrderStatusChange.objects.count(), Trader.objects.count()) == (0, 0, 0)
    assert OutboundMessage.objects.count() == 1
    assert ln_writes(fake_ln) == []
    assert InboundEvent.objects.get().drop_reason == "cant-do maintenance_mode"

    _undrain()  # the same trade index 1 is still free: nothing was burned
    order = make_order(alice, index=1)
    assert Trader.objects.get(pk=alice.identity.public_key_hex).last_trade_index == 1
    assert order.status == "pending"


def test_a_malformed_new_order_gets_the_same_reply_with_its_id_echoed(alice, fake_ln):
    """The gate runs before `verify()`: a new-order without its order payload is answered."""
    set_price()
    _drain()
    stray_id = uuid.UUID("308e1272-d5f4-47e6-bd97-3504baea9c23")

    replies = alice.send(Action.NEW_ORDER, index=1, payload=None, order_id=stray_id, request_id=12)

    assert [r.message.to_json() for r in replies] == [MAINTENANCE_REPLY % stray_id]
    assert (Order.objects.count(), Trader.objects.count()) == (0, 0)

    _undrain()  # without maintenance the same message fails verify(): dropped in silence
    assert alice.send(Action.NEW_ORDER, index=1, payload=None, order_id=stray_id, request_id=12) == []


def test_a_stale_index_is_refused_as_maintenance_not_as_invalid_trade_index(alice, fake_ln):
    set_price()
    make_order(alice, index=3)
    _drain()

    replies = alice.send(Action.NEW_ORDER, index=2, payload=order_terms(), request_id=12)

    assert [r.message.to_json() for r in replies] == [MAINTENANCE_REPLY_NO_ID]
    assert Trader.objects.get(pk=alice.identity.public_key_hex).last_trade_index == 3


@pytest.mark.parametrize(("kind", "action"), [("sell", Action.TAKE_SELL), ("buy", Action.TAKE_BUY)])
def test_takes_are_refused_and_leave_the_order_and_the_taker_untouched(alice, bob, fake_ln, kind, action):
    set_price()
    order = make_order(alice, index=1, kind=kind)
    alice.replies()
    _drain()

    assert_refused(bob, action, index=1, order_id=order.id, reason="maintenance_mode", fake_ln=fake_ln, orders=[order])
    assert not Trader.objects.filter(pk=bob.identity.public_key_hex).exists()
    assert order.status == "pending"

    _undrain()
    bob.send(action, index=1, order_id=order.id)
    order.refresh_from_db()
    assert order.status in ("waiting-buyer-invoice", "waiting-payment")
    assert Trader.objects.get(pk=bob.identity.public_key_hex).last_trade_index == 1


def test_open_trades_keep_running_while_drained(alice, bob, fake_ln):
    """An order taken before the switch finishes its steps: the buyer's invoice is accepted."""
    set_price()
    order = make_order(alice, index=1)  # sell order: bob buys
    bob.send(Action.TAKE_SELL, index=1, order_id=order.id)
    order.refresh_from_db()
    assert order.status == "waiting-buyer-invoice"
    _drain()

    invoice = mint_invoice(amount_sats=order.amount_sats - order.fee_sats)
    replies = bob.send(
        Action.ADD_INVOICE, index=1, order_id=order.id, payload=PaymentRequestPayload(None, invoice, None)
    )

    order.refresh_from_db()
    assert order.status == "waiting-payment"
    assert order.buyer_invoice == invoice
    assert "cant-do" not in [r.action for r in replies]


def test_the_maker_may_still_cancel_a_pending_order(alice, fake_ln):
    set_price()
    order = make_order(alice, index=1)
    _drain()

    replies = alice.send(Action.CANCEL, index=1, order_id=order.id)

    order.refresh_from_db()
    assert order.status == "canceled"
    assert [r.action for r in replies] == ["canceled"]
