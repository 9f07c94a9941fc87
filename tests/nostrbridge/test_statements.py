"""The bridge's plain-SQL statements store what the ORM would, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from datetime import timezone as timezone_of

import pytest
from django.db import DEFAULT_DB_ALIAS, connections
from django.forms.models import model_to_dict
from django.utils import timezone

from nostrbridge.inbox import LEASE_SECONDS, inbox_claim, inbox_finish
from nostrbridge.models import InboundEvent, InboundStatus, OutboundDelivery, OutboundMessage, OutboundStatus
from nostrbridge.statements import insert_instance, insert_row, insert_rows, prep_value, update_where
from orders.models import Order

pytestmark = pytest.mark.django_db


def outbound(event_id: str, **values) -> dict:
    return {"event_id": event_id, "kind": 14, "event_json": "{}", **values}


def test_insert_row_stores_what_create_stores():
    order_id = uuid.uuid4()
    before = timezone.now()
    OutboundMessage.objects.create(**outbound("a" * 64, recipient_pubkey="b" * 64, action="orders", order_id=order_id))
    insert_row(
        OutboundMessage, **outbound("c" * 64, recipient_pubkey="b" * 64, action="orders", order_id=str(order_id))
    )
    after = timezone.now()

    by_orm, by_sql = (OutboundMessage.objects.get(event_id=x * 64) for x in "ac")
    ignored = ["id", "event_id", "created_at"]
    assert model_to_dict(by_sql, exclude=ignored) == model_to_dict(by_orm, exclude=ignored)
    assert (by_sql.status, by_sql.attempts, by_sql.next_attempt_at, by_sql.order_id) == (
        OutboundStatus.PENDING,
        0,
        None,
        order_id,
    )
    assert before <= by_sql.created_at <= after
    assert OutboundMessage.objects.filter(order_id=order_id).count() == 2  # the UUID is stored the ORM's way


def test_update_where_sets_values_increments_and_matches_lists():
    rows = [OutboundMessage.objects.create(**outbound(x * 64)) for x in "abc"]
    retry_at = timezone.now() + timedelta(seconds=30)

    changed = update_where(
        OutboundMessage,
        where={"id": [rows[0].pk, rows[2].pk], "status": OutboundStatus.PENDING},
        values={"status": OutboundStatus.SENT, "next_attempt_at": retry_at, "last_error": "ws://b: slow"},
        increments=["attempts"],
    )

    assert changed == 2
    states = {
        row.event_id[0]: (row.status, row.attempts, row.next_attempt_at, row.last_error)
        for row in OutboundMessage.objects.all()
    }
    assert states == {
        "a": (OutboundStatus.SENT, 1, retry_at, "ws://b: slow"),
        "b": (OutboundStatus.PENDING, 0, None, ""),
        "c": (OutboundStatus.SENT, 1, retry_at, "ws://b: slow"),
    }
    assert update_where(OutboundMessage, where={"id": rows[0].pk}, values={"next_attempt_at": None}) == 1
    assert OutboundMessage.objects.get(pk=rows[0].pk).next_attempt_at is None


def test_update_where_matching_nothing_changes_nothing():
    row = OutboundMessage.objects.create(**outbound("a" * 64))

    assert update_where(OutboundMessage, where={"id": []}, values={"status": OutboundStatus.PARKED}) == 0
    assert update_where(OutboundMessage, where={"id": row.pk, "status": "sent"}, values={"attempts": 5}) == 0
    assert OutboundMessage.objects.values_list("status", "attempts").get() == (OutboundStatus.PENDING, 0)


def test_insert_rows_on_conflict_skips_or_overwrites_the_named_columns():
    message = OutboundMessage.objects.create(**outbound("a" * 64))
    first = timezone.now() - timedelta(minutes=5)
    OutboundDelivery.objects.create(message=message, relay_url="ws://a", accepted=False, relay_message="no", attempts=1)
    OutboundDelivery.objects.filter(relay_url="ws://a").update(updated_at=first)
    rows = [
        {"message_id": message.pk, "relay_url": "ws://a", "accepted": True, "relay_message": "", "attempts": 2},
        {"message_id": message.pk, "relay_url": "ws://b", "accepted": None, "relay_message": "timeout", "attempts": 1},
    ]

    insert_rows(OutboundDelivery, rows[:1], conflict=["message_id", "relay_url"])  # DO NOTHING
    kept = OutboundDelivery.objects.get(relay_url="ws://a")
    insert_rows(OutboundDelivery, rows, conflict=["message_id", "relay_url"], update=["accepted", "attempts"])

    assert (kept.accepted, kept.relay_message, kept.attempts, kept.updated_at) == (False, "no", 1, first)
    found = {d.relay_url: (d.accepted, d.relay_message, d.attempts) for d in OutboundDelivery.objects.all()}
    assert found == {"ws://a": (True, "no", 2), "ws://b": (None, "timeout", 1)}  # relay_message not in `update`
    assert OutboundDelivery.objects.get(relay_url="ws://a").updated_at > first  # auto_now moves on update


def test_unknown_column_is_refused_before_any_sql():
    with pytest.raises(ValueError, match="has no column 'colour'"):
        update_where(OutboundMessage, where={"colour": "red"}, values={"attempts": 1})


def inbound(event_id: str, **values) -> InboundEvent:
    return InboundEvent.objects.create(
        event_id=event_id, kind=14, pubkey="b" * 64, event_created_at=1, raw="{}", **values
    )


def test_inbox_claim_takes_received_and_expired_leases_only():
    now = timezone.now()
    fresh = inbound("a" * 64)
    expired = inbound("b" * 64, status=InboundStatus.PROCESSING, locked_by="dead", locked_until=now, attempts=1)
    leased = inbound("c" * 64, status=InboundStatus.PROCESSING, locked_by="other", locked_until=now + timedelta(60))
    done = inbound("d" * 64, status=InboundStatus.DONE)

    claimed = inbox_claim(worker_id="me", limit=10)

    assert claimed == [fresh.pk, expired.pk]
    rows = {row.pk: row for row in InboundEvent.objects.all()}
    for pk, attempts in ((fresh.pk, 1), (expired.pk, 2)):
        assert (rows[pk].status, rows[pk].locked_by, rows[pk].attempts) == (InboundStatus.PROCESSING, "me", attempts)
        assert now + timedelta(seconds=LEASE_SECONDS - 5) < rows[pk].locked_until
    assert (rows[leased.pk].locked_by, rows[leased.pk].attempts) == ("other", 0)
    assert rows[done.pk].status == InboundStatus.DONE
    assert inbox_claim(worker_id="me", limit=10) == []


def test_inbox_claim_respects_the_limit_in_id_order():
    rows = [inbound(x * 64) for x in "abc"]

    assert inbox_claim(worker_id="me", limit=2) == [rows[0].pk, rows[1].pk]
    assert inbox_claim(worker_id="you", limit=2) == [rows[2].pk]


def test_inbox_finish_only_changes_a_row_still_processing():
    row = inbound("a" * 64)
    inbox_claim(worker_id="me")

    assert inbox_finish(pk=row.pk, status=InboundStatus.DONE, action="orders", drop_reason="x" * 300) is True
    assert inbox_finish(pk=row.pk, status=InboundStatus.DROPPED) is False

    row.refresh_from_db()
    assert (row.status, row.action, row.drop_reason, row.locked_until) == (
        InboundStatus.DONE,
        "orders",
        "x" * 200,
        None,
    )
    assert row.processed_at is not None


def test_statements_stay_visible_to_query_capture():
    """The fast path skips Django's cursor wrapper only while nothing observes queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    row = OutboundMessage.objects.create(**outbound("a" * 64))
    with CaptureQueriesContext(connection) as captured:
        changed = update_where(OutboundMessage, where={"id": row.pk}, values={"attempts": 3})

    assert changed == 1
    assert [query["sql"].split(" SET ")[0] for query in captured.captured_queries] == [
        f"UPDATE {connection.ops.quote_name(OutboundMessage._meta.db_table)}"
    ]
    assert OutboundMessage.objects.values_list("attempts", flat=True).get() == 3


