"""The escrow guardian's guards made to decide (docs/PROTOCOL.md §Escrow-guardian).

As in tests/orders/services/test_guardian.py: HTLC expiry at height 944, the guardian acts
from tip 920; candidates need `invoice_held_at` older than 10 h.
"""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from disputes.models import Dispute
from disputes.services import escrow_deadline
from disputes.services.escrow_deadline import escrow_deadline_enforce, escrow_lost_force_dispute
from lightning.types import InvoiceState
from mostro_site.config import clear_node_config_cache
from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.nip01 import Event
from orders.models import Order
from orders.services import guardian
from orders.services.release import order_mark_fiat_sent, order_release
from tests.foundation.factories import make_order as factory_order
from tests.guards.support import (
    actions,
    after_first_call,
    audit_trail,
    before_first_call,
    before_first_transaction,
    fresh_trade,
    row_state,
)
from tests.orders.services.support import order_events, snapshot
from tests.orders.trade_states import taken_sell_trade

pytestmark = pytest.mark.django_db

HALF_WINDOW = timedelta(hours=10)
AT_RISK_HEIGHT = 920


def _enforce(trade, **kwargs) -> str:
    now = trade.order.invoice_held_at + HALF_WINDOW + timedelta(seconds=1)
    return escrow_deadline_enforce(order_id=trade.order.id, tip_height=AT_RISK_HEIGHT, now=now, **kwargs)


def _fiat_sent(fake_ln):
    trade = fresh_trade(fake_ln)
    order_mark_fiat_sent(order_id=trade.order.id, sender=trade.buyer_key, request_id=4)
    trade.buyer.replies(), trade.seller.replies()
    trade.refresh()
    return trade


def test_fiat_sent_arriving_while_the_guardian_cancels_wins_and_the_next_pass_disputes(node, fake_ln, monkeypatch):
    trade = fresh_trade(fake_ln)
    order_id, buyer = trade.order.id, trade.buyer_key
    before_first_transaction(  # between the guardian's verdict and its decision
        monkeypatch,
        guardian,
        lambda: order_mark_fiat_sent(order_id=order_id, sender=buyer, request_id=4),
    )

    assert _enforce(trade) == guardian.SKIPPED
    assert row_state(trade.order, "status")[0] == "fiat-sent"
    assert actions(trade.seller) == ["fiat-sent-ok"]  # no `canceled`
    assert fake_ln.invoice_state(trade.order.hold_invoice_hash).value == "ACCEPTED"  # the loser never refunded

    assert _enforce(trade) == guardian.DISPUTED
    assert Dispute.objects.get(order_id=order_id).initiator == "buyer"


def test_escrow_replaced_meanwhile_is_not_canceled_by_the_old_verdict(node, fake_ln, monkeypatch):
    trade = fresh_trade(fake_ln)
    before = snapshot(trade.order)
    after_first_call(
        monkeypatch,
        fake_ln,
        "lookup_invoice",
        lambda: Order.objects.filter(pk=trade.order.id).update(hold_invoice_hash="ee" * 32),
    )

    assert _enforce(trade) == guardian.SKIPPED
    assert snapshot(trade.order) == before | {"hold_invoice_hash": "ee" * 32}


def test_release_arriving_before_the_forced_dispute_wins(node, fake_ln, monkeypatch):
    trade = _fiat_sent(fake_ln)
    order_id, seller = trade.order.id, trade.seller_key
    after_first_call(
        monkeypatch, fake_ln, "lookup_invoice", lambda: order_release(order_id=order_id, sender=seller, request_id=5)
    )

    assert _enforce(trade) == guardian.SKIPPED
    assert row_state(trade.order, "status", "buyer_dispute") == ("settled-hold-invoice", False)
    assert Dispute.objects.filter(order_id=order_id).count() == 0
    assert audit_trail(trade.order)[-1] == ("fiat-sent", "settled-hold-invoice")


def test_forced_dispute_for_a_replaced_escrow_is_not_opened(node, fake_ln, monkeypatch):
    trade = _fiat_sent(fake_ln)
    after_first_call(
        monkeypatch,
        fake_ln,
        "lookup_invoice",
        lambda: Order.objects.filter(pk=trade.order.id).update(hold_invoice_hash="ee" * 32),
    )
    assert _enforce(trade) == guardian.SKIPPED
    assert row_state(trade.order, "status")[0] == "fiat-sent"
    assert Dispute.objects.count() == 0


