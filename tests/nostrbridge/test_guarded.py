"""The plain-SQL guarded UPDATE, locked read and existence check do what the ORM's would.

Each case runs the same filter both ways on two identical orders and compares the row counts
and every stored field; the lock shape on PostgreSQL is tests/wiring/test_locks.py's.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import F, Q
from django.db.transaction import TransactionManagementError
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from nostrbridge.guarded import (
    exists_where,
    select_locked,
    select_locked_column,
    select_locked_columns,
    update_guarded,
    update_guarded_returning,
)
from orders.models import Order, Trader
from tests.foundation.factories import make_order

pytestmark = pytest.mark.django_db

HELD_AT = timezone.now() - timedelta(minutes=3)


def _twins(**fields) -> tuple[Order, Order]:
    now = timezone.now()
    fields = {"created_at": now, "expires_at": now + timedelta(hours=24), **fields}
    return make_order(**fields), make_order(**fields)


def _orm_update(pk, where: dict, guard: Q | None, values: dict) -> int:
    query = Order.objects.filter(pk=pk, **where)
    if guard is not None:
        query = query.filter(guard)
    return query.update(**values)


def _stored(order: Order) -> dict:
    return model_to_dict(Order.objects.get(pk=order.pk), exclude=["id"])


CASES = [
    # (where besides the pk, guard, matches)
    ({"status": "active"}, None, True),
    ({"status": "pending"}, None, False),
    ({"status__in": ["fiat-sent", "active"]}, None, True),
    ({"status__in": ["fiat-sent"]}, None, False),
    ({"status": "active"}, Q(invoice_held_at__isnull=False, hold_invoice_hash="ab" * 32), True),
    ({"status": "active"}, Q(invoice_held_at__isnull=True), False),
    ({"status": "active"}, Q(cancel_initiator_pubkey__isnull=True), True),
    ({"status": "active"}, Q(cancel_initiator_pubkey=None), True),
    ({"status": "active"}, Q(buyer_sent_rate=False), True),
    ({"status": "active"}, Q(buyer_sent_rate=True), False),
    ({"status": "active"}, Q(invoice_held_at__lt=timezone.now()), True),
    ({"status": "active"}, Q(invoice_held_at__gt=timezone.now()), False),
    ({"status": "active"}, Q(amount_sats__gte=10_000) & Q(amount_sats__lte=10_000), True),
    ({"status": "active"}, Q(payment_attempts__lt=0), False),
    ({"status": "active"}, Q(range_parent=None), True),
    # The ORM's own path: a negation, an OR, a related lookup.
    ({"status": "active"}, ~Q(buyer_pubkey="c" * 64), True),
    ({"status": "active"}, Q(buyer_pubkey="c" * 64) | Q(fee_sats=0), True),
    ({"status": "active"}, Q(range_parent__status="active"), False),
]


@pytest.mark.parametrize(("where", "guard", "matches"), CASES)
def test_update_guarded_changes_what_the_orm_changes(where, guard, matches):
    by_orm, by_sql = _twins(status="active", hold_invoice_hash=None, invoice_held_at=HELD_AT)
    Order.objects.filter(pk=by_orm.pk).update(hold_invoice_hash="ab" * 32)
    Order.objects.filter(pk=by_sql.pk).update(hold_invoice_hash="cd" * 32)
    if guard is not None and "ab" * 32 in str(guard):
        guard = Q(invoice_held_at__isnull=False)  # the twins differ in their unique hash
    now = timezone.now()
    values = {"status": "fiat-sent", "updated_at": now, "cancel_initiator_pubkey": "e" * 64, "payment_attempts": 2}

    orm_count = _orm_update(by_orm.pk, where, guard, values)
    sql_count = update_guarded(Order, where={"pk": by_sql.pk, **where}, guard=guard, values=values)

    assert (orm_count, sql_count) == ((1, 1) if matches else (0, 0))
    orm_row, sql_row = _stored(by_orm), _stored(by_sql)
    assert orm_row.pop("hold_invoice_hash") == "ab" * 32
    assert sql_row.pop("hold_invoice_hash") == "cd" * 32
    assert orm_row == sql_row
    assert sql_row["status"] == ("fiat-sent" if matches else "active")


def test_update_guarded_with_an_expression_runs_through_the_orm():
    order = make_order(status="active", payment_attempts=4)

    changed = update_guarded(
        Order, where={"pk": order.pk}, guard=None, values={"payment_attempts": F("payment_attempts") + 1}
    )

    assert changed == 1
    assert Order.objects.get(pk=order.pk).payment_attempts == 5


def test_update_guarded_with_an_empty_list_changes_nothing():
    order = make_order(status="active")

    assert update_guarded(Order, where={"pk": order.pk, "status__in": []}, guard=None, values={"status": "x"}) == 0
    assert Order.objects.get(pk=order.pk).status == "active"


def test_update_guarded_raises_an_integer_guard_by_the_trader_key():
    Trader.objects.create(pubkey="a" * 64, last_trade_index=3)

    low = update_guarded(
        Trader, where={"pk": "a" * 64, "last_trade_index__lt": 2}, guard=None, values={"last_trade_index": 2}
    )
    high = update_guarded(
        Trader, where={"pk": "a" * 64, "last_trade_index__lt": 7}, guard=None, values={"last_trade_index": 7}
    )

    assert (low, high) == (0, 1)
    assert Trader.objects.get(pk="a" * 64).last_trade_index == 7


def test_select_locked_loads_what_the_orm_loads():
    order = make_order(status="active", invoice_held_at=HELD_AT, buyer_pubkey="b" * 64)
    with transaction.atomic():
        locked = select_locked(Order, pk=order.pk)
        by_orm = Order.objects.select_for_update().filter(pk=order.pk).first()
        status = select_locked_column(Order, pk=str(order.pk), column="status")
        missing = select_locked(Order, pk="00000000-0000-0000-0000-000000000000")
        missing_status = select_locked_column(Order, pk="00000000-0000-0000-0000-000000000000", column="status")

    assert locked is not None
    assert by_orm is not None
    assert model_to_dict(locked) == model_to_dict(by_orm)
    assert (locked.pk, locked.invoice_held_at, locked._state.adding) == (order.pk, HELD_AT, False)
    assert (status, missing, missing_status) == ("active", None, None)


def test_select_locked_columns_reads_the_named_columns_in_their_order():
    order = make_order(status="active", invoice_held_at=HELD_AT, buyer_invoice="lnbc1")
    columns = ("status", "invoice_held_at", "buyer_invoice")
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        values = select_locked_columns(Order, pk=order.pk, columns=columns)
        by_orm = Order.objects.select_for_update().filter(pk=order.pk).values_list(*columns).first()
        missing = select_locked_columns(Order, pk="00000000-0000-0000-0000-000000000000", columns=columns)

    assert values is not None
    assert by_orm is not None
    assert (values[0], values[1] is not None, values[2]) == ("active", True, "lnbc1")
    assert (values[0], values[2]) == (by_orm[0], by_orm[2])
    assert missing is None
    read = next(query["sql"] for query in captured.captured_queries if query["sql"].startswith("SELECT"))
    assert read.startswith(
        'SELECT "orders_order"."status", "orders_order"."invoice_held_at", "orders_order"."buyer_invoice"'
        ' FROM "orders_order" WHERE "orders_order"."id" = '
    )
    assert read.endswith(" FOR UPDATE") == connection.features.has_select_for_update


@pytest.mark.django_db(transaction=True)  # the test's own transaction would hide the refusal
def test_locked_reads_refuse_to_run_outside_a_transaction():
    order = make_order(status="active")

    with pytest.raises(TransactionManagementError):
        select_locked(Order, pk=order.pk)
    with pytest.raises(TransactionManagementError):
        select_locked_column(Order, pk=order.pk, column="status")
    with pytest.raises(TransactionManagementError):
        select_locked_columns(Order, pk=order.pk, columns=("status",))


def test_exists_where_answers_what_exists_answers():
    make_order(status="waiting-buyer-invoice", master_buyer_pubkey="b" * 64)
    cases = [
        {"master_buyer_pubkey": "b" * 64, "status": "waiting-buyer-invoice"},
        {"master_buyer_pubkey": "b" * 64, "status": "waiting-payment"},
        {"master_buyer_pubkey": "c" * 64, "status": "waiting-buyer-invoice"},
        {"master_buyer_pubkey": "b" * 64, "status__in": ["active", "waiting-buyer-invoice"]},
        {"master_buyer_pubkey": "b" * 64, "status__in": []},
        {"master_buyer_pubkey": "b" * 64, "range_parent__status": "active"},  # through the ORM
    ]

    answers = [exists_where(Order, where=where) for where in cases]

    assert answers == [Order.objects.filter(**where).exists() for where in cases]
    assert answers == [True, False, False, True, False, False]


def test_statements_name_the_table_qualified_columns_and_stay_visible_to_query_capture():
    order = make_order(status="active")
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        select_locked_column(Order, pk=order.pk, column="status")
        update_guarded(
            Order,
            where={"pk": order.pk, "status": "active"},
            guard=Q(cancel_initiator_pubkey__isnull=True),
            values={"status": "fiat-sent"},
        )

    read, update = (
        query["sql"] for query in captured.captured_queries if query["sql"].startswith(("SELECT", "UPDATE"))
    )
    assert read.startswith('SELECT "orders_order"."status" FROM "orders_order" WHERE "orders_order"."id" = ')
    assert update.startswith('UPDATE "orders_order" SET "status" = ')
    where = update.split(" WHERE ", 1)[1]
    assert where.startswith('"orders_order"."id" = ')
    assert ' AND "orders_order"."status" = ' in where
    assert where.endswith(' AND "orders_order"."cancel_initiator_pubkey" IS NULL')


@pytest.mark.parametrize(("where", "guard", "matches"), CASES)
def test_update_guarded_returning_returns_the_rows_a_read_after_it_loads(where, guard, matches):
    order = make_order(status="active", hold_invoice_hash="ab" * 32, invoice_held_at=HELD_AT)
    values = {"status": "fiat-sent", "updated_at": timezone.now(), "cancel_initiator_pubkey": "e" * 64}
    plain = _conditions_are_plain(where, guard)

    with transaction.atomic():
        count, rows = update_guarded_returning(Order, where={"pk": order.pk, **where}, guard=guard, values=values)

    stored = Order.objects.get(pk=order.pk)
    assert count == (1 if matches else 0)
    assert stored.status == ("fiat-sent" if matches else "active")
    if not plain:
        assert rows is None  # the ORM ran the UPDATE: the caller reads the row
        return
    assert rows is not None
    assert [row.pk for row in rows] == ([order.pk] if matches else [])
    for row in rows:
        assert row.__dict__.keys() == stored.__dict__.keys()
        assert {k: v for k, v in row.__dict__.items() if k != "_state"} == {
            k: v for k, v in stored.__dict__.items() if k != "_state"
        }
        assert (row._state.adding, row._state.db) == (False, "default")


def _conditions_are_plain(where: dict, guard: Q | None) -> bool:
    from nostrbridge.guarded import _conditions

    return _conditions(Order, {"pk": 1, **where}, guard) is not None


def test_update_guarded_returning_with_an_empty_list_returns_no_rows():
    order = make_order(status="active")

    result = update_guarded_returning(
        Order, where={"pk": order.pk, "status__in": []}, guard=None, values={"status": "x"}
    )

    assert result == (0, [])
    assert Order.objects.get(pk=order.pk).status == "active"
