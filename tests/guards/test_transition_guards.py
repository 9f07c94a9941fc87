"""`transition_order` and `update_order_guarded` made to decide (issue 22, item 3).

Every write here is filtered by status, so every test has at least two orders in the status
concerned: the write must reach its own order and nothing else.
"""

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from orders import live, transitions
from orders.models import Order, OrderStatusChange
from orders.transitions import IllegalTransition, record_creation, transition_order, update_order_guarded
from tests.foundation.factories import make_order
from tests.orders.services.support import snapshot

pytestmark = pytest.mark.django_db


def _move(order, from_statuses, to_status, **kwargs) -> bool:
    with transaction.atomic():
        return transition_order(
            order_id=order.id, from_statuses=from_statuses, to_status=to_status, actor="tester", reason="r", **kwargs
        )


def test_transition_moves_its_own_order_only():
    mine, other = make_order(), make_order()
    before = snapshot(other)
    assert _move(mine, ["pending"], "canceled", set_fields={"buyer_dispute": True}) is True
    assert Order.objects.filter(pk=mine.pk).values_list("status", "buyer_dispute").get() == ("canceled", True)
    assert snapshot(other) == before
    assert list(OrderStatusChange.objects.values_list("order_id", "from_status", "to_status")) == [
        (mine.pk, "pending", "canceled")
    ]


def test_guarded_update_writes_its_own_order_only():
    mine, other = make_order(status="active"), make_order(status="active")
    before = snapshot(other)
    assert update_order_guarded(order_id=mine.id, statuses=["active"], set_fields={"buyer_dispute": True}) is True
    assert Order.objects.get(pk=mine.pk).buyer_dispute is True
    assert snapshot(other) == before


def test_guarded_update_with_a_failing_guard_writes_nothing():
    mine, other = make_order(status="active"), make_order(status="active", cancel_initiator_pubkey="c" * 64)
    assert (
        update_order_guarded(
            order_id=other.id,
            statuses=["active"],
            set_fields={"buyer_dispute": True},
            guard=Q(cancel_initiator_pubkey__isnull=True),
        )
        is False
    )
    assert [Order.objects.get(pk=o.pk).buyer_dispute for o in (mine, other)] == [False, False]


def test_guarded_update_outside_its_statuses_writes_nothing():
    order = make_order(status="fiat-sent")
    before = snapshot(order)
    assert update_order_guarded(order_id=order.id, statuses=["active"], set_fields={"buyer_dispute": True}) is False
    assert snapshot(order) == before


def test_transition_with_a_failing_guard_leaves_no_audit_row():
    order = make_order(status="settled-hold-invoice", payout_payment_hash="c" * 64)
    before = snapshot(order)
    assert _move(order, ["settled-hold-invoice"], "success", guard=Q(payout_payment_hash="d" * 64)) is False
    assert snapshot(order) == before


def _compete_before_the_update(monkeypatch, order, status):
    """A second writer moves `order` to `status` just before `transition_order`'s guarded UPDATE
    runs (after anything it read): the UPDATE's own WHERE must decide."""
    real = transitions.update_guarded_returning, transitions.update_guarded

    def compete(update):
        def competing(model, **kwargs):
            Order.objects.filter(pk=order.pk).update(status=status)  # the competitor wins
            return update(model, **kwargs)

        return competing

    monkeypatch.setattr(transitions, "update_guarded_returning", compete(real[0]))
    monkeypatch.setattr(transitions, "update_guarded", compete(real[1]))


@pytest.mark.parametrize("reload", [False, True])
def test_status_changed_before_the_write_loses(monkeypatch, reload):
    """A second writer moves the order after the caller saw it pending: one allowed status, no
    read at all, the guarded UPDATE changes nothing and no audit row is written."""
    order, _other = make_order(), make_order()  # the other pending order must stay pending
    _compete_before_the_update(monkeypatch, order, "waiting-payment")

    assert _move(order, ["pending"], "canceled", reload=order if reload else None) is False
    assert list(Order.objects.order_by("created_at").values_list("status", flat=True)) == [
        "waiting-payment",
        "pending",
    ]
    assert OrderStatusChange.objects.count() == 0
    assert order.status == "pending"  # the caller's instance is left as it was


def test_several_allowed_a_stale_view_loses_when_the_row_left_them_all(monkeypatch):
    """Several allowed statuses: the first UPDATE (from the caller's view) changes nothing, the
    locked read finds a status outside the allowed ones, nothing is written."""
    order, _other = make_order(), make_order()
    _compete_before_the_update(monkeypatch, order, "waiting-payment")

    assert _move(order, ["pending", "waiting-taker-bond"], "canceled", reload=order) is False
    assert list(Order.objects.order_by("created_at").values_list("status", flat=True)) == [
        "waiting-payment",
        "pending",
    ]
    assert OrderStatusChange.objects.count() == 0


