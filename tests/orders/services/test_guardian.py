"""Escrow deadline guardian (docs/PROTOCOL.md §Escrow-guardian) on the fake LND.

The fake starts at height 800 and accepts HTLCs with expiry height + 144: the guardian acts
once tip + 24 ≥ 944, i.e. from height 920. Candidates need `invoice_held_at` older than half
the nominal window, (144 − 24) × 600 / 2 = 10 h; `now` is passed to freeze that clock.
"""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from disputes.jobs import enforce_escrow_deadline
from disputes.models import Dispute
from disputes.services.escrow_deadline import escrow_deadline_enforce
from lightning.types import InvoiceState
from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.nip01 import Event
from orders.models import OrderStatusChange
from orders.services import guardian
from orders.services.escrow_refund import escrow_refunds_retry
from tests.orders.services.support import outbox_count, published_statuses, snapshot
from tests.orders.trade_states import active_sell_trade, vector

pytestmark = pytest.mark.django_db

HALF_WINDOW = timedelta(hours=10)
AT_RISK_HEIGHT = 920


def _later(trade):
    return trade.order.invoice_held_at + HALF_WINDOW + timedelta(seconds=1)


def _mine_to(fake_ln, height: int) -> None:
    fake_ln.mine_blocks(height - fake_ln.block_height)


def _messages(client) -> list[str]:
    return [r.message.to_json() for r in client.replies()]


def _canceled(order) -> str:
    return vector("E02_canceled", order, **{'"request_id":51': '"request_id":null'})


