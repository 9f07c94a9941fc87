"""Expiry and waiting-timeout guards made to decide (docs/PROTOCOL.md §Expiry, §Waiting-timeout).

A timeout re-confirms under its transition what it read (status, `taken_at`, hold hash): a
take, cancel or HTLC in between makes it lose. Window: 900 s (MOSTRO_EXPIRATION_SECONDS).
"""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import PaymentRequestPayload
from orders.models import Order
from orders.services import timeouts
from orders.services.cancel import order_cancel
from orders.services.escrow import escrow_on_accepted
from orders.services.timeouts import expired_order_ids, order_expire, order_timeout, timed_out_order_ids
from tests.foundation.factories import make_order as factory_order
from tests.guards.support import (
    actions,
    audit_trail,
    before_first_call,
    before_first_transaction,
    fresh_trade,
    row_state,
)
from tests.orders.services.support import make_order, mint_invoice, order_events, set_price, snapshot
from tests.orders.trade_states import taken_sell_trade
from tests.trade.harness import TradeClient

pytestmark = pytest.mark.django_db

WINDOW = timedelta(seconds=900)
JUST = timedelta(microseconds=1)


def _take(order_id, taker: TradeClient, *, invoice: bool = True) -> None:
    payload = PaymentRequestPayload(None, mint_invoice(amount_sats=0), None) if invoice else None
    taker.send(Action.TAKE_SELL, index=1, order_id=order_id, payload=payload, request_id=70)


def _pending(name: str) -> Order:
    set_price()
    return make_order(TradeClient(name), index=1, kind="sell")


# --- expiry --------------------------------------------------------------------------------------


def test_take_between_the_read_and_the_expiry_wins(node, fake_ln, monkeypatch):
    order = _pending("maker")
    now = order.expires_at + JUST
    before_first_transaction(monkeypatch, timeouts, lambda: _take(order.id, TradeClient("taker")))

    assert order_expire(order_id=order.id, now=now) is False
    assert row_state(order, "status")[0] == "waiting-payment"


def test_lifetime_extended_between_the_read_and_the_expiry_is_kept(node, fake_ln, monkeypatch):
    order = _pending("maker")
    now = order.expires_at + JUST
    before_first_transaction(
        monkeypatch, timeouts, lambda: Order.objects.filter(pk=order.pk).update(expires_at=now + timedelta(hours=1))
    )
    assert order_expire(order_id=order.id, now=now) is False
    assert row_state(order, "status")[0] == "pending"


def test_expiry_candidates_are_past_due_pre_trade_orders_oldest_first(node, fake_ln):
    first, second, due_now, taken = (_pending(f"maker-{i}") for i in range(4))
    now = first.expires_at + timedelta(hours=1)
    Order.objects.filter(pk=first.pk).update(expires_at=now - timedelta(seconds=2))
    Order.objects.filter(pk=second.pk).update(expires_at=now - timedelta(seconds=1))
    Order.objects.filter(pk=due_now.pk).update(expires_at=now)
    Order.objects.filter(pk=taken.pk).update(expires_at=now - timedelta(seconds=3))
    _take(taken.id, TradeClient("taker"))

    assert expired_order_ids(now=now, limit=10) == [first.pk, second.pk]
    assert expired_order_ids(now=now, limit=1) == [first.pk]
    before = snapshot(second)
    assert order_expire(order_id=first.pk, now=now) is True
    assert (row_state(first, "status")[0], snapshot(second)) == ("expired", before)


# --- waiting timeouts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("with_invoice", "status"),
    [(False, "waiting-buyer-invoice"), (True, "waiting-payment")],
    ids=["taker at fault", "maker at fault"],
)
def test_timeout_loses_to_a_cancel_and_a_new_take(with_invoice, status, node, fake_ln, monkeypatch):
    # Without an invoice the buyer (taker) owes it; with one, the seller (maker) owes the escrow.
    trade = taken_sell_trade(fake_ln, with_invoice=with_invoice)
    order_id, taker = trade.order.id, trade.buyer_key
    now = trade.order.taken_at + WINDOW + timedelta(seconds=1)
    second = TradeClient("second")

    def cancel_and_retake():
        order_cancel(order_id=order_id, sender=taker, request_id=61)
        _take(order_id, second, invoice=with_invoice)

    before_first_call(monkeypatch, timeouts, "taker_is_at_fault", cancel_and_retake)
    assert order_timeout(order_id=order_id, now=now) == timeouts.SKIPPED

    order = trade.refresh()
    assert (order.status, order.buyer_pubkey, order.dev_fee_sats) == (status, second.pubkey(1), 14)
    assert audit_trail(order)[-1] == ("pending", status)


