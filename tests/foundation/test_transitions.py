import pytest
from django.db import transaction
from django.db.models import Q

from orders.models import Order, OrderStatusChange
from orders.transitions import IllegalTransition, transition_order, update_order_guarded
from tests.foundation.factories import make_order

pytestmark = pytest.mark.django_db


def _move(order, from_statuses, to_status, **kwargs) -> bool:
    with transaction.atomic():
        return transition_order(
            order_id=order.id, from_statuses=from_statuses, to_status=to_status, actor="tester", reason="r", **kwargs
        )


def test_transition_writes_status_and_one_audit_row():
    order = make_order()
    assert _move(order, ["pending"], "canceled") is True
    order.refresh_from_db()
    assert order.status == "canceled"
    change = OrderStatusChange.objects.get(order=order)
    assert (change.from_status, change.to_status, change.actor, change.reason) == ("pending", "canceled", "tester", "r")


def test_second_identical_transition_loses_and_changes_nothing():
    order = make_order()
    assert _move(order, ["pending"], "waiting-payment") is True
    assert _move(order, ["pending"], "waiting-buyer-invoice") is False
    order.refresh_from_db()
    assert order.status == "waiting-payment"
    assert OrderStatusChange.objects.filter(order=order).count() == 1


def test_guard_blocks_transition():
    order = make_order(status="settled-hold-invoice", payout_payment_hash="c" * 64)
    assert _move(order, ["settled-hold-invoice"], "success", guard=Q(payout_payment_hash__isnull=True)) is False
    assert Order.objects.get(pk=order.pk).status == "settled-hold-invoice"
    assert OrderStatusChange.objects.count() == 0


def test_set_fields_applied_with_the_status():
    order = make_order()
    assert _move(order, ["pending"], "waiting-buyer-invoice", set_fields={"buyer_pubkey": "c" * 64}) is True
    order.refresh_from_db()
    assert (order.status, order.buyer_pubkey) == ("waiting-buyer-invoice", "c" * 64)


def test_move_missing_from_the_state_machine_raises():
    order = make_order()
    with pytest.raises(IllegalTransition):
        _move(order, ["pending"], "success")
    assert Order.objects.get(pk=order.pk).status == "pending"


@pytest.mark.django_db(transaction=True)
def test_transition_outside_a_transaction_is_refused():
    order = make_order()
    with pytest.raises(RuntimeError):
        transition_order(order_id=order.id, from_statuses=["pending"], to_status="canceled", actor="a", reason="r")
    assert Order.objects.get(pk=order.pk).status == "pending"


def test_guarded_update_only_in_expected_status():
    order = make_order(status="active")
    assert update_order_guarded(order_id=order.id, statuses=["pending"], set_fields={"buyer_dispute": True}) is False
    assert update_order_guarded(order_id=order.id, statuses=["active"], set_fields={"buyer_dispute": True}) is True
    order.refresh_from_db()
    assert order.buyer_dispute is True
