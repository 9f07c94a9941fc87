"""`new-order` refusals: one cant-do to the sender, nothing stored, nothing published."""

from datetime import timedelta

import pytest
from django.utils import timezone

from nostrbridge.dispatch import process_inbound
from nostrbridge.inbox import inbox_claim
from nostrbridge.models import InboundEvent, OutboundMessage
from nostrbridge.protocol.enums import Action
from orders.models import Order, OrderStatusChange, Trader
from tests.orders.services.support import (
    cant_do_json,
    configure,
    ln_writes,
    make_order,
    mint_invoice,
    order_terms,
    set_price,
)
from tests.trade.harness import TradeClient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("node")]


def _refused(client, payload, reason, *, fake_ln, index=1, trade_index="auto"):
    replies = client.send(Action.NEW_ORDER, index=index, payload=payload, request_id=9, trade_index=trade_index)
    assert [(r.recipient, r.message.to_json()) for r in replies] == [
        (client.pubkey(index), cant_do_json(reason, request_id=9))
    ]
    assert Order.objects.count() == 0
    assert OrderStatusChange.objects.count() == 0
    assert OutboundMessage.objects.count() == 1  # the cant-do itself
    assert ln_writes(fake_ln) == []
    assert InboundEvent.objects.get().status == "done"


@pytest.mark.parametrize(
    ("_case", "terms", "reason"),
    [
        ("kind missing", {"kind": None}, "invalid_order_kind"),
        ("currency not accepted", {"fiat_code": "EUR"}, "invalid_fiat_currency"),
        ("fiat amount zero", {"fiat_amount": 0}, "invalid_amount"),
        ("fiat amount negative", {"fiat_amount": -5}, "invalid_amount"),
        ("sats amount negative", {"amount": -1, "premium": 0}, "invalid_amount"),
        ("range min equals max", {"fiat_amount": 0, "min_amount": 10, "max_amount": 10}, "invalid_amount"),
        ("range min above max", {"fiat_amount": 0, "min_amount": 50, "max_amount": 10}, "invalid_amount"),
        ("range negative min", {"fiat_amount": 0, "min_amount": -1, "max_amount": 10}, "invalid_amount"),
        (
            "range with sats amount",
            {"fiat_amount": 0, "min_amount": 10, "max_amount": 50, "amount": 5000, "premium": 0},
            "invalid_amount",
        ),
        ("premium with sats amount", {"amount": 5000, "premium": 2}, "invalid_parameters"),
        ("market quote above max", {"fiat_amount": 20_000}, "out_of_range_sats_amount"),
        ("market quote below min", {"fiat_amount": 1}, "out_of_range_sats_amount"),
        (
            "range max quote above max",
            {"fiat_amount": 0, "min_amount": 10, "max_amount": 20_000},
            "out_of_range_sats_amount",
        ),
        ("fixed amount below min", {"amount": 99, "premium": 0}, "out_of_range_sats_amount"),
        ("fixed amount above max", {"amount": 1_000_001, "premium": 0}, "out_of_range_sats_amount"),
    ],
)
def test_terms_refused(_case, terms, reason, fake_ln):
    set_price()
    _refused(TradeClient("alice"), order_terms(**terms), reason, fake_ln=fake_ln)


def test_checks_run_in_spec_order(fake_ln):
    # Bad currency and bad amount together: the currency check comes first (docs/PROTOCOL.md §New-order).
    set_price()
    _refused(
        TradeClient("alice"), order_terms(fiat_code="EUR", fiat_amount=0), "invalid_fiat_currency", fake_ln=fake_ln
    )


def test_empty_whitelist_accepts_any_currency(settings):
    configure(settings, MOSTRO_FIAT_CURRENCIES_ACCEPTED=[])
    set_price("EUR")
    order = make_order(TradeClient("alice"), fiat_code="EUR")
    assert order.fiat_code == "EUR"


def test_stale_price(fake_ln):
    set_price(age_seconds=1801)
    _refused(TradeClient("alice"), order_terms(), "price_too_stale", fake_ln=fake_ln)