def test_candidates_are_locked_escrows_past_half_the_window_oldest_first(node, fake_ln):
    old, young, settled = fresh_trade(fake_ln), fresh_trade(fake_ln), _fiat_sent(fake_ln)
    now = old.order.invoice_held_at + HALF_WINDOW + timedelta(hours=1)
    Order.objects.filter(pk=old.order.id).update(invoice_held_at=now - HALF_WINDOW - timedelta(microseconds=1))
    Order.objects.filter(pk=young.order.id).update(invoice_held_at=now - HALF_WINDOW)
    Order.objects.filter(pk=settled.order.id).update(invoice_held_at=now - HALF_WINDOW * 2)

    assert guardian.guardian_candidate_ids(now=now, limit=10) == [settled.order.id, old.order.id]
    assert guardian.guardian_candidate_ids(now=now, limit=1) == [settled.order.id]
    order_release(order_id=settled.order.id, sender=settled.seller_key, request_id=5)
    assert guardian.guardian_candidate_ids(now=now, limit=10) == [old.order.id]


def test_guardian_cancels_only_its_own_order(node, fake_ln):
    mine, other = fresh_trade(fake_ln), fresh_trade(fake_ln)
    before = snapshot(other.order)

    assert _enforce(mine) == guardian.CANCELED

    assert (mine.refresh().status, fake_ln.invoice_state(mine.order.hold_invoice_hash)) == (
        "canceled",
        InvoiceState.CANCELED,
    )
    assert snapshot(other.order) == before
    assert fake_ln.invoice_state(other.order.hold_invoice_hash) is InvoiceState.ACCEPTED


def test_tip_just_below_the_margin_is_safe(node, fake_ln):
    trade = fresh_trade(fake_ln)
    now = trade.order.invoice_held_at + HALF_WINDOW + timedelta(seconds=1)
    assert escrow_deadline_enforce(order_id=trade.order.id, tip_height=AT_RISK_HEIGHT - 1, now=now) == guardian.SAFE
    assert trade.refresh().status == "active"


# --- reads, clocks and the reopened dispute ------------------------------------------------------


def test_guardian_skips_what_it_must_not_touch(node, fake_ln):
    pending = factory_order(status="pending")
    no_escrow = factory_order(status="active", hold_invoice_hash=None, invoice_held_at=timezone.now())
    unpaid = taken_sell_trade(fake_ln, with_invoice=True).order  # waiting-payment: an escrow not yet held
    calls = len(fake_ln.calls)
    for order_id in (uuid.uuid4(), pending.pk, no_escrow.pk, unpaid.pk):
        assert escrow_deadline_enforce(order_id=order_id, tip_height=AT_RISK_HEIGHT) == guardian.SKIPPED
    assert len(fake_ln.calls) == calls
    now = timezone.now() + timedelta(days=2)
    assert no_escrow.pk not in guardian.guardian_candidate_ids(now=now, limit=10)


def test_guardian_reads_its_own_order_and_uses_the_current_time(node, fake_ln):
    factory_order(id=uuid.UUID(int=0), status="pending")
    trade = fresh_trade(fake_ln)
    assert escrow_deadline_enforce(order_id=trade.order.id, tip_height=AT_RISK_HEIGHT) == (guardian.CANCELED)
    assert trade.refresh().status == "canceled"


def test_cancel_event_carries_the_guardians_clock(node, fake_ln):
    trade = fresh_trade(fake_ln)
    now = trade.order.invoice_held_at + timedelta(hours=30)
    assert escrow_deadline_enforce(order_id=trade.order.id, tip_height=AT_RISK_HEIGHT, now=now) == (guardian.CANCELED)
    event = order_events(trade.order.id)[-1]
    assert (event.tag_value("s"), event.created_at) == ("canceled", int(now.timestamp()))


def test_odd_cltv_delta_clamps_the_margin_to_whole_blocks(node, fake_ln, settings):
    settings.LND_HOLD_INVOICE_CLTV_DELTA = 145
    settings.LND_ESCROW_DEADLINE_MARGIN_BLOCKS = 145
    clear_node_config_cache()
    assert (guardian.escrow_guard_margin_blocks(), guardian.escrow_guard_window_seconds()) == (72, 73 * 600)
    trade = fresh_trade(fake_ln)
    held = trade.refresh().invoice_held_at
    assert guardian.guardian_candidate_ids(now=held + timedelta(seconds=73 * 300), limit=5) == []
    assert guardian.guardian_candidate_ids(now=held + timedelta(seconds=73 * 300, microseconds=1), limit=5) == [
        trade.order.id
    ]


