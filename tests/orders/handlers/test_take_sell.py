"""`take-sell` through the real pipeline (docs/PROTOCOL.md §Take)."""

import uuid

import pytest

from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import AmountPayload, PaymentRequestPayload
from orders.models import BtcPrice, Order, OrderStatusChange, Trader
from orders.services.escrow import escrow_on_accepted
from tests.orders.services.support import (
    assert_refused,
    assert_waits_for_price,
    configure,
    make_order,
    mint_invoice,
    published_statuses,
    set_price,
)
from tests.trade.harness import TradeClient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("node")]

MEMO = (
    "Escrow amount Order #{id}: SELL BTC for VES {fiat} - It WILL FREEZE IN WALLET. It will release once you "
    "release. It will return if buyer does not confirm the payment"
)


@pytest.fixture
def alice():
    return TradeClient("alice")


@pytest.fixture
def bob():
    return TradeClient("bob")


@pytest.fixture
def sell_order(alice):
    set_price()
    order = make_order(alice, index=1)
    alice.replies()
    return order


def _invoice_payload(invoice: str, amount: int | None = None) -> PaymentRequestPayload:
    return PaymentRequestPayload(None, invoice, amount)


def test_take_without_invoice_waits_for_the_buyer(sell_order, bob, alice, fake_ln):
    bob.send(Action.TAKE_SELL, index=1, order_id=sell_order.id)
    sell_order.refresh_from_db()

    assert (sell_order.status, sell_order.buyer_pubkey, sell_order.master_buyer_pubkey) == (
        "waiting-buyer-invoice",
        bob.pubkey(1),
        bob.identity.public_key_hex,
    )
    assert (sell_order.amount_sats, sell_order.fee_sats, sell_order.dev_fee_sats) == (7851, 24, 14)
    assert sell_order.taken_at is not None
    assert sell_order.hold_invoice_hash is None
    assert Trader.objects.get(pk=bob.identity.public_key_hex).last_trade_index == 1
    assert list(OrderStatusChange.objects.filter(order=sell_order).values_list("to_status", flat=True)) == [
        "pending",
        "waiting-buyer-invoice",
    ]
    assert ln_calls(fake_ln) == []  # no invoice yet (the network was fetched at process start)


def ln_calls(fake_ln) -> list[str]:
    return [name for name, _ in fake_ln.calls]


def test_take_with_invoice_issues_the_hold_invoice(sell_order, bob, alice, fake_ln):
    payout = mint_invoice(amount_sats=7827)
    to_bob = bob.send(Action.TAKE_SELL, index=1, order_id=sell_order.id, payload=_invoice_payload(payout), request_id=5)
    to_alice = alice.replies()
    sell_order.refresh_from_db()

    assert sell_order.status == "waiting-payment"
    assert (sell_order.buyer_invoice, sell_order.hold_invoice_request_id) == (payout, 5)
    name, args = fake_ln.calls[-1]
    assert (name, args) == (
        "add_hold_invoice",
        {
            "amount_sats": 7875,
            "payment_hash": sell_order.hold_invoice_hash,
            "memo": MEMO.format(id=sell_order.id, fiat=100),
            "cltv_expiry": 144,
            "expiry_seconds": None,
        },
    )
    (pay,) = to_alice
    assert (pay.action, pay.message.request_id, pay.message.trade_index) == ("pay-invoice", 5, 1)
    assert pay.payload.invoice == sell_order.hold_invoice_payment_request
    assert pay.json["order"]["payload"]["payment_request"][0]["amount"] == 7875
    assert "buyer_invoice" not in pay.json["order"]["payload"]["payment_request"][0]
    assert [(r.action, r.message.request_id, r.message.trade_index, r.payload) for r in to_bob] == [
        ("waiting-seller-to-pay", 5, 1, None)
    ]
    # A sell order in waiting-payment is not published: the book keeps `pending` (docs/PROTOCOL.md §Take).
    assert published_statuses(sell_order.id) == ["pending"]


