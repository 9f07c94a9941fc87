"""Waiting-state timeouts and pending expiry (docs/PROTOCOL.md §Waiting-timeout, §Expiry) on the fake LND.

Orders are taken through the pipeline; time is frozen by passing `now` to the services.
"""

from datetime import timedelta

import pytest

from lightning.types import InvoiceState
from nostrbridge.protocol.enums import Action
from orders.jobs import cancel_timed_out_trades
from orders.models import EscrowRefund, Order, OrderStatusChange
from orders.services import timeouts
from orders.services.escrow import escrow_on_accepted
from orders.services.escrow_refund import escrow_refunds_retry
from orders.services.timeouts import order_expire, order_timeout
from tests.guards.support import before_first_call
from tests.orders.services.support import (
    make_order,
    order_events,
    outbox_count,
    published_statuses,
    set_price,
    snapshot,
)
from tests.orders.trade_states import Trade, taken_sell_trade, unix, vector, vector_client
from tests.trade.harness import reset_seen

pytestmark = pytest.mark.django_db

WINDOW = timedelta(seconds=900)  # MOSTRO_EXPIRATION_SECONDS
JUST = timedelta(seconds=1)


def _null_request(**replacements: str) -> dict:
    """Scheduler messages carry no request id (the vectors echo the trader's 51)."""
    return {'"request_id":51': '"request_id":null', **replacements}


def taken_buy_trade(fake_ln, *, seller_paid: bool) -> Trade:
    """bob's 100 VES buy order (no payout invoice) taken by alice: `waiting-payment`, or after
    her HTLC is accepted `waiting-buyer-invoice` (bob, the maker, owes the invoice)."""
    buyer, seller = vector_client("bob"), vector_client("alice")
    set_price()
    order = make_order(buyer, index=1, kind="buy")
    seller.send(Action.TAKE_BUY, index=1, order_id=order.id, request_id=3)
    order.refresh_from_db()
    assert order.status == "waiting-payment", order.status
    if seller_paid:
        fake_ln.mark_accepted(order.hold_invoice_hash)
        assert escrow_on_accepted(payment_hash_hex=order.hold_invoice_hash)
        order.refresh_from_db()
        assert order.status == "waiting-buyer-invoice", order.status
    reset_seen(seller, buyer)
    return Trade(order, seller, buyer, 1, 1, "")


def _messages(client) -> list[str]:
    return [r.message.to_json() for r in client.replies()]


def _last_transition(order) -> tuple[str, str, str]:
    change = OrderStatusChange.objects.filter(order=order).last()
    return (change.from_status, change.to_status, change.actor)


def _canceled(order) -> str:
    return vector("E02_canceled", order, **_null_request())


# --- taker at fault: back on the book ---------------------------------------------------------


def test_sell_buyer_without_invoice_times_out_and_the_order_is_republished(node, fake_ln):
    trade = taken_sell_trade(fake_ln, with_invoice=False)
    order = trade.order
    assert order.dev_fee_sats == 14
    now = order.taken_at + WINDOW + JUST

    assert order_timeout(order_id=order.id, now=now) == timeouts.TAKER_RESET

    order.refresh_from_db()
    maker_view = _null_request(**{"1700000000": unix(order.created_at), "1700086400": unix(order.expires_at)})
    assert _messages(trade.seller) == [vector("E06_new_order_republish_to_maker", order, **maker_view)]
    assert _messages(trade.buyer) == [_canceled(order)]
    assert (order.status, order.amount_sats, order.fee_sats, order.dev_fee_sats) == ("pending", 0, 0, 0)
    assert (order.buyer_pubkey, order.master_buyer_pubkey, order.trade_index_buyer, order.taken_at) == (
        None,
        None,
        None,
        None,
    )
    assert _last_transition(order) == ("waiting-buyer-invoice", "pending", "scheduler")
    assert published_statuses(order.id) == ["pending", "in-progress", "pending"]
    assert order_events(order.id)[-1].created_at == int(now.timestamp())
    assert [name for name, _ in fake_ln.calls if name in ("cancel_invoice", "lookup_invoice")] == []


