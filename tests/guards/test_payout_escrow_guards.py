"""The payout pays only a settled escrow (docs/PROTOCOL.md §Escrow, "Decision before the Lightning call").

The release (or admin-settle) commits `settled-hold-invoice` before it settles at LND; when
that settle did not reach LND the payout settles first, and while LND could still refund the
seller (or already did) it pays nothing. Each case asserts the LND calls made, the order's
columns and what the buyer was told.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from lightning.errors import LightningUnavailable
from lightning.types import InvoiceState
from nostrbridge.event_settings import clear_network_cache
from orders.models import Order
from orders.services import escrow_reconcile
from orders.services.payout import payout_start
from orders.services.payout_sweeps import payout_retry_due
from orders.services.release import order_mark_fiat_sent, order_release
from tests.guards.support import actions, before_first_call, fresh_trade, row_state, settled_trade

pytestmark = pytest.mark.django_db

UNPAID = ("status", "payout_payment_hash", "failed_payment", "payment_attempts")


def _due_soon(trade, *, started, seconds: float = 5) -> None:
    """The skipped attempt left the order due for the retry sweep's next run (`_retry_soon`),
    not for the orphan grace of 300 s; the sweep before that time leaves it alone."""
    due_at = row_state(trade.order, "next_payout_at")[0]
    assert started <= due_at <= timezone.now()
    assert payout_retry_due(now=due_at - timedelta(microseconds=1)) == 0
    assert 0 <= (due_at - started).total_seconds() < seconds


def _ln_calls(fake_ln) -> list[str]:
    return [name for name, _ in fake_ln.calls if name != "decode_pay_req"]


def _released_while(fake_ln, monkeypatch, lnd_meanwhile):
    """A release whose settle runs right after `lnd_meanwhile(order)` (the decision is committed)."""
    trade = fresh_trade(fake_ln)
    order_mark_fiat_sent(order_id=trade.order.id, sender=trade.buyer_key, request_id=4)
    before_first_call(monkeypatch, escrow_reconcile, "escrow_settle_decided", lambda: lnd_meanwhile(trade.order))
    order_release(order_id=trade.order.id, sender=trade.seller_key, request_id=5)
    monkeypatch.undo()
    trade.buyer.replies()
    fake_ln.calls.clear()
    assert trade.refresh().status == "settled-hold-invoice"
    return trade


def test_settled_escrow_is_read_not_settled_again(node, fake_ln):
    trade = settled_trade(fake_ln)
    fake_ln.calls.clear()

    assert payout_start(order_id=trade.order.id) == "succeeded"

    assert _ln_calls(fake_ln) == ["lookup_invoice", "send_payment"]
    assert trade.refresh().status == "success"


def test_settle_that_did_not_reach_lnd_is_made_before_the_payout(node, fake_ln, monkeypatch):
    trade = _released_while(fake_ln, monkeypatch, lambda order: fake_ln.set_unavailable(True))
    fake_ln.set_unavailable(False)
    assert fake_ln.invoice_state(trade.order.hold_invoice_hash) is InvoiceState.ACCEPTED

    assert payout_start(order_id=trade.order.id) == "succeeded"

    assert _ln_calls(fake_ln) == ["lookup_invoice", "settle_invoice", "send_payment"]
    assert fake_ln.invoice_state(trade.order.hold_invoice_hash) is InvoiceState.SETTLED
    assert trade.refresh().status == "success"


def test_escrow_lnd_refunded_after_the_release_decided_is_never_paid(node, fake_ln, monkeypatch):
    trade = _released_while(
        fake_ln, monkeypatch, lambda order: fake_ln.cancel_invoice(payment_hash=bytes.fromhex(order.hold_invoice_hash))
    )

    assert payout_start(order_id=trade.order.id) == "skipped"
    assert payout_start(order_id=trade.order.id) == "skipped"  # and again: nothing is counted
    assert payout_retry_due(now=timezone.now()) == 1  # the sweep asks again, and pays nothing

    assert _ln_calls(fake_ln) == ["lookup_invoice", "settle_invoice"] * 3
    assert row_state(trade.order, *UNPAID) == ("settled-hold-invoice", None, False, 0)
    assert actions(trade.buyer) == []


def test_escrow_unreadable_skips_the_payout_without_counting_a_failure(node, fake_ln, monkeypatch):
    trade = settled_trade(fake_ln)

    def node_down(**kwargs):
        raise LightningUnavailable("connection refused", code="UNAVAILABLE")

    monkeypatch.setattr(fake_ln, "lookup_invoice", node_down)
    fake_ln.calls.clear()
    started = timezone.now()

    assert payout_start(order_id=trade.order.id) == "skipped"

    assert _ln_calls(fake_ln) == []
    assert row_state(trade.order, *UNPAID) == ("settled-hold-invoice", None, False, 0)
    assert actions(trade.buyer) == []
    _due_soon(trade, started=started)
    monkeypatch.undo()  # LND is back: the sweep's next run pays, once
    assert payout_retry_due(now=timezone.now()) == 1
    assert payout_retry_due(now=timezone.now()) == 0
    assert _ln_calls(fake_ln) == ["lookup_invoice", "send_payment"]
    assert row_state(trade.order, *UNPAID) == ("success", trade.refresh().payout_payment_hash, False, 0)


def test_settle_lnd_does_not_confirm_leaves_the_payout_due_for_the_next_sweep(node, fake_ln, monkeypatch):
    trade = _released_while(fake_ln, monkeypatch, lambda order: fake_ln.set_unavailable(True))
    fake_ln.set_unavailable(False)
    real_settle = fake_ln.settle_invoice

    def settle_unreachable(**kwargs):
        raise LightningUnavailable("connection refused", code="UNAVAILABLE")

    monkeypatch.setattr(fake_ln, "settle_invoice", settle_unreachable)
    started = timezone.now()

    assert payout_start(order_id=trade.order.id) == "skipped"

    assert row_state(trade.order, *UNPAID) == ("settled-hold-invoice", None, False, 0)
    assert fake_ln.invoice_state(trade.order.hold_invoice_hash) is InvoiceState.ACCEPTED
    _due_soon(trade, started=started)
    monkeypatch.setattr(fake_ln, "settle_invoice", real_settle)
    assert payout_retry_due(now=timezone.now()) == 1
    assert fake_ln.invoice_state(trade.order.hold_invoice_hash) is InvoiceState.SETTLED
    assert trade.refresh().status == "success"


@pytest.mark.parametrize(
    "cleared",
    [("hold_invoice_preimage",), ("hold_invoice_hash",), ("hold_invoice_preimage", "hold_invoice_hash")],
)
def test_order_settled_by_the_previous_daemon_is_paid_without_asking_about_the_escrow(cleared, node, fake_ln):
    # An imported order may lack the escrow's preimage or hash: the previous daemon settled it.
    trade = settled_trade(fake_ln)
    Order.objects.filter(pk=trade.order.id).update(**dict.fromkeys(cleared))
    fake_ln.calls.clear()

    assert payout_start(order_id=trade.order.id) == "succeeded"

    assert _ln_calls(fake_ln) == ["send_payment"]
    assert trade.refresh().status == "success"


def test_network_unknown_skips_the_payout_without_counting_a_failure(node, fake_ln, monkeypatch):
    trade = settled_trade(fake_ln)
    clear_network_cache()

    def get_info():
        raise LightningUnavailable("connection refused", code="UNAVAILABLE")

    monkeypatch.setattr(fake_ln, "get_info", get_info)
    fake_ln.calls.clear()
    started = timezone.now()

    assert payout_start(order_id=trade.order.id) == "skipped"

    assert _ln_calls(fake_ln) == ["lookup_invoice"]
    assert row_state(trade.order, *UNPAID) == ("settled-hold-invoice", None, False, 0)
    assert actions(trade.buyer) == []
    _due_soon(trade, started=started)
    monkeypatch.undo()
    clear_network_cache()  # a failed read is remembered for a while (nostrbridge/event_settings.py)
    assert payout_retry_due(now=timezone.now()) == 1
    assert trade.refresh().status == "success"
