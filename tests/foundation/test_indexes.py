"""The hot tables' indexes: each index is one more page written by every insert or update that
touches its columns, so an index another one already covers is dropped (docs/PERFORMANCE.md)."""

import pytest
from django.db import connection

from nostrbridge.models import OutboundDelivery
from orders.models import Order

pytestmark = pytest.mark.django_db


def _indexes(table: str) -> dict[tuple[str, ...], bool]:
    """Columns of each index or unique constraint of `table` (the primary key left out) → unique."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return {
        tuple(info["columns"]): info["unique"]
        for info in constraints.values()
        if (info["index"] or info["unique"]) and not info["primary_key"]
    }


def test_order_status_is_indexed_only_as_the_first_column_of_the_composites():
    indexes = _indexes(Order._meta.db_table)
    assert sorted(columns for columns in indexes if "status" in columns) == [
        ("status", "expires_at"),
        ("status", "taken_at"),
    ]


def test_a_delivery_is_found_by_its_message_through_the_unique_index():
    indexes = _indexes(OutboundDelivery._meta.db_table)
    assert indexes == {("message_id", "relay_url"): True}


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's EXPLAIN QUERY PLAN text")
def test_a_lookup_by_status_alone_still_uses_an_index():
    sql, params = Order.objects.filter(status="active").only("id").query.sql_with_params()
    with connection.cursor() as cursor:
        plan = " ".join(row[-1] for row in cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall())
    assert "USING INDEX orders_orde_status_" in plan or "USING COVERING INDEX orders_orde_status_" in plan, plan
