"""Limits per trader and taker requirements at the protocol edge (docs/OPERATIONS.md §Policies):
each refusal is one cant-do, nothing stored, the policy named in the inbound row."""

from datetime import timedelta

import pytest
from django.utils import timezone

from nostrbridge.models import InboundEvent
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import PaymentRequestPayload
from orders.models import Order, Trader
from tests.orders.services.support import assert_refused, configure, make_order, mint_invoice, order_terms, set_price
from tests.trade.harness import TradeClient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("node")]


@pytest.fixture
def alice():
    set_price()
    return TradeClient("alice")


@pytest.fixture
def bob():
    return TradeClient("bob")


def fixed(client, sats: int, index: int, kind: str = "sell") -> Order:
    return make_order(client, index=index, kind=kind, amount=sats, premium=0)


def policy_note(client, index: int) -> str:
    return InboundEvent.objects.order_by("pk").last().drop_reason.replace(f" key:{client.pubkey(index)[:16]}", "")


def take_with_invoice(client, index: int, order: Order, sats: int):
    payout = sats - int(0.006 * sats / 2 + 0.5)
    payload = PaymentRequestPayload(None, mint_invoice(amount_sats=payout), None)
    return client.send(Action.TAKE_SELL, index=index, order_id=order.id, payload=payload)


def test_max_open_orders(alice, settings, fake_ln):
    configure(settings, MOSTRO_MAX_OPEN_ORDERS=2)
    first, _ = fixed(alice, 5_000, 1), fixed(alice, 5_000, 2)

    assert_refused(
        alice, Action.NEW_ORDER, index=3, order_id=None, reason="too_many_requests", fake_ln=fake_ln,
        payload=order_terms(amount=5_000, premium=0),
    )  # fmt: skip
    assert Order.objects.count() == 2
    assert Trader.objects.get(pk=alice.identity.public_key_hex).last_trade_index == 2
    assert policy_note(alice, 3) == "cant-do too_many_requests policy:max-open-orders"

    Order.objects.filter(pk=first.pk).update(status="canceled")  # one left the book
    assert fixed(alice, 5_000, 4).status == "pending"


def test_cooldown_between_takes(alice, bob, settings, fake_ln):
    first, second = fixed(alice, 5_000, 1), fixed(alice, 5_000, 2)
    configure(settings, MOSTRO_TAKE_COOLDOWN_SECONDS=60)
    assert [r.action for r in take_with_invoice(bob, 1, first, 5_000)] == ["waiting-seller-to-pay"]

    assert_refused(
        bob, Action.TAKE_SELL, index=2, order_id=second.id, reason="too_many_requests", fake_ln=fake_ln,
        orders=[second],
    )  # fmt: skip
    assert policy_note(bob, 2) == "cant-do too_many_requests policy:take-cooldown"

    Order.objects.filter(pk=first.pk).update(taken_at=timezone.now() - timedelta(seconds=61))
    assert [r.action for r in take_with_invoice(bob, 3, second, 5_000)] == ["waiting-seller-to-pay"]


def test_daily_volume_cap_of_a_maker(alice, settings, fake_ln):
    configure(settings, MOSTRO_DAILY_VOLUME_SATS=10_000)
    fixed(alice, 6_000, 1)
    assert_refused(
        alice, Action.NEW_ORDER, index=2, order_id=None, reason="too_many_requests", fake_ln=fake_ln,
        payload=order_terms(amount=4_001, premium=0),
    )  # fmt: skip
    assert policy_note(alice, 2) == "cant-do too_many_requests policy:daily-volume"
    assert fixed(alice, 4_000, 3).amount_sats == 4_000  # exactly the cap


def test_daily_volume_cap_of_a_taker_counts_the_last_24_hours(alice, bob, settings, fake_ln):
    first, second = fixed(alice, 6_000, 1), fixed(alice, 6_000, 2)
    configure(settings, MOSTRO_DAILY_VOLUME_SATS=10_000)
    assert [r.action for r in take_with_invoice(bob, 1, first, 6_000)] == ["waiting-seller-to-pay"]

    assert_refused(
        bob, Action.TAKE_SELL, index=2, order_id=second.id, reason="too_many_requests", fake_ln=fake_ln,
        orders=[second],
    )  # fmt: skip

    Order.objects.filter(pk=first.pk).update(taken_at=timezone.now() - timedelta(hours=24, seconds=1))
    assert [r.action for r in take_with_invoice(bob, 3, second, 6_000)] == ["waiting-seller-to-pay"]


@pytest.fixture
def requirements(settings):
    configure(
        settings,
        MOSTRO_COUNTERPARTY_THRESHOLD_SATS=5_000,
        MOSTRO_COUNTERPARTY_MIN_TRADES=1,
        MOSTRO_COUNTERPARTY_MIN_RATING=4.0,
        MOSTRO_COUNTERPARTY_MIN_AGE_DAYS=7,
    )


def _qualify(taker: TradeClient, *, trades: int = 1, rating: float = 4.0, age_days: int = 7) -> None:
    key = taker.identity.public_key_hex
    Trader.objects.update_or_create(
        pubkey=key, defaults={"total_rating": rating, "total_reviews": 3, "last_trade_index": 9}
    )
    Trader.objects.filter(pk=key).update(created_at=timezone.now() - timedelta(days=age_days, minutes=1))
    for _ in range(trades):
        Order.objects.create(
            kind="buy", status="success", creator_pubkey="c" * 64, master_seller_pubkey=key, payment_method="x",
            fiat_code="VES", amount_sats=1_000, created_at=timezone.now(), expires_at=timezone.now(),
        )  # fmt: skip


@pytest.mark.parametrize(
    ("_case", "record"),
    [
        ("new taker", None),
        ("no completed trade", {"trades": 0}),
        ("rating too low", {"rating": 3.9}),
        ("too young", {"age_days": 6}),
    ],
)
def test_takers_short_of_the_requirements_are_refused_above_the_threshold(
    _case, record, alice, bob, requirements, fake_ln
):
    large = fixed(alice, 5_001, 1)
    if record is not None:
        _qualify(bob, **record)
    assert_refused(
        bob, Action.TAKE_SELL, index=10, order_id=large.id, reason="not_authorized", fake_ln=fake_ln, orders=[large]
    )
    assert policy_note(bob, 10) == "cant-do not_authorized policy:taker-requirements"


def test_requirements_apply_only_above_the_threshold_and_a_qualified_taker_passes(alice, bob, requirements):
    at_threshold, large = fixed(alice, 5_000, 1), fixed(alice, 5_001, 2)
    assert [r.action for r in take_with_invoice(bob, 1, at_threshold, 5_000)] == ["waiting-seller-to-pay"]
    _qualify(bob)
    assert [r.action for r in take_with_invoice(bob, 10, large, 5_001)] == ["waiting-seller-to-pay"]


def test_requirements_apply_to_take_buy(alice, bob, requirements, fake_ln):
    large = fixed(alice, 8_000, 1, kind="buy")
    assert_refused(
        bob, Action.TAKE_BUY, index=1, order_id=large.id, reason="not_authorized", fake_ln=fake_ln, orders=[large]
    )