def test_timeout_candidates_are_past_the_window_oldest_first(node, fake_ln):
    old = taken_sell_trade(fake_ln, with_invoice=True).order
    newer_trade = _pending("maker-2")
    _take(newer_trade.id, TradeClient("taker-2"))
    young = _pending("maker-3")
    _take(young.id, TradeClient("taker-3"))
    now = old.taken_at + WINDOW + timedelta(hours=1)
    Order.objects.filter(pk=old.pk).update(taken_at=now - WINDOW - timedelta(seconds=2))
    Order.objects.filter(pk=newer_trade.pk).update(taken_at=now - WINDOW - JUST)
    Order.objects.filter(pk=young.pk).update(taken_at=now - WINDOW)

    assert timed_out_order_ids(now=now, limit=10) == [old.pk, newer_trade.pk]
    assert timed_out_order_ids(now=now, limit=1) == [old.pk]
    assert order_timeout(order_id=young.pk, now=now) == timeouts.SKIPPED
    assert row_state(young, "status")[0] == "waiting-payment"


def test_timeout_moves_only_its_own_order(node, fake_ln):
    mine = taken_sell_trade(fake_ln, with_invoice=True)
    other = _pending("maker-2")
    _take(other.id, TradeClient("taker-2"))
    other.refresh_from_db()
    before = snapshot(other)

    assert order_timeout(order_id=mine.order.id, now=mine.order.taken_at + WINDOW + JUST) == timeouts.MAKER_CANCELED

    assert (mine.refresh().status, mine.order.dev_fee_sats) == ("canceled", 0)
    assert snapshot(other) == before


# --- asking LND before refunding an escrow -------------------------------------------------------


def test_node_down_at_the_escrow_lookup_skips_the_timeout(node, fake_ln):
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    before = snapshot(trade.order)
    fake_ln.set_unavailable(True)
    try:
        outcome = order_timeout(order_id=trade.order.id, now=trade.order.taken_at + WINDOW + timedelta(seconds=1))
    finally:
        fake_ln.set_unavailable(False)
    assert outcome == timeouts.SKIPPED
    assert snapshot(trade.order) == before


def test_escrow_unknown_to_the_node_is_timed_out(node, fake_ln):
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    del fake_ln.invoices[trade.order.hold_invoice_hash]  # LND lost (or never had) it

    outcome = order_timeout(order_id=trade.order.id, now=trade.order.taken_at + WINDOW + timedelta(seconds=1))

    assert outcome == timeouts.MAKER_CANCELED
    assert trade.refresh().status == "canceled"


def test_unpaid_escrow_is_canceled_at_the_node_with_the_order(node, fake_ln):
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    outcome = order_timeout(order_id=trade.order.id, now=trade.order.taken_at + WINDOW + timedelta(seconds=1))
    assert outcome == timeouts.MAKER_CANCELED
    assert fake_ln.invoice_state(trade.order.hold_invoice_hash).value == "CANCELED"
    assert [name for name, _ in fake_ln.calls if name in ("lookup_invoice", "cancel_invoice")] == [
        "lookup_invoice",
        "cancel_invoice",
    ]


# --- reads, clocks and what a lost race leaves --------------------------------------------------


def test_jobs_on_unknown_orders_do_nothing(node, fake_ln):
    assert order_expire(order_id=uuid.uuid4()) is False
    assert order_timeout(order_id=uuid.uuid4()) == timeouts.SKIPPED
    assert fake_ln.calls == []


def test_services_use_the_current_time_by_default(node, fake_ln):
    expired = _pending("maker")
    Order.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - JUST)
    taken = taken_sell_trade(fake_ln, with_invoice=True).order
    Order.objects.filter(pk=taken.pk).update(taken_at=timezone.now() - WINDOW - timedelta(seconds=1))

    assert order_expire(order_id=expired.pk) is True
    assert order_timeout(order_id=taken.pk) == timeouts.MAKER_CANCELED


def test_expiry_reads_its_own_order(node, fake_ln):
    factory_order(id=uuid.UUID(int=0), status="active")
    order = _pending("maker")
    assert order_expire(order_id=order.pk, now=order.expires_at + JUST) is True
    assert row_state(order, "status")[0] == "expired"


def test_expiry_and_timeout_events_carry_the_network_and_the_jobs_clock(node, fake_ln):
    order = _pending("maker")
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    expire_at = order.expires_at + timedelta(hours=2)
    timeout_at = trade.order.taken_at + WINDOW + timedelta(hours=3)

    assert order_expire(order_id=order.pk, now=expire_at) is True
    assert order_timeout(order_id=trade.order.id, now=timeout_at) == timeouts.MAKER_CANCELED

    for event_order, at in ((order, expire_at), (trade.order, timeout_at)):
        event = order_events(event_order.pk)[-1]
        assert (event.tag_value("s"), event.tag_value("network"), event.created_at) == (
            "canceled",
            "regtest",
            int(at.timestamp()),
        )