def test_reopening_touches_only_this_orders_closed_dispute(node, fake_ln):
    trade = _fiat_sent(fake_ln)
    other = fresh_trade(fake_ln)
    long_ago = timezone.now() - timedelta(days=3)
    closed = {
        "status": "seller-refunded",
        "initiator": "seller",
        "order_previous_status": "active",
        "solver_pubkey": "ab" * 32,
        "resolved_at": long_ago,
        "taken_at": long_ago,
    }
    other_dispute = Dispute.objects.create(order=other.order, initiator_pubkey=other.seller_key, **closed)
    Dispute.objects.create(order=trade.order, initiator_pubkey=trade.seller_key, **closed)
    Dispute.objects.update(updated_at=long_ago)
    other_before = Dispute.objects.filter(pk=other_dispute.pk).values().get()
    now = trade.order.invoice_held_at + timedelta(hours=30)

    assert escrow_deadline_enforce(order_id=trade.order.id, tip_height=AT_RISK_HEIGHT, now=now) == (guardian.DISPUTED)

    reopened = Dispute.objects.get(order=trade.order)
    assert (reopened.status, reopened.taken_at, reopened.solver_pubkey, reopened.updated_at) == (
        "initiated",
        None,
        None,
        now,
    )
    assert Dispute.objects.filter(pk=other_dispute.pk).values().get() == other_before
    [event] = [
        Event.from_json(row.event_json) for row in OutboundMessage.objects.filter(kind=38386, order_id=trade.order.id)
    ]
    assert (event.tag_value("d"), event.tag_value("s"), event.tag_value("initiator")) == (
        str(reopened.id),
        "initiated",
        "buyer",
    )


# --- LND lost the escrow of a fiat-sent order (escrow_lost_force_dispute) ----------------------


def _dispute_events(order_id) -> list[Event]:
    rows = OutboundMessage.objects.filter(kind=38386, order_id=order_id).order_by("pk")
    return [Event.from_json(row.event_json) for row in rows]


def test_lost_escrow_opens_the_dispute_of_its_own_fiat_sent_order_only(node, fake_ln):
    first, second = _fiat_sent(fake_ln), _fiat_sent(fake_ln)
    second_before = snapshot(second.order)
    at = timezone.now() - timedelta(hours=1)

    # The order whose escrow was lost, never the first fiat-sent order found.
    assert escrow_lost_force_dispute(order_id=first.order.id, now=at) == guardian.DISPUTED

    assert row_state(first.order, "status", "buyer_dispute") == ("dispute", True)
    assert snapshot(second.order) == second_before
    dispute = Dispute.objects.get(order=first.order)
    assert (dispute.status, dispute.initiator, dispute.initiator_pubkey, dispute.order_previous_status) == (
        "initiated",
        "buyer",
        first.buyer_key,
        "fiat-sent",
    )
    [event] = _dispute_events(first.order.id)
    assert (event.tag_value("s"), event.created_at) == ("initiated", int(at.timestamp()))  # the caller's clock
    assert (actions(first.buyer), actions(first.seller)) == (
        ["dispute-initiated-by-you"],
        ["dispute-initiated-by-peer"],
    )

    assert escrow_lost_force_dispute(order_id=second.order.id) == guardian.DISPUTED
    assert row_state(second.order, "status")[0] == "dispute"
    assert Dispute.objects.filter(order=first.order).values_list("status", flat=True).get() == "initiated"


def test_lost_escrow_of_an_unknown_or_not_fiat_sent_order_changes_nothing(node, fake_ln):
    active, disputed = fresh_trade(fake_ln), _fiat_sent(fake_ln)
    assert escrow_lost_force_dispute(order_id=disputed.order.id) == guardian.DISPUTED
    before = (snapshot(active.order), snapshot(disputed.order), OutboundMessage.objects.count(), len(fake_ln.calls))

    for order_id in (uuid.uuid4(), active.order.id, disputed.order.id):
        assert escrow_lost_force_dispute(order_id=order_id) == guardian.SKIPPED

    after = (snapshot(active.order), snapshot(disputed.order), OutboundMessage.objects.count(), len(fake_ln.calls))
    assert after == before
    assert list(Dispute.objects.values_list("order_id", "status")) == [(disputed.order.id, "initiated")]