def test_no_price_waits_for_a_fetch_then_is_answered(fake_ln, price_fetcher):
    """Cold start: no price stored. The message waits in the inbox (no reply, nothing stored, no
    trade index spent) while a price tick runs; once the price is in, the retry creates the order."""
    alice = TradeClient("alice")
    assert alice.send(Action.NEW_ORDER, index=1, payload=order_terms(), request_id=9) == []
    row = InboundEvent.objects.get()
    assert (row.status, row.locked_by, row.attempts) == ("processing", "deferred", 0)
    # Before the trade-index gate: nobody registered, so the retry is not refused `invalid_trade_index`.
    assert (Order.objects.count(), OutboundMessage.objects.count(), Trader.objects.count()) == (0, 0, 0)
    assert price_fetcher.requests == 1

    set_price()  # what the tick stored
    assert [r.message.kind.action.value for r in _retry(alice, row.pk)] == ["new-order"]
    assert Order.objects.get().status == "pending"
    assert Trader.objects.get().last_trade_index == 1
    assert InboundEvent.objects.get().status == "done"


def test_no_price_after_the_wait_is_answered_price_too_stale(fake_ln, price_fetcher, settings):
    """No provider answered within MOSTRO_PRICE_WAIT_SECONDS: a cant-do, never silence; nothing stored."""
    settings.MOSTRO_PRICE_WAIT_SECONDS = 30
    alice = TradeClient("alice")
    assert alice.send(Action.NEW_ORDER, index=1, payload=order_terms(), request_id=9) == []
    row = InboundEvent.objects.get()
    InboundEvent.objects.filter(pk=row.pk).update(received_at=timezone.now() - timedelta(seconds=29))
    assert _retry(alice, row.pk) == []  # still waiting
    InboundEvent.objects.filter(pk=row.pk).update(received_at=timezone.now() - timedelta(seconds=30))
    replies = _retry(alice, row.pk)
    assert [(r.recipient, r.message.to_json()) for r in replies] == [
        (alice.pubkey(1), cant_do_json("price_too_stale", request_id=9))
    ]
    assert (Order.objects.count(), OrderStatusChange.objects.count(), OutboundMessage.objects.count()) == (0, 0, 1)
    assert ln_writes(fake_ln) == []
    assert InboundEvent.objects.get().status == "done"
    assert price_fetcher.requests == 3


def _retry(client: TradeClient, pk: int) -> list:
    """The deferred row's lease ends: the inbox claims and processes it again."""
    InboundEvent.objects.filter(pk=pk).update(locked_until=timezone.now() - timedelta(seconds=1))
    assert inbox_claim(worker_id="test") == [pk]
    process_inbound(pk)
    return client.replies()


@pytest.mark.parametrize(
    ("_case", "invoice"),
    [
        ("amount on a market order", lambda: mint_invoice(amount_sats=7827)),
        ("amount differs from the order amount", lambda: mint_invoice(amount_sats=9_970)),
        ("undecodable", lambda: "lnbcrt1notaninvoice"),
        ("wrong network", lambda: mint_invoice(currency="bc")),
        ("expired", lambda: mint_invoice(expiry_seconds=60, age_seconds=120)),
    ],
)
def test_invalid_buyer_invoice(_case, invoice, fake_ln):
    set_price()
    amount = 10_000 if "differs" in _case else 0
    premium = 0 if amount else 1
    terms = order_terms(kind="buy", amount=amount, premium=premium, buyer_invoice=invoice())
    _refused(TradeClient("alice"), terms, "invalid_invoice", fake_ln=fake_ln)


def test_buyer_invoice_checked_before_currency(fake_ln):
    terms = order_terms(kind="buy", fiat_code="EUR", buyer_invoice="lnbcrt1notaninvoice")
    _refused(TradeClient("alice"), terms, "invalid_invoice", fake_ln=fake_ln)


def test_unresolvable_lightning_address(lnurl_server, fake_ln):
    set_price()
    terms = order_terms(kind="buy", buyer_invoice=lnurl_server.address("nobody"))
    _refused(TradeClient("alice"), terms, "invalid_invoice", fake_ln=fake_ln)


def test_reused_trade_index(fake_ln):
    set_price()
    alice = TradeClient("alice")
    make_order(alice, index=1)
    OutboundMessage.objects.all().delete()
    before = Order.objects.count()
    replies = alice.send(Action.NEW_ORDER, index=2, payload=order_terms(), trade_index=1, request_id=9)
    assert [r.message.to_json() for r in replies] == [cant_do_json("invalid_trade_index", request_id=9)]
    assert Order.objects.count() == before
    assert Trader.objects.get(pk=alice.identity.public_key_hex).last_trade_index == 1


def test_reputation_mode_without_trade_index_is_silent():
    set_price()
    alice = TradeClient("alice")
    Trader.objects.create(pubkey=alice.identity.public_key_hex, last_trade_index=4)
    replies = alice.send(Action.NEW_ORDER, index=5, payload=order_terms(), trade_index=None)
    assert replies == []
    assert Order.objects.count() == 0