def test_several_allowed_a_stale_view_still_moves_from_another_allowed_status():
    """The caller saw `pending`, the row is in `waiting-taker-bond` (also allowed): the first
    UPDATE changes nothing, the locked read finds the row's status and the move is made from it,
    audited from what the row really was."""
    order, other = make_order(), make_order()
    Order.objects.filter(pk=order.pk).update(status="waiting-taker-bond")
    before = snapshot(other)

    assert _move(order, ["pending", "waiting-taker-bond"], "canceled", reload=order) is True
    assert (order.status, Order.objects.get(pk=order.pk).status) == ("canceled", "canceled")
    assert snapshot(other) == before
    assert list(OrderStatusChange.objects.values_list("order_id", "from_status", "to_status")) == [
        (order.pk, "waiting-taker-bond", "canceled")
    ]


def test_several_allowed_a_failing_guard_is_not_retried(monkeypatch):
    """The caller's view is right but the guard fails: the status read finds the status already
    tried, so no second UPDATE runs and nothing is written."""
    order = make_order(buyer_dispute=True)
    before = snapshot(order)
    updates = []
    real = transitions.update_guarded

    def counted(model, **kwargs):
        updates.append(kwargs["where"]["status"])
        return real(model, **kwargs)

    monkeypatch.setattr(transitions, "update_guarded", counted)
    guard = Q(buyer_dispute=False)
    assert _move(order, ["pending", "waiting-taker-bond"], "canceled", guard=guard, reload=order) is False
    assert updates == ["pending"]
    assert snapshot(order) == before
    assert OrderStatusChange.objects.count() == 0


def test_every_listed_source_status_is_checked_against_the_table():
    order = make_order(status="fiat-sent")
    with pytest.raises(IllegalTransition) as refused:
        _move(order, ["fiat-sent", "active"], "settled-hold-invoice")
    assert str(refused.value) == "active -> settled-hold-invoice"
    assert Order.objects.get(pk=order.pk).status == "fiat-sent"


def test_unknown_order_does_not_move():
    order = make_order()
    Order.objects.filter(pk=order.pk).delete()
    assert _move(order, ["pending"], "canceled") is False
    assert OrderStatusChange.objects.count() == 0


def test_order_in_another_status_does_not_move():
    order = make_order(status="active")
    assert _move(order, ["pending"], "canceled") is False
    assert (Order.objects.get(pk=order.pk).status, OrderStatusChange.objects.count()) == ("active", 0)


def test_audit_row_truncates_actor_and_reason_to_their_columns():
    order = make_order()
    with transaction.atomic():
        assert transition_order(
            order_id=order.id, from_statuses=["pending"], to_status="canceled", actor="a" * 90, reason="r" * 210
        )
    change = OrderStatusChange.objects.get(order=order)
    assert (change.actor, change.reason) == ("a" * 80, "r" * 200)


def test_creation_is_audited_from_no_status():
    order = make_order()
    record_creation(order=order, actor="maker", reason="new-order")
    change = OrderStatusChange.objects.get(order=order)
    assert (change.from_status, change.to_status, change.actor, change.reason) == ("", "pending", "maker", "new-order")


def test_transition_reads_its_own_orders_status():
    # Another order, first by primary key, sits in a status the move does not start from.
    other = make_order(id=uuid.UUID(int=0), status="active")
    mine = make_order()
    assert _move(mine, ["pending"], "canceled") is True
    assert [Order.objects.get(pk=o.pk).status for o in (mine, other)] == ["canceled", "active"]


def test_both_writes_stamp_updated_at():
    moved, updated = make_order(), make_order(status="active")
    stale = timezone.now() - timedelta(days=1)
    Order.objects.update(updated_at=stale)

    assert _move(moved, ["pending"], "canceled") is True
    assert update_order_guarded(order_id=updated.id, statuses=["active"], set_fields={"buyer_dispute": True}) is True
    assert [Order.objects.get(pk=o.pk).updated_at > stale for o in (moved, updated)] == [True, True]


def _staff_pushes(callbacks) -> list[tuple]:
    """The staff pages' refreshes a write queued for after its commit (orders/live.py)."""
    return [c.args for c in callbacks if getattr(c, "func", None) is live._changed]


def test_won_writes_refresh_the_staff_pages_after_commit_and_lost_ones_do_not(django_capture_on_commit_callbacks):
    mine, other = make_order(), make_order()
    with django_capture_on_commit_callbacks() as won:
        assert _move(mine, ["pending"], "canceled") is True
    with django_capture_on_commit_callbacks() as lost:
        assert _move(mine, ["pending"], "canceled") is False
    with django_capture_on_commit_callbacks() as created, transaction.atomic():
        record_creation(order=other, actor="tester", reason="r")

    assert (_staff_pushes(won), _staff_pushes(lost), _staff_pushes(created)) == (
        [(str(mine.id),)],
        [],
        [(str(other.id),)],
    )