def test_paid_escrow_with_known_invoice_activates_the_trade(sell_order, bob, alice, fake_ln):
    payout = mint_invoice(amount_sats=7827)
    bob.send(Action.TAKE_SELL, index=1, order_id=sell_order.id, payload=_invoice_payload(payout), request_id=5)
    alice.replies()
    sell_order.refresh_from_db()

    fake_ln.mark_accepted(sell_order.hold_invoice_hash)
    assert escrow_on_accepted(payment_hash_hex=sell_order.hold_invoice_hash) is True
    assert [(r.action, r.message.request_id) for r in alice.replies()] == [("buyer-took-order", 5)]
    assert [(r.action, r.message.request_id) for r in bob.replies()] == [("hold-invoice-payment-accepted", 5)]
    sell_order.refresh_from_db()
    assert sell_order.status == "active"


def test_range_take_with_lightning_address(alice, bob, lnurl_server, fake_ln):
    set_price()
    lnurl_server.pay_request("bob")
    order = make_order(alice, index=1, fiat_amount=0, min_amount=10, max_amount=50)
    address = lnurl_server.address("bob")
    bob.send(Action.TAKE_SELL, index=1, order_id=order.id, payload=_invoice_payload(address, 15))
    order.refresh_from_db()

    assert (order.status, order.fiat_amount, order.amount_sats, order.fee_sats) == ("waiting-payment", 15, 1177, 4)
    assert order.buyer_invoice == address
    assert fake_ln.calls[-1][1]["amount_sats"] == 1181
    assert fake_ln.calls[-1][1]["memo"] == MEMO.format(id=order.id, fiat=15)


def test_fixed_order_only_gets_its_dev_fee(alice, bob):
    order = make_order(alice, amount=10_000, premium=0, fiat_code="USD", fiat_amount=10)
    bob.send(Action.TAKE_SELL, index=1, order_id=order.id)
    order.refresh_from_db()

    assert (order.amount_sats, order.fee_sats, order.dev_fee_sats) == (10_000, 30, 18)


def test_full_privacy_taker_is_stored_with_index_zero(sell_order):
    carol = TradeClient("carol", full_privacy=True)
    replies = carol.send(Action.TAKE_SELL, index=0, order_id=sell_order.id)
    sell_order.refresh_from_db()

    assert (sell_order.buyer_pubkey, sell_order.master_buyer_pubkey, sell_order.trade_index_buyer) == (
        carol.pubkey(0),
        carol.pubkey(0),
        0,
    )
    assert [(r.action, r.message.trade_index) for r in replies] == [("add-invoice", 0)]
    assert not Trader.objects.filter(pk=carol.pubkey(0)).exists()


def test_replayed_take_changes_nothing(sell_order, bob):
    event = bob.build(Action.TAKE_SELL, index=1, order_id=sell_order.id)
    from tests.trade.harness import deliver

    deliver(event)
    deliver(event)
    assert OrderStatusChange.objects.filter(order=sell_order).count() == 2
    assert len(bob.replies()) == 1


# --- refusals ----------------------------------------------------------------------------


def test_unknown_order(bob, fake_ln):
    assert_refused(bob, Action.TAKE_SELL, index=1, order_id=uuid.uuid4(), reason="not_found", fake_ln=fake_ln)


def test_buyer_with_an_order_awaiting_its_invoice(alice, bob, sell_order, fake_ln):
    first = make_order(alice, index=2)
    bob.send(Action.TAKE_SELL, index=1, order_id=first.id)
    assert_refused(
        bob,
        Action.TAKE_SELL,
        index=2,
        order_id=sell_order.id,
        reason="pending_order_exists",
        fake_ln=fake_ln,
        orders=[sell_order],
    )


def test_buy_order_cannot_be_taken_as_sell(alice, bob, fake_ln):
    set_price()
    order = make_order(alice, kind="buy")
    assert_refused(
        bob, Action.TAKE_SELL, index=1, order_id=order.id, reason="invalid_order_kind", fake_ln=fake_ln, orders=[order]
    )


