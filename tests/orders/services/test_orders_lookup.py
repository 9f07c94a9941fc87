"""The `orders` lookup (plain SQL through `nostrbridge.statements.select_rows`) loads exactly the
orders, and the field values, the ORM would."""

import uuid

import pytest
from django.db.models import Q

from nostrbridge.protocol.enums import CantDoReason
from nostrbridge.protocol.errors import CantDo
from orders.models import Order
from orders.services.session import orders_for_identity
from tests.orders.trade_states import active_sell_trade

pytestmark = pytest.mark.django_db


def field_values(order: Order) -> dict:
    return {field.attname: getattr(order, field.attname) for field in Order._meta.concrete_fields}


def test_loads_every_field_as_the_orm_does(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    identity = trade.order.master_seller_pubkey
    ids = [uuid.uuid4(), trade.order.id]

    found = orders_for_identity(identity=identity, ids=ids)

    by_orm = Order.objects.filter(Q(master_buyer_pubkey=identity) | Q(master_seller_pubkey=identity), pk__in=ids)
    assert [order.pk for order in found] == [trade.order.id]
    assert [field_values(order) for order in found] == [field_values(order) for order in by_orm]
    assert found[0]._state.adding is False
    assert found[0]._state.db == "default"


def test_drops_repeated_ids(node, fake_ln):
    trade = active_sell_trade(fake_ln)

    found = orders_for_identity(identity=trade.order.master_buyer_pubkey, ids=[trade.order.id, trade.order.id])

    assert [order.pk for order in found] == [trade.order.id]


def test_nothing_of_the_caller_is_not_found(node, fake_ln):
    trade = active_sell_trade(fake_ln)

    with pytest.raises(CantDo) as refused:
        orders_for_identity(identity="e" * 64, ids=[trade.order.id])

    assert refused.value.reason == CantDoReason.NOT_FOUND


def test_order_refresh_reloads_what_refresh_from_db_does(node, fake_ln):
    from orders.selectors import order_refresh

    trade = active_sell_trade(fake_ln)
    ours, django_way = Order.objects.get(pk=trade.order.pk), Order.objects.get(pk=trade.order.pk)
    ours.range_parent = django_way.range_parent = Order.objects.exclude(pk=trade.order.pk).first()  # cached, unsaved
    Order.objects.filter(pk=trade.order.pk).update(status="fiat-sent", buyer_dispute=True)

    order_refresh(ours)
    django_way.refresh_from_db()

    assert field_values(ours) == field_values(django_way)
    assert (ours.status, ours.buyer_dispute, ours.range_parent_id) == ("fiat-sent", True, None)
    assert ours.range_parent is None  # the cached relation was dropped with the reload


def test_order_refresh_of_a_missing_order_raises():
    from orders.selectors import order_refresh

    order = Order(id=uuid.uuid4())

    with pytest.raises(Order.DoesNotExist):
        order_refresh(order)
