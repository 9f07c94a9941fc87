"""Concurrent takes and add-invoice: exactly one writer wins, losers change nothing.

The deterministic tests run the competing message *inside* the first one's step before its
transaction (the hold-invoice call, or the last check), so the first one's guarded transition
is the one that loses. The threaded test races two real workers.
"""

import threading

import pytest
from django.db import connections, transaction

from lightning.types import InvoiceState
from nostrbridge.dispatch import process_inbound
from nostrbridge.inbox import inbox_claim, inbox_store
from nostrbridge.models import InboundEvent, OutboundMessage
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import PaymentRequestPayload
from orders.models import Order, OrderStatusChange, Trader
from orders.services import escrow as escrow_module
from orders.services import invoice as invoice_module
from orders.services import take as take_module
from orders.transitions import transition_order
from tests.orders.services.support import cant_do_json, make_order, mint_invoice, set_price
from tests.trade.harness import TradeClient, deliver

pytestmark = pytest.mark.usefixtures("node")


def _with_invoice(amount: int = 7827) -> PaymentRequestPayload:
    return PaymentRequestPayload(None, mint_invoice(amount_sats=amount), None)


def _interleave(monkeypatch, module, name, competitor):
    """Run `competitor()` once, right after `module.name` (a step before the transaction) returns."""
    real = getattr(module, name)
    calls = []

    def wrapped(*args, **kwargs):
        result = real(*args, **kwargs)
        if not calls:
            calls.append(result)
            competitor()
        return result

    monkeypatch.setattr(module, name, wrapped)
    return calls


@pytest.mark.django_db
def test_take_sell_loser_gets_not_allowed_and_its_hold_invoice_is_canceled(monkeypatch, fake_ln):
    set_price()
    alice, bob, carol = TradeClient("alice"), TradeClient("bob"), TradeClient("carol")
    order = make_order(alice)
    created = _interleave(
        monkeypatch,
        take_module,
        "escrow_create_hold_invoice",
        lambda: deliver(carol.build(Action.TAKE_SELL, index=1, order_id=order.id)),
    )
    replies = bob.send(Action.TAKE_SELL, index=1, order_id=order.id, payload=_with_invoice(), request_id=61)

    assert [r.message.to_json() for r in replies] == [
        cant_do_json("not_allowed_by_status", request_id=61, order_id=order.id)
    ]
    order.refresh_from_db()
    assert (order.status, order.buyer_pubkey, order.hold_invoice_hash) == (
        "waiting-buyer-invoice",
        carol.pubkey(1),
        None,
    )
    assert fake_ln.invoice_state(created[0].payment_hash_hex) is InvoiceState.CANCELED
    assert OrderStatusChange.objects.filter(order=order, to_status="waiting-payment").count() == 0
    # Every check had passed: the loser's trade index is consumed anyway (docs/PROTOCOL.md §Trade-index).
    assert Trader.objects.get(pk=bob.identity.public_key_hex).last_trade_index == 1


@pytest.mark.django_db
def test_take_sell_without_invoice_loses_to_a_faster_taker(monkeypatch):
    set_price()
    alice, bob, carol = TradeClient("alice"), TradeClient("bob"), TradeClient("carol")
    order = make_order(alice)
    _interleave(
        monkeypatch,
        take_module,
        "_require_trade_index",
        lambda: deliver(carol.build(Action.TAKE_SELL, index=1, order_id=order.id)),
    )
    replies = bob.send(Action.TAKE_SELL, index=1, order_id=order.id, request_id=62)

    assert [r.message.to_json() for r in replies] == [
        cant_do_json("not_allowed_by_status", request_id=62, order_id=order.id)
    ]
    order.refresh_from_db()
    assert order.buyer_pubkey == carol.pubkey(1)


@pytest.mark.django_db
def test_take_buy_loser_is_silent_and_its_hold_invoice_is_canceled(monkeypatch, fake_ln):
    set_price()
    alice, bob, carol = TradeClient("alice"), TradeClient("bob"), TradeClient("carol")
    order = make_order(alice, kind="buy")
    created = _interleave(
        monkeypatch,
        take_module,
        "escrow_create_hold_invoice",
        lambda: deliver(carol.build(Action.TAKE_BUY, index=1, order_id=order.id)),
    )
    replies = bob.send(Action.TAKE_BUY, index=1, order_id=order.id)

    assert replies == []  # spec quirk: take-buy failures after the checks are silent
    order.refresh_from_db()
    assert (order.status, order.seller_pubkey) == ("waiting-payment", carol.pubkey(1))
    assert fake_ln.invoice_state(created[0].payment_hash_hex) is InvoiceState.CANCELED
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.OPEN