def test_buy_seller_who_never_paid_times_out_and_the_order_is_republished(node, fake_ln):
    trade = taken_buy_trade(fake_ln, seller_paid=False)
    order = trade.order
    hold_hash = order.hold_invoice_hash
    now = order.taken_at + WINDOW + JUST

    assert order_timeout(order_id=order.id, now=now) == timeouts.TAKER_RESET

    order.refresh_from_db()
    assert _messages(trade.buyer) == [
        f'{{"order":{{"version":2,"request_id":null,"trade_index":null,"id":"{order.id}","action":"new-order",'
        f'"payload":{{"order":{{"id":"{order.id}","kind":"buy","status":"pending","amount":0,"fiat_code":"VES",'
        '"min_amount":null,"max_amount":null,"fiat_amount":100,"payment_method":"face to face,bank transfer",'
        f'"premium":1,"buyer_trade_pubkey":"{trade.buyer_key}","created_at":{unix(order.created_at)},'
        f'"expires_at":{unix(order.expires_at)}}}}}}}}}'
    ]
    assert _messages(trade.seller) == [_canceled(order)]
    assert (order.status, order.seller_pubkey, order.hold_invoice_hash, order.dev_fee_sats) == (
        "pending",
        None,
        None,
        0,
    )
    assert fake_ln.invoice_state(hold_hash) is InvoiceState.CANCELED
    assert published_statuses(order.id) == ["pending", "in-progress", "pending"]


# --- maker at fault: canceled -----------------------------------------------------------------


def test_sell_maker_who_never_paid_the_escrow_is_canceled(node, fake_ln):
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    order = trade.order
    now = order.taken_at + WINDOW + JUST

    assert order_timeout(order_id=order.id, now=now) == timeouts.MAKER_CANCELED

    order.refresh_from_db()
    assert _messages(trade.seller) == [_canceled(order)]
    assert _messages(trade.buyer) == [_canceled(order)]
    assert (order.status, order.dev_fee_sats, order.amount_sats) == ("canceled", 0, 7851)
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.CANCELED
    assert _last_transition(order) == ("waiting-payment", "canceled", "scheduler")
    assert published_statuses(order.id) == ["pending", "canceled"]  # sell waiting-payment is not published
    writes = [name for name, _ in fake_ln.calls if name in ("lookup_invoice", "cancel_invoice")]
    assert writes == ["lookup_invoice", "cancel_invoice"]


def test_buy_maker_without_invoice_is_canceled_and_the_seller_refunded(node, fake_ln):
    trade = taken_buy_trade(fake_ln, seller_paid=True)
    order = trade.order
    now = order.taken_at + WINDOW + JUST

    assert order_timeout(order_id=order.id, now=now) == timeouts.MAKER_CANCELED

    order.refresh_from_db()
    assert _messages(trade.buyer) == [_canceled(order)]
    assert _messages(trade.seller) == [_canceled(order)]
    assert (order.status, order.dev_fee_sats) == ("canceled", 0)
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.CANCELED
    assert published_statuses(order.id) == ["pending", "in-progress", "canceled"]


# --- refusals and races -----------------------------------------------------------------------


def test_duty_younger_than_the_window_is_left_alone(node, fake_ln):
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    before, outbox, calls = snapshot(trade.order), outbox_count(), len(fake_ln.calls)

    assert order_timeout(order_id=trade.order.id, now=trade.order.taken_at + WINDOW) == timeouts.SKIPPED

    assert (snapshot(trade.order), outbox_count(), len(fake_ln.calls)) == (before, outbox, calls)


def test_node_down_at_the_refund_keeps_the_decision_and_the_sweep_refunds(node, fake_ln):
    # The decision commits first; the refund LND could not confirm stays on record and is
    # retried by the sweep (it runs at the start of every timeout job).
    trade = taken_buy_trade(fake_ln, seller_paid=True)
    order = trade.order
    now = order.taken_at + WINDOW + JUST

    fake_ln.set_unavailable(True)
    try:
        assert order_timeout(order_id=order.id, now=now) == timeouts.MAKER_CANCELED
    finally:
        fake_ln.set_unavailable(False)
    assert Order.objects.get(pk=order.id).status == "canceled"
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.ACCEPTED
    assert EscrowRefund.objects.filter(order_id=order.id, confirmed_at__isnull=True).count() == 1

    assert cancel_timed_out_trades(now=now)["candidates"] == 0
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.CANCELED
    assert EscrowRefund.objects.filter(order_id=order.id, confirmed_at__isnull=True).count() == 0


def test_escrow_paid_just_before_the_timeout_wins(node, fake_ln):
    # The seller's HTLC arrived but the invoice watcher has not reported it yet.
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    order = trade.order
    fake_ln.mark_accepted(order.hold_invoice_hash)

    assert order_timeout(order_id=order.id, now=order.taken_at + WINDOW + JUST) == timeouts.ESCROW_PAID

    order.refresh_from_db()
    assert order.status == "active"
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.ACCEPTED
    assert [r.action for r in trade.seller.replies()] == ["buyer-took-order"]
    assert [r.action for r in trade.buyer.replies()] == ["hold-invoice-payment-accepted"]


