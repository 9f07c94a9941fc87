"""`select_rows` builds the instances `Model.from_db` would, without the constructor where that is
the same, and through `from_db` wherever it is not (a signal receiver, a partial row)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

from nostrbridge.rows import _loads_plainly, instances_from_rows
from nostrbridge.statements import select_one, select_where
from orders.models import Order
from tests.foundation.factories import make_order

pytestmark = pytest.mark.django_db


def _child_of(parent: Order) -> Order:
    held = timezone.now().replace(microsecond=123456) - timedelta(minutes=3)
    return make_order(range_parent=parent, invoice_held_at=held, premium=-3, buyer_dispute=True)


def test_select_one_loads_what_the_orm_loads():
    parent = make_order()
    child = _child_of(parent)

    ours = select_one(Order, id=child.pk)
    orm = Order.objects.get(pk=child.pk)

    assert ours is not None
    assert ours.__dict__.keys() == orm.__dict__.keys()  # `_state` first, then every column in field order
    assert {key: value for key, value in ours.__dict__.items() if key != "_state"} == {
        key: value for key, value in orm.__dict__.items() if key != "_state"
    }
    assert (ours._state.adding, ours._state.db, ours._state.fields_cache) == (False, "default", {})
    assert (ours.range_parent_id, ours.invoice_held_at, ours.premium, ours.buyer_dispute) == (
        parent.pk,
        child.invoice_held_at,
        child.premium,
        True,
    )
    assert ours.range_parent == parent  # the foreign key's related object loads on access
    ours.status = "canceled"
    ours.save(update_fields=["status"])  # an instance loaded as stored: save() updates it
    assert Order.objects.get(pk=child.pk).status == "canceled"


def test_rows_in_pk_order_each_its_own_instance():
    first, second = make_order(), make_order()

    loaded = select_where(Order, where={"id": sorted([second.pk, first.pk])})

    assert [order.pk for order in loaded] == sorted([first.pk, second.pk])
    assert loaded[0]._state is not loaded[1]._state


def test_a_receiver_of_either_init_signal_gets_the_constructor():
    order = make_order()
    seen: list[tuple[str, object]] = []

    def before(sender, args, kwargs, **_):
        seen.append(("pre", len(args)))

    def after(sender, instance, **_):
        seen.append(("post", instance.pk))

    for signal, receiver in ((pre_init, before), (post_init, after)):
        signal.connect(receiver, sender=Order)
        try:
            loaded = select_one(Order, id=order.pk)
        finally:
            signal.disconnect(receiver, sender=Order)
        assert loaded is not None
        assert loaded.pk == order.pk
    assert seen == [("pre", len(Order._meta.concrete_fields)), ("post", order.pk)]
    assert select_one(Order, id=order.pk) is not None
    assert len(seen) == 2


def test_a_partial_row_goes_through_from_db():
    attnames = ["id", "status"]
    order = make_order()

    (loaded,) = instances_from_rows(Order, "default", attnames, [[order.pk, "pending"]])

    assert not _loads_plainly(Order, tuple(attnames))
    assert (loaded.pk, loaded.status, loaded.get_deferred_fields()) == (
        order.pk,
        "pending",
        {field.attname for field in Order._meta.concrete_fields} - set(attnames),
    )
    assert instances_from_rows(Order, "default", attnames, []) == []


def test_the_plain_path_skips_the_constructor(monkeypatch):
    from django.db.models.base import Model

    order = make_order()
    calls: list[type] = []
    constructor = Model.__init__

    def counted(self, *args, **kwargs):
        calls.append(type(self))
        constructor(self, *args, **kwargs)

    monkeypatch.setattr(Model, "__init__", counted)
    _loads_plainly.cache_clear()
    try:
        loaded = select_one(Order, id=order.pk)
        assert (loaded.pk if loaded else None, calls) == (order.pk, [])
        Order.objects.get(pk=order.pk)
        assert calls == [Order]  # the ORM's own load still constructs
    finally:
        _loads_plainly.cache_clear()


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's datetime converter")
@pytest.mark.parametrize("use_tz", [True, False])
def test_the_quicker_datetime_converter_returns_what_djangos_returns(settings, use_tz):
    from datetime import UTC, datetime

    from nostrbridge.rows import quicker_converter

    settings.USE_TZ = use_tz
    field = Order._meta.get_field("invoice_held_at")
    expression = field.get_col(Order._meta.db_table)
    (django_convert,) = connection.ops.get_db_converters(expression)
    quicker = quicker_converter(django_convert)
    naive = datetime(2026, 12, 6, 18, 0, 1, 234567)
    inputs = [None, naive, naive.replace(tzinfo=UTC), "2026-12-06 18:00:01.234567"]

    converted = [quicker(value, expression, connection) for value in inputs]

    assert quicker is not django_convert
    assert converted == [django_convert(value, expression, connection) for value in inputs]
    assert [getattr(value, "tzinfo", None) for value in converted] == [
        None,
        *([UTC] * 3 if use_tz else [None, UTC, None]),
    ]
    assert quicker_converter(len) is len  # any other converter is kept