def _closed_dispute(trade, **fields) -> Dispute:
    long_ago = timezone.now() - timedelta(days=3)
    values = {
        "status": "seller-refunded",
        "initiator": "seller",
        "initiator_pubkey": trade.seller_key,
        "order_previous_status": "active",
        "solver_pubkey": "ab" * 32,
        "resolved_at": long_ago,
        "taken_at": long_ago,
    }
    dispute = Dispute.objects.create(order=trade.order, **(values | fields))
    Dispute.objects.filter(pk=dispute.pk).update(created_at=long_ago, updated_at=long_ago)
    return dispute


def test_lost_escrow_reopens_the_closed_dispute_on_the_current_clock(node, fake_ln):
    trade = _fiat_sent(fake_ln)
    _closed_dispute(trade)

    assert escrow_lost_force_dispute(order_id=trade.order.id) == guardian.DISPUTED

    reopened = Dispute.objects.get(order=trade.order)
    assert (reopened.status, reopened.initiator, reopened.solver_pubkey, reopened.taken_at, reopened.resolved_at) == (
        "initiated",
        "buyer",
        None,
        None,
        None,
    )
    # One clock for the reopening: its creation time, its update and its 38386.
    [event] = _dispute_events(trade.order.id)
    assert (reopened.created_at, event.created_at) == (reopened.updated_at, int(reopened.updated_at.timestamp()))


def test_a_new_dispute_is_opened_while_another_orders_closed_dispute_exists(node, fake_ln):
    other, trade = fresh_trade(fake_ln), _fiat_sent(fake_ln)
    # The lowest id: a lookup that forgot the order would find this row first.
    others = _closed_dispute(other, id=uuid.UUID(int=1))
    others_before = Dispute.objects.filter(pk=others.pk).values().get()
    now = trade.order.invoice_held_at + timedelta(hours=30)

    assert escrow_deadline_enforce(order_id=trade.order.id, tip_height=AT_RISK_HEIGHT, now=now) == guardian.DISPUTED

    assert Dispute.objects.filter(pk=others.pk).values().get() == others_before
    mine = Dispute.objects.get(order=trade.order)
    assert (mine.status, mine.initiator, mine.initiator_pubkey) == ("initiated", "buyer", trade.buyer_key)


def test_an_open_dispute_of_a_fiat_sent_order_keeps_its_solver(node, fake_ln):
    """Unreachable through the protocol (opening a dispute moves the order to `dispute`): the
    guardian's dispute moves the order but leaves the solver's dispute as it is."""
    trade = _fiat_sent(fake_ln)
    taken = _closed_dispute(trade, id=uuid.UUID(int=1), status="in-progress", resolved_at=None)
    before = Dispute.objects.filter(pk=taken.pk).values().get()
    now = trade.order.invoice_held_at + timedelta(hours=30)

    assert escrow_deadline_enforce(order_id=trade.order.id, tip_height=AT_RISK_HEIGHT, now=now) == guardian.DISPUTED

    assert row_state(trade.order, "status")[0] == "dispute"
    assert Dispute.objects.filter(pk=taken.pk).values().get() == before
    assert _dispute_events(trade.order.id) == []


def test_a_dispute_changed_under_its_row_lock_rolls_the_forced_dispute_back(node, fake_ln, monkeypatch):
    trade = _fiat_sent(fake_ln)
    closed = _closed_dispute(trade)
    before = snapshot(trade.order)
    outbox = OutboundMessage.objects.count()
    # A writer that ignored the lock (a bug elsewhere) moves the row before the reopening.
    before_first_call(
        monkeypatch,
        escrow_deadline,
        "transition_dispute",
        lambda: Dispute.objects.filter(pk=closed.pk).update(status="released"),
    )

    with pytest.raises(RuntimeError, match="changed under its row lock"):
        escrow_lost_force_dispute(order_id=trade.order.id)

    assert snapshot(trade.order) == before  # still fiat-sent: the order's move rolled back with it
    assert Dispute.objects.get(pk=closed.pk).status == "seller-refunded"
    assert OutboundMessage.objects.count() == outbox
