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