def test_order_already_taken(sell_order, bob, fake_ln):
    TradeClient("carol").send(Action.TAKE_SELL, index=1, order_id=sell_order.id)
    assert_refused(
        bob,
        Action.TAKE_SELL,
        index=1,
        order_id=sell_order.id,
        reason="invalid_order_status",
        fake_ln=fake_ln,
        orders=[sell_order],
    )


def test_take_window_closed(sell_order, bob, fake_ln):
    from django.utils import timezone

    Order.objects.filter(pk=sell_order.pk).update(expires_at=timezone.now())
    assert_refused(
        bob,
        Action.TAKE_SELL,
        index=1,
        order_id=sell_order.id,
        reason="invalid_order_status",
        fake_ln=fake_ln,
        orders=[sell_order],
    )


def test_maker_cannot_take_its_own_order(sell_order, alice, fake_ln):
    assert_refused(
        alice,
        Action.TAKE_SELL,
        index=1,
        trade_index=2,
        order_id=sell_order.id,
        reason="invalid_pubkey",
        fake_ln=fake_ln,
        orders=[sell_order],
    )
    assert Trader.objects.get(pk=alice.identity.public_key_hex).last_trade_index == 1


@pytest.mark.parametrize(
    ("_case", "payload"),
    [
        ("below min", AmountPayload(9)),
        ("above max", AmountPayload(51)),
        ("no amount", None),
        ("invoice without amount", PaymentRequestPayload(None, "lnbcrt1x", None)),
    ],
)
def test_range_amount_out_of_range(_case, payload, alice, bob, fake_ln):
    set_price()
    order = make_order(alice, fiat_amount=0, min_amount=10, max_amount=50)
    assert_refused(
        bob,
        Action.TAKE_SELL,
        index=1,
        order_id=order.id,
        payload=payload,
        reason="out_of_range_sats_amount",
        fake_ln=fake_ln,
        orders=[order],
    )


def test_stale_price_at_take(sell_order, bob, fake_ln):
    set_price(age_seconds=1801)
    assert_refused(
        bob,
        Action.TAKE_SELL,
        index=1,
        order_id=sell_order.id,
        reason="price_too_stale",
        fake_ln=fake_ln,
        orders=[sell_order],
    )


def test_missing_price_at_take_waits_then_is_answered(sell_order, bob, fake_ln, price_fetcher):
    BtcPrice.objects.all().delete()
    assert_waits_for_price(
        bob,
        Action.TAKE_SELL,
        index=1,
        order_id=sell_order.id,
        fake_ln=fake_ln,
        orders=[sell_order],
        fetcher=price_fetcher,
    )


def test_premium_that_zeroes_the_amount_is_refused(alice, bob, fake_ln):
    set_price()
    order = make_order(alice, premium=90)
    Order.objects.filter(pk=order.pk).update(premium=100)  # e.g. imported: new-order refuses ≥ 100 now
    order.refresh_from_db()
    assert_refused(
        bob, Action.TAKE_SELL, index=1, order_id=order.id, reason="invalid_amount", fake_ln=fake_ln, orders=[order]
    )


def test_reused_trade_index(sell_order, alice, bob, fake_ln):
    other = make_order(alice, index=2)
    bob.send(Action.TAKE_SELL, index=1, order_id=other.id)
    assert_refused(
        bob,
        Action.TAKE_SELL,
        index=2,
        trade_index=1,
        order_id=sell_order.id,
        reason="invalid_trade_index",
        fake_ln=fake_ln,
        orders=[sell_order],
    )