def test_insert_instance_stores_and_returns_what_create_does():
    order_id = uuid.uuid4()
    by_orm = OutboundMessage.objects.create(**outbound("a" * 64, action="orders", order_id=order_id, d_tag="x"))
    before = timezone.now()
    by_sql = insert_instance(OutboundMessage(**outbound("c" * 64, action="orders", order_id=order_id, d_tag="x")))
    after = timezone.now()

    assert by_sql.pk == by_orm.pk + 1  # the auto-increment key, read back
    assert (by_sql._state.adding, by_sql._state.db) == (False, "default")
    assert before <= by_sql.created_at <= after  # auto_now_add stamped on the instance, as save() does
    stored = OutboundMessage.objects.get(pk=by_sql.pk)
    ignored = ["id", "event_id", "created_at"]
    assert model_to_dict(stored, exclude=ignored) == model_to_dict(by_orm, exclude=ignored)
    assert (stored.event_id, stored.created_at) == ("c" * 64, by_sql.created_at)


def test_insert_instance_keeps_a_client_side_primary_key():
    now = timezone.now()
    fields = {"created_at": now, "expires_at": now + timedelta(hours=1), "kind": "sell", "creator_pubkey": "a" * 64,
              "payment_method": "cash", "fiat_code": "USD", "fiat_amount": 10}  # fmt: skip
    by_orm = Order.objects.create(**fields)
    by_sql = insert_instance(Order(**fields))

    assert by_sql.pk != by_orm.pk
    assert Order.objects.get(pk=by_sql.pk).updated_at == by_sql.updated_at  # auto_now stamped on the instance
    ignored = ["id", "updated_at"]
    assert model_to_dict(Order.objects.get(pk=by_sql.pk), exclude=ignored) == model_to_dict(by_orm, exclude=ignored)
    assert model_to_dict(by_sql, exclude=ignored) == model_to_dict(by_orm, exclude=ignored)


