"""`take-buy` through the real pipeline (docs/PROTOCOL.md §Take)."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from nostrbridge.dispatch import process_inbound
from nostrbridge.inbox import inbox_claim
from nostrbridge.models import InboundEvent
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import AmountPayload, PaymentRequestPayload
from orders.models import BtcPrice, Order, Trader
from orders.services.escrow import escrow_on_accepted
from tests.orders.services.support import (
    assert_refused,
    assert_waits_for_price,
    make_order,
    order_events,
    published_statuses,
    set_price,
    tag,
)
from tests.trade.harness import TradeClient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("node")]


@pytest.fixture
def alice():
    return TradeClient("alice")


@pytest.fixture
def bob():
    return TradeClient("bob")


@pytest.fixture
def buy_order(alice):
    set_price()
    order = make_order(alice, index=2, kind="buy", payment_method="face to face")
    alice.replies()
    return order


def test_take_issues_the_hold_invoice_and_publishes_in_progress(buy_order, alice, bob, fake_ln):
    to_bob = bob.send(Action.TAKE_BUY, index=2, order_id=buy_order.id, request_id=12)
    buy_order.refresh_from_db()

    assert buy_order.status == "waiting-payment"
    assert (buy_order.seller_pubkey, buy_order.master_seller_pubkey, buy_order.trade_index_seller) == (
        bob.pubkey(2),
        bob.identity.public_key_hex,
        2,
    )
    assert (buy_order.amount_sats, buy_order.fee_sats, buy_order.dev_fee_sats) == (7851, 24, 14)
    assert (buy_order.hold_invoice_request_id, buy_order.invoice_held_at) == (12, None)
    assert [(r.action, r.message.trade_index) for r in to_bob] == [("pay-invoice", 2)]
    assert [(r.action, r.message.request_id) for r in alice.replies()] == [("waiting-seller-to-pay", 12)]
    assert [name for name, _ in fake_ln.calls].count("add_hold_invoice") == 1
    assert published_statuses(buy_order.id) == ["pending", "in-progress"]
    in_progress = order_events(buy_order.id)[-1]
    assert tag(in_progress, "amt") == ["7851"]
    assert not any(t[0] in ("rating", "source") for t in in_progress.tags)
    # expiration = now + order_days; created_at may be now + 1 (same-second revisions, docs/PROTOCOL.md §Events).
    wall_now = int(tag(in_progress, "expiration")[0]) - 30 * 86400
    assert in_progress.created_at in (wall_now, wall_now + 1)
    assert Trader.objects.get(pk=bob.identity.public_key_hex).last_trade_index == 2


def test_a_first_take_retried_after_lnd_was_unreachable_is_not_refused(buy_order, alice, bob, fake_ln):
    """A first-time identity's take whose hold invoice LND could not make (unreachable, or a
    call past its deadline) is retried by the inbox; the retry passes the trade-index gate (the
    gate registered the identity without spending the index) and the take goes through, once."""
    fake_ln.set_unavailable(True)
    assert bob.send(Action.TAKE_BUY, index=2, order_id=buy_order.id, request_id=12) == []
    row = InboundEvent.objects.order_by("-pk").first()
    assert (row.status, row.locked_by) == ("processing", "")  # waiting out its LND backoff
    assert Trader.objects.get(pk=bob.identity.public_key_hex).last_trade_index == 1
    buy_order.refresh_from_db()
    assert (buy_order.status, buy_order.hold_invoice_hash) == ("pending", None)

    fake_ln.set_unavailable(False)
    InboundEvent.objects.filter(pk=row.pk).update(locked_until=timezone.now() - timedelta(seconds=1))
    assert inbox_claim(worker_id="test") == [row.pk]
    assert process_inbound(row.pk) == "done"
    buy_order.refresh_from_db()
    assert buy_order.status == "waiting-payment"
    assert [(r.action, r.message.trade_index) for r in bob.replies()] == [("pay-invoice", 2)]
    assert [(r.action, r.message.request_id) for r in alice.replies()] == [("waiting-seller-to-pay", 12)]
    assert [name for name, _ in fake_ln.calls].count("add_hold_invoice") == 1
    assert Trader.objects.get(pk=bob.identity.public_key_hex).last_trade_index == 2


def test_paid_escrow_restarts_the_clock_for_the_buyer(buy_order, bob, fake_ln):
    bob.send(Action.TAKE_BUY, index=2, order_id=buy_order.id)
    buy_order.refresh_from_db()
    Order.objects.filter(pk=buy_order.pk).update(taken_at=timezone.now() - timezone.timedelta(minutes=10))

    fake_ln.mark_accepted(buy_order.hold_invoice_hash)
    assert escrow_on_accepted(payment_hash_hex=buy_order.hold_invoice_hash) is True
    buy_order.refresh_from_db()
    assert buy_order.status == "waiting-buyer-invoice"
    assert (timezone.now() - buy_order.taken_at).total_seconds() < 5
    assert buy_order.invoice_held_at is not None
    # waiting-buyer-invoice is not published for buy orders.
    assert published_statuses(buy_order.id) == ["pending", "in-progress"]


def test_buy_order_with_lightning_address_goes_straight_to_active(alice, bob, lnurl_server, fake_ln):
    set_price()
    lnurl_server.pay_request("alice")
    order = make_order(alice, index=3, kind="buy", buyer_invoice=lnurl_server.address("alice"))
    bob.send(Action.TAKE_BUY, index=3, order_id=order.id, request_id=40)
    order.refresh_from_db()
    fake_ln.mark_accepted(order.hold_invoice_hash)
    escrow_on_accepted(payment_hash_hex=order.hold_invoice_hash)

    order.refresh_from_db()
    assert order.status == "active"
    assert [(r.action, r.message.request_id) for r in alice.replies()][-1] == ("hold-invoice-payment-accepted", 40)


def test_invoice_string_in_payload_is_ignored_but_its_amount_counts(alice, bob, fake_ln):
    set_price()
    order = make_order(alice, kind="buy", fiat_amount=0, min_amount=10, max_amount=50)
    bob.send(Action.TAKE_BUY, index=1, order_id=order.id, payload=PaymentRequestPayload(None, "garbage", 15))
    order.refresh_from_db()
    assert (order.status, order.fiat_amount, order.amount_sats, order.buyer_invoice) == (
        "waiting-payment",
        15,
        1177,
        None,
    )


# --- refusals ----------------------------------------------------------------------------


def test_unknown_order(bob, fake_ln):
    assert_refused(bob, Action.TAKE_BUY, index=1, order_id=uuid.uuid4(), reason="not_found", fake_ln=fake_ln)


def test_seller_with_an_unpaid_escrow(alice, bob, buy_order, fake_ln):
    first = make_order(alice, index=3, kind="buy")
    bob.send(Action.TAKE_BUY, index=1, order_id=first.id)
    assert_refused(
        bob,
        Action.TAKE_BUY,
        index=2,
        order_id=buy_order.id,
        reason="pending_order_exists",
        fake_ln=fake_ln,
        orders=[buy_order],
    )


def test_sell_order_cannot_be_taken_as_buy(alice, bob, fake_ln):
    set_price()
    order = make_order(alice)
    assert_refused(
        bob, Action.TAKE_BUY, index=1, order_id=order.id, reason="invalid_order_kind", fake_ln=fake_ln, orders=[order]
    )


def test_order_already_taken(buy_order, bob, fake_ln):
    TradeClient("carol").send(Action.TAKE_BUY, index=1, order_id=buy_order.id)
    assert_refused(
        bob,
        Action.TAKE_BUY,
        index=1,
        order_id=buy_order.id,
        reason="invalid_order_status",
        fake_ln=fake_ln,
        orders=[buy_order],
    )


def test_take_window_closed(buy_order, bob, fake_ln):
    Order.objects.filter(pk=buy_order.pk).update(expires_at=timezone.now() - timezone.timedelta(seconds=1))
    assert_refused(
        bob,
        Action.TAKE_BUY,
        index=1,
        order_id=buy_order.id,
        reason="invalid_order_status",
        fake_ln=fake_ln,
        orders=[buy_order],
    )


def test_maker_cannot_take_its_own_order(buy_order, alice, fake_ln):
    assert_refused(
        alice,
        Action.TAKE_BUY,
        index=2,
        trade_index=3,
        order_id=buy_order.id,
        reason="invalid_pubkey",
        fake_ln=fake_ln,
        orders=[buy_order],
    )


@pytest.mark.parametrize(("_case", "payload"), [("below min", AmountPayload(5)), ("missing", None)])
def test_range_amount_out_of_range(_case, payload, alice, bob, fake_ln):
    set_price()
    order = make_order(alice, kind="buy", fiat_amount=0, min_amount=10, max_amount=50)
    assert_refused(
        bob,
        Action.TAKE_BUY,
        index=1,
        order_id=order.id,
        payload=payload,
        reason="out_of_range_sats_amount",
        fake_ln=fake_ln,
        orders=[order],
    )


def test_stale_price(buy_order, bob, fake_ln):
    set_price(age_seconds=3600)
    assert_refused(
        bob,
        Action.TAKE_BUY,
        index=1,
        order_id=buy_order.id,
        reason="price_too_stale",
        fake_ln=fake_ln,
        orders=[buy_order],
    )


def test_missing_price_waits_then_is_answered(buy_order, bob, fake_ln, price_fetcher):
    BtcPrice.objects.all().delete()
    assert_waits_for_price(
        bob, Action.TAKE_BUY, index=1, order_id=buy_order.id, fake_ln=fake_ln, orders=[buy_order], fetcher=price_fetcher
    )
    assert [name for name, _ in fake_ln.calls if name == "add_hold_invoice"] == []


def test_reused_trade_index(buy_order, bob, fake_ln):
    Trader.objects.create(pubkey=bob.identity.public_key_hex, last_trade_index=5)
    assert_refused(
        bob,
        Action.TAKE_BUY,
        index=5,
        order_id=buy_order.id,
        reason="invalid_trade_index",
        fake_ln=fake_ln,
        orders=[buy_order],
    )