@pytest.mark.django_db
def test_add_invoice_racing_a_cancel_is_silent_and_cancels_its_hold_invoice(monkeypatch, fake_ln):
    set_price()
    alice, bob = TradeClient("alice"), TradeClient("bob")
    order = make_order(alice)
    bob.send(Action.TAKE_SELL, index=1, order_id=order.id)

    def maker_cancels():
        with transaction.atomic():
            transition_order(
                order_id=order.id,
                from_statuses=["waiting-buyer-invoice"],
                to_status="canceled",
                actor="test",
                reason="maker cancel",
            )

    created = _interleave(monkeypatch, invoice_module, "escrow_create_hold_invoice", maker_cancels)
    replies = bob.send(Action.ADD_INVOICE, index=1, order_id=order.id, payload=_with_invoice())

    assert replies == []
    order.refresh_from_db()
    assert (order.status, order.hold_invoice_hash, order.buyer_invoice) == ("canceled", None, None)
    assert fake_ln.invoice_state(created[0].payment_hash_hex) is InvoiceState.CANCELED


def _in_memory_sqlite() -> bool:
    connection = connections["default"]
    return connection.vendor == "sqlite" and connection.is_in_memory_db()


@pytest.mark.django_db(transaction=True)
def test_two_takers_in_parallel_exactly_one_wins(monkeypatch, fake_ln):
    set_price()
    alice = TradeClient("alice")
    order = make_order(alice)
    takers = [TradeClient("bob"), TradeClient("carol")]
    for taker in takers:  # known identities: the trade-index gate only reads
        Trader.objects.create(pubkey=taker.identity.public_key_hex, last_trade_index=0)
    events = [t.build(Action.TAKE_SELL, index=1, order_id=order.id, payload=_with_invoice()) for t in takers]
    # Both takers pass every check and hold a fresh hold invoice before either commits.
    barrier = threading.Barrier(2, timeout=10)
    real_create = escrow_module.escrow_create_hold_invoice
    # An in-memory SQLite shares one cache between threads, where a write lock makes the other
    # thread fail ("table is locked") instead of waiting as a file database or PostgreSQL do;
    # there the commit phases take turns, after both takers passed every check.
    commit_turn = threading.Lock() if _in_memory_sqlite() else None
    holders: set[int] = set()

    def create_then_wait(*, order):
        invoice = real_create(order=order)
        barrier.wait()
        if commit_turn is not None:
            commit_turn.acquire()
            holders.add(threading.get_ident())
        return invoice

    monkeypatch.setattr(take_module, "escrow_create_hold_invoice", create_then_wait)
    errors: list[BaseException] = []

    # Stored and claimed up front, then processed by two workers at once.
    pks = inbox_store(items=[("ws://test", event.to_dict()) for event in events])
    assert sorted(inbox_claim(worker_id="test")) == sorted(pks)

    def run(pk):
        try:
            process_inbound(pk)
        except BaseException as exc:  # surfaced below: a thread must not swallow a failure
            errors.append(exc)
        finally:
            connections.close_all()
            if threading.get_ident() in holders:
                holders.discard(threading.get_ident())
                commit_turn.release()

    threads = [threading.Thread(target=run, args=(pk,)) for pk in pks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []

    order.refresh_from_db()
    winner = next(t for t in takers if t.pubkey(1) == order.buyer_pubkey)
    loser = next(t for t in takers if t is not winner)
    assert order.status == "waiting-payment"
    assert [r.action for r in winner.replies()] == ["waiting-seller-to-pay"]
    assert [r.json["cant-do"]["payload"]["cant_do"] for r in loser.replies()] == ["not_allowed_by_status"]
    hold_states = sorted(str(invoice.state) for invoice in fake_ln.invoices.values() if invoice.is_hold)
    assert hold_states == ["CANCELED", "OPEN"]
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.OPEN
    assert OrderStatusChange.objects.filter(order=order, to_status="waiting-payment").count() == 1
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_crash_before_commit_cancels_the_fresh_hold_invoice(monkeypatch, fake_ln):
    set_price()
    alice, bob = TradeClient("alice"), TradeClient("bob")
    order = make_order(alice)
    rows = OutboundMessage.objects.count()

    def crash(order, **kwargs):
        raise RuntimeError("relay signer exploded")

    monkeypatch.setattr(take_module, "publish_order_event", crash)
    replies = bob.send(Action.TAKE_SELL, index=1, order_id=order.id, payload=_with_invoice())

    assert replies == []
    order.refresh_from_db()
    assert (order.status, order.hold_invoice_hash, order.buyer_pubkey) == ("pending", None, None)
    (hold,) = [invoice for invoice in fake_ln.invoices.values() if invoice.is_hold]
    assert hold.state is InvoiceState.CANCELED
    assert OutboundMessage.objects.count() == rows
    failed = InboundEvent.objects.exclude(last_error="")
    assert [(row.status, row.last_error) for row in failed] == [("received", "RuntimeError: relay signer exploded")]