def test_duty_handed_over_meanwhile_is_not_timed_out(node, fake_ln, monkeypatch, caplog):
    # Read as waiting-payment; the seller's HTLC is recorded between that read and the
    # transition (new status, new duty anchor): the guarded transition loses and skips.
    trade = taken_buy_trade(fake_ln, seller_paid=False)
    order = trade.order

    def htlc_arrives():
        fake_ln.mark_accepted(order.hold_invoice_hash)
        escrow_on_accepted(payment_hash_hex=order.hold_invoice_hash)

    before_first_call(monkeypatch, timeouts, "taker_is_at_fault", htlc_arrives)
    assert order_timeout(order_id=order.id, now=order.taken_at + WINDOW + JUST) == timeouts.SKIPPED

    current = Order.objects.get(pk=order.id)
    assert (current.status, current.seller_pubkey) == ("waiting-buyer-invoice", trade.seller_key)
    assert current.taken_at > order.taken_at
    assert _last_transition(order) == ("waiting-payment", "waiting-buyer-invoice", "lightning")
    assert [r.action for r in trade.buyer.replies()] == ["add-invoice", "add-invoice"]  # the ask + reputation
    assert [r.action for r in trade.seller.replies()] == ["waiting-buyer-invoice"]
    # The timeout decided nothing, so it never refunded the escrow the order now relies on.
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.ACCEPTED


def test_crash_between_the_decision_and_the_refund_is_completed_by_the_sweep(node, fake_ln, monkeypatch):
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    order = trade.order
    now = order.taken_at + WINDOW + JUST

    def crash(refund):
        raise RuntimeError("process killed")

    monkeypatch.setattr(timeouts, "escrow_refund_execute", crash)
    with pytest.raises(RuntimeError):
        order_timeout(order_id=order.id, now=now)
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.OPEN
    assert Order.objects.get(pk=order.id).status == "canceled"
    assert _messages(trade.seller) == [_canceled(order)]
    assert _messages(trade.buyer) == [_canceled(order)]

    monkeypatch.undo()
    assert order_timeout(order_id=order.id, now=now) == timeouts.SKIPPED
    assert escrow_refunds_retry() == 1
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.CANCELED


# --- pending expiry ---------------------------------------------------------------------------


def _pending_order():
    alice = vector_client("alice")
    set_price()
    order = make_order(alice, index=1, kind="sell")
    reset_seen(alice)
    return alice, order


def test_pending_order_past_expires_at_is_expired_and_published_as_canceled(node, fake_ln):
    alice, order = _pending_order()
    now = order.expires_at + JUST
    outbox = outbox_count()

    assert order_expire(order_id=order.id, now=now) is True

    order.refresh_from_db()
    assert order.status == "expired"
    assert _last_transition(order) == ("pending", "expired", "scheduler")
    assert published_statuses(order.id) == ["pending", "canceled"]
    event = order_events(order.id)[-1]
    assert (event.created_at, event.tag_value("expiration")) == (
        int(now.timestamp()),
        str(int(now.timestamp()) + 30 * 86_400),
    )
    assert outbox_count() == outbox + 1  # the event only: no DM to the maker
    assert alice.replies() == []


def test_order_at_its_expiry_instant_stays_on_the_book(node, fake_ln):
    _, order = _pending_order()
    before, outbox = snapshot(order), outbox_count()
    assert order_expire(order_id=order.id, now=order.expires_at) is False
    assert (snapshot(order), outbox_count()) == (before, outbox)


@pytest.mark.parametrize(("status", "events"), [("waiting-maker-bond", 1), ("waiting-taker-bond", 2)])
def test_bond_waiting_orders_expire_and_only_published_ones_get_an_event(node, fake_ln, status, events):
    _, order = _pending_order()
    Order.objects.filter(pk=order.id).update(status=status)  # bonds are not enabled: no service gets here

    assert order_expire(order_id=order.id, now=order.expires_at + JUST) is True

    assert Order.objects.get(pk=order.id).status == "expired"
    assert len(order_events(order.id)) == events


def test_taken_order_is_not_expired(node, fake_ln):
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    before, outbox = snapshot(trade.order), outbox_count()
    assert order_expire(order_id=trade.order.id, now=trade.order.expires_at + JUST) is False
    assert (snapshot(trade.order), outbox_count()) == (before, outbox)


def test_expiry_stopped_before_commit_is_redone_by_the_next_run(node, fake_ln, monkeypatch):
    _, order = _pending_order()
    now = order.expires_at + JUST
    before, outbox = snapshot(order), outbox_count()

    def crash(*args, **kwargs):
        raise RuntimeError("process killed")

    monkeypatch.setattr(timeouts, "publish_order_event", crash)
    with pytest.raises(RuntimeError):
        order_expire(order_id=order.id, now=now)
    assert (snapshot(order), outbox_count()) == (before, outbox)  # the transaction rolled back whole

    monkeypatch.undo()
    assert order_expire(order_id=order.id, now=now) is True
    assert published_statuses(order.id) == ["pending", "canceled"]