@pytest.mark.parametrize(
    ("_case", "invoice"),
    [
        ("amount_mismatch", lambda: mint_invoice(amount_sats=7826)),
        ("amount is the gross amount", lambda: mint_invoice(amount_sats=7851)),
        ("undecodable", lambda: "lnbcrt1notaninvoice"),
        ("empty", lambda: ""),
        ("wrong_network", lambda: mint_invoice(amount_sats=7827, currency="tb")),
        ("expired", lambda: mint_invoice(expiry_seconds=60, age_seconds=120)),
        ("expires_too_soon", lambda: mint_invoice(expiry_seconds=600)),
        ("cltv_too_high", lambda: mint_invoice(min_final_cltv=433)),
    ],
)
def test_invalid_buyer_invoice(_case, invoice, sell_order, bob, fake_ln):
    assert_refused(
        bob,
        Action.TAKE_SELL,
        index=1,
        order_id=sell_order.id,
        payload=_invoice_payload(invoice()),
        reason="invalid_invoice",
        fake_ln=fake_ln,
        orders=[sell_order],
    )


def test_invoice_below_the_minimum_payment(alice, bob, settings, fake_ln):
    order = make_order(alice, amount=150, premium=0, fiat_code="USD", fiat_amount=1)
    configure(settings, MOSTRO_MIN_PAYMENT_AMOUNT=200)
    assert_refused(
        bob,
        Action.TAKE_SELL,
        index=1,
        order_id=order.id,
        payload=_invoice_payload(mint_invoice(amount_sats=150)),
        reason="invalid_invoice",
        fake_ln=fake_ln,
        orders=[order],
    )


@pytest.mark.parametrize(
    ("_case", "answer"),
    [
        ("not a payRequest", {"tag": "withdrawRequest"}),
        ("service error", {"status": "ERROR", "reason": "no such user"}),
        ("missing fields", {"tag": "payRequest"}),
        ("not found", None),
    ],
)
def test_unusable_lightning_address(_case, answer, sell_order, bob, lnurl_server, fake_ln):
    if answer is not None:
        lnurl_server.set_json("/.well-known/lnurlp/bob", answer)
    assert_refused(
        bob,
        Action.TAKE_SELL,
        index=1,
        order_id=sell_order.id,
        payload=_invoice_payload(lnurl_server.address("bob")),
        reason="invalid_invoice",
        fake_ln=fake_ln,
        orders=[sell_order],
    )


@pytest.mark.parametrize("action", ["new-order", "take-sell"])
def test_the_ban_and_trade_index_gates_read_once(action, sell_order, alice, bob, fake_ln):
    # One statement answers both gates (`trade_gate_read`): the ban lookup and the trader row.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        if action == "new-order":
            make_order(alice, index=2)
        else:
            bob.send(Action.TAKE_SELL, index=1, order_id=sell_order.id, payload=_invoice_payload(mint_invoice()))
    gate_reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and '"orders_ban"' in q["sql"]]
    trader_reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and 'FROM "orders_trader"' in q["sql"]]
    assert len(gate_reads) == 1
    assert trader_reads == gate_reads


def test_a_take_without_taker_bonds_only_probes_for_them(sell_order, bob, fake_ln):
    # One SELECT 1 says no taker bond is open; the gate's bond rows are loaded only when one is.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        bob.send(Action.TAKE_SELL, index=1, order_id=sell_order.id, payload=_invoice_payload(mint_invoice()))
    bond_reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and 'FROM "orders_bond"' in q["sql"]]
    assert len(bond_reads) == 1
    assert bond_reads[0].startswith('SELECT 1 FROM "orders_bond" WHERE')
    sell_order.refresh_from_db()
    assert sell_order.status == "waiting-payment"


def test_the_take_bumps_the_index_without_returning_the_trader_row(sell_order, bob, fake_ln):
    # The take never uses the bumped row (new-order does, for its rating tag): a plain UPDATE.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        bob.send(Action.TAKE_SELL, index=3, order_id=sell_order.id, payload=_invoice_payload(mint_invoice()))
    bumps = [q["sql"] for q in queries if q["sql"].startswith('UPDATE "orders_trader"')]
    assert len(bumps) == 1
    assert "RETURNING" not in bumps[0]
    assert Trader.objects.get(pk=bob.identity.public_key_hex).last_trade_index == 3