def test_plain_statements_keep_one_driver_cursor_per_open_connection():
    """On SQLite the statements run on the connection's kept driver cursor while nothing observes
    queries; a new connection gets a new one. Elsewhere Django's cursor runs every statement."""
    from nostrbridge.statements import db_connection, run_statement

    connection = db_connection()  # the wrapper itself (django.db.connection is a proxy)
    row = OutboundMessage.objects.create(**outbound("b" * 64))
    assert update_where(OutboundMessage, where={"id": row.pk}, values={"attempts": 1}) == 1
    kept = connection.__dict__.get("_statement_cursor")
    assert update_where(OutboundMessage, where={"id": row.pk}, values={"attempts": 2}) == 1
    table = connection.ops.quote_name(OutboundMessage._meta.db_table)
    rows = run_statement(connection, f"SELECT attempts, event_id FROM {table} WHERE id = %s", [row.pk], fetch=True)

    assert [tuple(found) for found in rows] == [(2, "b" * 64)]
    if connection.vendor == "sqlite":
        assert kept is not None
        assert kept[0] is connection.connection
        assert connection.__dict__["_statement_cursor"] is kept
    else:
        assert kept is None


@pytest.mark.django_db(transaction=True)
def test_a_kept_cursor_follows_a_reconnect_and_a_broken_transaction_is_refused():
    from django.db import IntegrityError, transaction
    from django.db.transaction import TransactionManagementError

    from nostrbridge.statements import db_connection

    connection = db_connection()  # the wrapper itself (django.db.connection is a proxy)
    row = OutboundMessage.objects.create(**outbound("c" * 64))
    update_where(OutboundMessage, where={"id": row.pk}, values={"attempts": 1})
    connection.close()
    assert update_where(OutboundMessage, where={"id": row.pk}, values={"attempts": 4}) == 1  # Django's cursor connects
    assert update_where(OutboundMessage, where={"id": row.pk}, values={"attempts": 5}) == 1
    if connection.vendor == "sqlite":  # never the closed connection's cursor
        assert connection.__dict__["_statement_cursor"][0] is connection.connection

    with transaction.atomic():
        with pytest.raises(IntegrityError), transaction.atomic(savepoint=False):  # marks the transaction broken
            insert_row(OutboundMessage, **{**outbound("c" * 64), "event_json": "{}"})  # duplicate event_id
        with pytest.raises(TransactionManagementError):
            update_where(OutboundMessage, where={"id": row.pk}, values={"attempts": 6})
        transaction.set_rollback(True)
    assert OutboundMessage.objects.values_list("attempts", flat=True).get() == 5


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 6, 18, 20, 43, 924385, tzinfo=UTC),
        datetime(2026, 12, 6, 18, 20, 43, tzinfo=UTC),  # no microseconds: no fraction, as str() gives
        datetime(2026, 12, 6, 19, 20, 43, 5, tzinfo=timezone_of(timedelta(hours=1))),  # not UTC: Django's path
    ],
)
def test_prep_value_of_a_datetime_is_what_the_field_stores(value):
    db = connections[DEFAULT_DB_ALIAS]
    field = InboundEvent._meta.get_field("processed_at")

    assert prep_value(field, value, db) == field.get_db_prep_save(value, db)


