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


def _order_reads(queries) -> list[str]:
    return [
        q["sql"] for q in queries if q["sql"].startswith("SELECT") and '"orders_order"' in q["sql"].split(" FROM ")[1]
    ]


@pytest.mark.parametrize(
    ("start", "to_status", "set_fields", "reads_after"),
    [
        # A move no bond rule acts on: the UPDATE returns the row, no read after it.
        ("active", "fiat-sent", {"next_trade_index": 4}, 0),
        ("pending", "waiting-payment", {"buyer_pubkey": "c" * 64}, 0),
        # A trade's end (the bonds are released in it): the row is read after the transition.
        ("pending", "canceled", {}, 1),
    ],
)
def test_reload_leaves_the_instance_as_a_refresh_would(start, to_status, set_fields, reads_after):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    order = make_order(status=start)
    order.range_parent = make_order()  # a cached relation, which a reload drops
    stale = order.updated_at

    with CaptureQueriesContext(connection) as queries:
        assert _move(order, [start], to_status, set_fields=set_fields, reload=order) is True

    fresh = Order.objects.get(pk=order.pk)
    assert _columns(order) == _columns(fresh)
    assert (order.status, order.range_parent_id, order._state.fields_cache) == (to_status, None, {})
    assert order.updated_at > stale
    # No status read (the guarded UPDATE from the one allowed status decides), only the read
    # after it where the bonds may act (they read the order themselves at a trade's end).
    assert [sql for sql in _order_reads(queries) if "FOR UPDATE" in sql or '"status" FROM' in sql] == []
    if reads_after == 0:
        assert _order_reads(queries) == []
    else:
        assert len(_order_reads(queries)) > 0


def test_a_lost_transition_leaves_the_reload_instance_alone():
    order = make_order(status="active")
    before = dict(order.__dict__)

    assert _move(order, ["pending"], "waiting-payment", reload=order) is False

    assert _columns(order) == {f.attname: before[f.attname] for f in Order._meta.concrete_fields}


def _columns(order: Order) -> dict:
    return {field.attname: order.__dict__[field.attname] for field in Order._meta.concrete_fields}
