"""The values `prep_value` / `prep_lookup` hand to the driver unchanged are exactly the ones the
fields' own conversions return unchanged, and `insert_rows` stores per row what the ORM stores
whichever columns each row gives."""

from __future__ import annotations

import pytest
from django.db import connection
from django.forms.models import model_to_dict

from nostrbridge.models import InboundStatus, OutboundDelivery, OutboundMessage, OutboundStatus
from nostrbridge.rows import plain_type
from nostrbridge.statements import insert_rows, prep_lookup, prep_value
from orders.models import Order, OrderStatusChange

pytestmark = pytest.mark.django_db


def test_the_plain_type_of_each_kind_of_column():
    assert [
        plain_type(OutboundMessage._meta.get_field("event_id")),  # CharField
        plain_type(OutboundMessage._meta.get_field("event_json")),  # TextField
        plain_type(Order._meta.get_field("buyer_dispute")),  # BooleanField
        plain_type(OutboundMessage._meta.get_field("attempts")),  # PositiveIntegerField
        plain_type(OutboundDelivery._meta.get_field("message")),  # foreign key to a BigAutoField
        plain_type(OrderStatusChange._meta.get_field("order")),  # foreign key to a UUIDField
        plain_type(Order._meta.pk),  # UUIDField
        plain_type(Order._meta.get_field("invoice_held_at")),  # DateTimeField
    ] == [str, str, bool, int, int, None, None, None]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (OutboundMessage._meta.get_field("status"), "sent"),
        (OutboundMessage._meta.get_field("status"), OutboundStatus.SENT),  # a text choice: a str subclass
        (OutboundMessage._meta.get_field("event_json"), InboundStatus.DONE),
        (Order._meta.get_field("buyer_dispute"), True),
        (Order._meta.get_field("buyer_dispute"), False),
        (OutboundDelivery._meta.get_field("message"), 7),
    ],
)
def test_a_plain_value_goes_through_as_the_field_returns_it(field, value):
    saved = field.get_db_prep_save(value, connection)
    looked_up = field.get_db_prep_value(value, connection)

    assert (saved, type(saved)) == (value, type(value))  # the field's conversion is the identity
    assert (looked_up, type(looked_up)) == (value, type(value))
    assert prep_value(field, value, connection) is value
    assert prep_lookup(field, value, connection) is value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (Order._meta.get_field("buyer_dispute"), 1),  # an int for a boolean column: the field's bool()
        (Order._meta.get_field("buyer_dispute"), "t"),
        (OutboundMessage._meta.get_field("attempts"), True),  # a bool for an integer column: int()
        (OutboundDelivery._meta.get_field("message"), "7"),  # a str key: the field's int()
        (OutboundMessage._meta.get_field("event_id"), 12),  # an int for a text column: str()
    ],
)
def test_any_other_value_takes_the_fields_conversion(field, value):
    expected = field.get_db_prep_save(value, connection)

    prepared = prep_value(field, value, connection)
    looked_up = prep_lookup(field, value, connection)

    assert (prepared, type(prepared)) == (expected, type(expected))
    assert (looked_up, type(looked_up)) == (expected, type(expected))
    assert prepared is not value


def test_rows_giving_different_columns_in_one_statement_store_what_create_stores():
    given = [
        {"event_id": "a" * 64, "kind": 14, "event_json": "{}"},
        {"event_id": "b" * 64, "kind": 14, "event_json": "{}", "status": OutboundStatus.PARKED, "attempts": 3},
        {"kind": 1059, "event_json": "[]", "event_id": "c" * 64, "recipient_pubkey": "d" * 64},  # another order
    ]

    assert insert_rows(OutboundMessage, given) == 3
    assert insert_rows(OutboundMessage, [{**row, "event_id": row["event_id"][0] * 63 + "e"} for row in given]) == 3

    for values in given:
        by_sql = OutboundMessage.objects.get(event_id=values["event_id"])
        by_orm = OutboundMessage.objects.create(**{**values, "event_id": "f" * 64})
        ignored = ["id", "event_id", "created_at"]
        assert model_to_dict(by_sql, exclude=ignored) == model_to_dict(by_orm, exclude=ignored)
        assert by_sql.created_at is not None
        by_orm.delete()
    statuses = sorted(OutboundMessage.objects.values_list("event_id", "status", "attempts"))
    assert statuses == [
        ("a" * 64, "pending", 0),
        ("a" * 63 + "e", "pending", 0),
        ("b" * 64, "parked", 3),
        ("b" * 63 + "e", "parked", 3),
        ("c" * 64, "pending", 0),
        ("c" * 63 + "e", "pending", 0),
    ]