def test_a_utc_datetime_skips_the_fields_conversion(monkeypatch):
    db = connections[DEFAULT_DB_ALIAS]
    field = InboundEvent._meta.get_field("locked_until")
    value = datetime(2026, 12, 6, 18, 20, 43, 924385, tzinfo=UTC)
    calls = []
    monkeypatch.setattr(field, "get_db_prep_save", lambda *args: calls.append(args) or "field's")

    prepared = prep_value(field, value, db)

    if db.vendor == "sqlite":
        assert (prepared, calls) == ("2026-12-06 18:20:43.924385", [])
    else:  # PostgreSQL: psycopg takes the aware datetime as it is, what the field would return
        assert (prepared, calls) == (value, [])


def test_uuid_values_are_prepared_as_the_fields_prepare_them():
    from django.db import connection

    from nostrbridge.statements import prep_lookup, prep_value
    from orders.models import OrderStatusChange

    value = uuid.UUID("0f5e1f27-5c83-4f0c-9d86-6a5e1a3f2b11")
    columns = [
        Order._meta.pk,  # a UUIDField
        OrderStatusChange._meta.get_field("order"),  # a foreign key to it
        OutboundMessage._meta.get_field("order_id"),  # a nullable UUIDField
    ]
    expected = value if connection.features.has_native_uuid_field else "0f5e1f275c834f0c9d866a5e1a3f2b11"

    assert [prep_value(field, value, connection) for field in columns] == [expected] * 3
    assert [prep_lookup(field, value, connection) for field in columns] == [expected] * 3
    assert [field.get_db_prep_save(value, connection) for field in columns] == [expected] * 3
    assert prep_value(columns[0], str(value), connection) == expected  # a str still goes through the field
    assert prep_value(OutboundMessage._meta.get_field("event_id"), value, connection) == str(value)


@pytest.mark.parametrize("use_tz", [True, False])
def test_datetime_values_are_prepared_as_the_field_prepares_them(settings, use_tz):
    import warnings
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from django.db import connection

    from nostrbridge.statements import prep_lookup, prep_value

    settings.USE_TZ = use_tz
    field = Order._meta.get_field("invoice_held_at")
    aware = [
        datetime(2026, 12, 6, 18, 0, 1, 234567, tzinfo=UTC),
        datetime(2026, 12, 6, 23, 30, 1, tzinfo=ZoneInfo("Asia/Kolkata")),  # 18:00:01 UTC
    ]
    naive = datetime(2026, 12, 6, 18, 0, 1)

    def both(prepare, value):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = prepare(value)
            except ValueError as exc:
                result = f"ValueError: {exc}"
        return result, [str(w.message) for w in caught]

    for value in [*aware, naive]:
        expected = both(lambda v: field.get_db_prep_save(v, connection), value)
        assert both(lambda v: prep_value(field, v, connection), value) == expected
        assert both(lambda v: prep_lookup(field, v, connection), value) == expected
    if use_tz and connection.vendor == "sqlite":
        assert [prep_value(field, value, connection) for value in aware] == [
            "2026-12-06 18:00:01.234567",
            "2026-12-06 18:00:01",
        ]