def test_active_order_is_never_timed_out(node, fake_ln):
    trade = fresh_trade(fake_ln)
    before = snapshot(trade.order)
    assert order_timeout(order_id=trade.order.id, now=trade.order.taken_at + WINDOW * 10) == timeouts.SKIPPED
    assert snapshot(trade.order) == before
    assert fake_ln.invoice_state(trade.order.hold_invoice_hash).value == "ACCEPTED"


def test_waiting_order_without_a_duty_start_is_left_alone(node, fake_ln):
    order = factory_order(status="waiting-buyer-invoice", taken_at=None)
    assert order_timeout(order_id=order.pk) == timeouts.SKIPPED
    assert row_state(order, "status")[0] == "waiting-buyer-invoice"


def test_taker_timeout_clears_the_dev_fee_of_a_fixed_amount_order(node, fake_ln):
    set_price()
    maker, taker = TradeClient("maker"), TradeClient("taker")
    order = make_order(maker, index=1, kind="sell", amount=10_000, premium=0)
    _take(order.id, taker, invoice=False)
    order.refresh_from_db()
    assert (order.status, order.dev_fee_sats) == ("waiting-buyer-invoice", 18)

    assert order_timeout(order_id=order.pk, now=order.taken_at + WINDOW + JUST) == timeouts.TAKER_RESET
    assert row_state(order, "status", "amount_sats", "dev_fee_sats") == ("pending", 10_000, 0)


def test_timeout_losing_to_a_maker_cancel_logs_no_escrow_alarm(node, fake_ln, monkeypatch, caplog):
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    order_id, maker = trade.order.id, trade.seller_key
    before_first_call(
        monkeypatch,
        timeouts,
        "taker_is_at_fault",
        lambda: order_cancel(order_id=order_id, sender=maker, request_id=60),
    )
    trade.buyer.replies()

    assert order_timeout(order_id=order_id, now=trade.order.taken_at + WINDOW + JUST) == timeouts.SKIPPED

    assert actions(trade.buyer) == ["canceled"]  # from the maker's cancel only
    assert [r.levelname for r in caplog.records if r.name == "orders.services.timeouts"] == ["INFO"]
    assert caplog.records[-1].getMessage() == f"order {order_id} changed before its timeout could apply; skipped"


def test_escrow_replaced_with_the_same_duty_start_is_not_timed_out(node, fake_ln, monkeypatch):
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    before_first_call(
        monkeypatch,
        timeouts,
        "taker_is_at_fault",
        lambda: Order.objects.filter(pk=trade.order.id).update(hold_invoice_hash="ee" * 32),
    )
    assert order_timeout(order_id=trade.order.id, now=trade.order.taken_at + WINDOW + JUST) == timeouts.SKIPPED
    assert row_state(trade.order, "status", "hold_invoice_hash") == ("waiting-payment", "ee" * 32)


def test_buyer_invoice_arriving_during_the_makers_timeout_is_no_escrow_alarm(node, fake_ln, monkeypatch, caplog):
    maker, seller = TradeClient("buyer"), TradeClient("seller")
    set_price()
    order = make_order(maker, index=1, kind="buy")
    seller.send(Action.TAKE_BUY, index=1, order_id=order.id, request_id=3)
    order.refresh_from_db()
    fake_ln.mark_accepted(order.hold_invoice_hash)
    escrow_on_accepted(payment_hash_hex=order.hold_invoice_hash)
    order.refresh_from_db()
    assert order.status == "waiting-buyer-invoice"  # the buyer (maker) owes the invoice

    def invoice_arrives():
        maker.send(
            Action.ADD_INVOICE,
            index=1,
            order_id=order.id,
            payload=PaymentRequestPayload(None, mint_invoice(amount_sats=0), None),
            request_id=13,
        )

    before_first_call(monkeypatch, timeouts, "taker_is_at_fault", invoice_arrives)
    assert order_timeout(order_id=order.id, now=order.taken_at + WINDOW + JUST) == timeouts.SKIPPED

    assert row_state(order, "status")[0] == "active"
    assert fake_ln.invoice_state(order.hold_invoice_hash).value == "ACCEPTED"  # the escrow the trade needs
    assert [r.levelname for r in caplog.records if r.name == "orders.services.timeouts"] == ["INFO"]