@pytest.fixture
def fiat_sent_trade(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
    trade.seller.replies()
    trade.refresh()
    return trade


def test_active_escrow_near_its_htlc_expiry_is_canceled(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    now = _later(trade)
    _mine_to(fake_ln, AT_RISK_HEIGHT - 1)
    before, outbox = snapshot(trade.order), outbox_count()
    assert enforce_escrow_deadline(now=now) == {"candidates": 1, "safe": 1, "canceled": 0, "disputed": 0, "skipped": 0}
    assert (snapshot(trade.order), outbox_count()) == (before, outbox)

    fake_ln.mine_blocks(1)
    assert enforce_escrow_deadline(now=now) == {"candidates": 1, "safe": 0, "canceled": 1, "disputed": 0, "skipped": 0}

    order = trade.refresh()
    assert order.status == "canceled"
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.CANCELED
    assert _messages(trade.seller) == [_canceled(order)]
    assert _messages(trade.buyer) == [_canceled(order)]
    assert published_statuses(order.id)[-1] == "canceled"
    last = OrderStatusChange.objects.filter(order=order).last()
    assert (last.from_status, last.to_status, last.actor) == ("active", "canceled", "scheduler")
    # Canceled orders leave the candidate set: a second pass does nothing.
    assert enforce_escrow_deadline(now=now)["candidates"] == 0


def test_escrow_younger_than_half_the_window_is_not_looked_up(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    _mine_to(fake_ln, 1000)  # even past expiry: the time pre-filter comes first
    calls = len(fake_ln.calls)
    now = trade.order.invoice_held_at + HALF_WINDOW
    assert enforce_escrow_deadline(now=now) == {"candidates": 0, "safe": 0, "canceled": 0, "disputed": 0, "skipped": 0}
    assert len(fake_ln.calls) == calls
    assert trade.refresh().status == "active"


def test_vanished_htlc_means_the_escrow_is_gone(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    fake_ln.cancel_invoice(payment_hash=bytes.fromhex(trade.order.hold_invoice_hash))  # LND let it go

    assert escrow_deadline_enforce(order_id=trade.order.id, tip_height=800, now=_later(trade)) == (guardian.CANCELED)
    assert trade.refresh().status == "canceled"


def test_fiat_sent_escrow_near_expiry_opens_a_buyer_dispute(fiat_sent_trade, fake_ln):
    trade = fiat_sent_trade
    now = _later(trade)
    _mine_to(fake_ln, AT_RISK_HEIGHT)
    revisions = published_statuses(trade.order.id)

    assert enforce_escrow_deadline(now=now) == {"candidates": 1, "safe": 0, "canceled": 0, "disputed": 1, "skipped": 0}

    order = trade.refresh()
    dispute = Dispute.objects.get(order=order)
    assert (order.status, order.buyer_dispute, order.seller_dispute) == ("dispute", True, False)
    assert (dispute.status, dispute.initiator, dispute.initiator_pubkey, dispute.order_previous_status) == (
        "initiated",
        "buyer",
        trade.buyer_key,
        "fiat-sent",
    )
    ids = {"efc75871-2568-40b9-a6ee-c382d4d6de01": str(dispute.id), '"request_id":31': '"request_id":null'}
    assert _messages(trade.buyer) == [vector("D02_dispute_initiated_by_you", order, **ids)]
    assert _messages(trade.seller) == [vector("D03_dispute_initiated_by_peer", order, **ids)]
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.ACCEPTED  # the escrow is kept
    assert list(dispute.log.values_list("action", "actor")) == [("opened", "scheduler")]
    assert published_statuses(order.id) == revisions  # no 38383 revision for the dispute (docs/PROTOCOL.md §Dispute)
    [row] = OutboundMessage.objects.filter(kind=38386, order_id=order.id)
    event = Event.from_json(row.event_json)
    stamp = int(now.timestamp())
    assert event.tags == [
        ["d", str(dispute.id)],
        ["expiration", str(stamp + 90 * 86_400)],
        ["s", "initiated"],
        ["initiator", "buyer"],
        ["published_at", str(int(dispute.created_at.timestamp()))],
        ["y", "mostro", "Example Mostro"],
        ["z", "dispute"],
    ]


def test_a_closed_dispute_row_is_reopened_for_the_buyer(fiat_sent_trade, fake_ln):
    trade = fiat_sent_trade
    closed = Dispute.objects.create(
        order=trade.order,
        status="seller-refunded",
        initiator="seller",
        initiator_pubkey=trade.seller_key,
        order_previous_status="active",
        solver_pubkey="ab" * 32,
        resolved_at=timezone.now(),
    )
    now = _later(trade)
    _mine_to(fake_ln, AT_RISK_HEIGHT)

    assert escrow_deadline_enforce(order_id=trade.order.id, tip_height=AT_RISK_HEIGHT, now=now) == (guardian.DISPUTED)

    reopened = Dispute.objects.get(order=trade.order)
    assert reopened.id == closed.id
    assert (reopened.status, reopened.initiator, reopened.initiator_pubkey) == ("initiated", "buyer", trade.buyer_key)
    assert (reopened.solver_pubkey, reopened.resolved_at, reopened.taken_at, reopened.created_at) == (
        None,
        None,
        None,
        now,
    )
    assert list(reopened.log.values_list("action", "actor")) == [("opened", "scheduler")]
    [row] = OutboundMessage.objects.filter(kind=38386, order_id=trade.order.id)
    assert Event.from_json(row.event_json).tag_value("s") == "initiated"


def test_settled_escrow_is_left_to_the_release(fiat_sent_trade, fake_ln):
    trade = fiat_sent_trade
    fake_ln.settle_invoice(preimage=bytes.fromhex(trade.order.hold_invoice_preimage))  # a release mid-way
    before, outbox = snapshot(trade.order), outbox_count()

    outcome = escrow_deadline_enforce(order_id=trade.order.id, tip_height=2000, now=_later(trade))

    assert outcome == guardian.SKIPPED
    assert (snapshot(trade.order), outbox_count()) == (before, outbox)


def test_unreachable_node_skips_the_pass(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    _mine_to(fake_ln, AT_RISK_HEIGHT)
    before, outbox = snapshot(trade.order), outbox_count()
    fake_ln.set_unavailable(True)

    assert enforce_escrow_deadline(now=_later(trade)) == {
        "candidates": 1,
        "safe": 0,
        "canceled": 0,
        "disputed": 0,
        "skipped": 1,
    }
    assert (snapshot(trade.order), outbox_count()) == (before, outbox)


def test_crash_after_the_decision_is_refunded_by_the_sweep(node, fake_ln, monkeypatch):
    # The decision (order canceled + refund row) commits before LND is asked: a crash between
    # the two leaves a canceled order whose refund the sweep completes, never an active order
    # without its escrow.
    trade = active_sell_trade(fake_ln)
    now = _later(trade)
    _mine_to(fake_ln, AT_RISK_HEIGHT)

    def crash(refund):
        raise RuntimeError("process killed")

    monkeypatch.setattr(guardian, "escrow_refund_execute", crash)
    with pytest.raises(RuntimeError):
        enforce_escrow_deadline(now=now)
    assert fake_ln.invoice_state(trade.order.hold_invoice_hash) is InvoiceState.ACCEPTED
    order = trade.refresh()
    assert order.status == "canceled"
    assert _messages(trade.buyer) == [_canceled(order)]

    monkeypatch.undo()
    assert enforce_escrow_deadline(now=now)["candidates"] == 0
    assert escrow_refunds_retry() == 1
    assert fake_ln.invoice_state(trade.order.hold_invoice_hash) is InvoiceState.CANCELED


def test_margin_at_or_above_the_cltv_delta_is_clamped_to_half(node, settings, caplog):
    settings.LND_ESCROW_DEADLINE_MARGIN_BLOCKS = 144
    guardian._warn_clamped.cache_clear()  # noqa: SLF001 - logged once per process
    from mostro_site.config import clear_node_config_cache

    clear_node_config_cache()
    with caplog.at_level(logging.ERROR, logger="orders.services.guardian"):
        assert guardian.escrow_guard_margin_blocks() == 72
        assert guardian.escrow_guard_window_seconds() == 72 * 600
    assert [r.getMessage() for r in caplog.records] == [
        "escrow_deadline_margin_blocks 144 >= hold_invoice_cltv_delta 144; using 72"
    ]
