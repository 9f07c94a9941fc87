"""`bonds_trade_end`'s one-statement probe (`_trade_end_has_bonds`): a trade with no bond and no
range ends its bonds with that one read; every other case takes the full path as before."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from orders.bonds.models import Bond
from orders.bonds.release import _trade_end_has_bonds, bonds_trade_end
from orders.models import Order
from tests.foundation.factories import make_order
from tests.orders.bonds.support import bond_row

pytestmark = pytest.mark.django_db


def test_a_plain_order_has_no_bonds_to_end():
    assert _trade_end_has_bonds(make_order().pk) is False


@pytest.mark.parametrize(("state", "expected"), [("requested", True), ("locked", True), ("released", False)])
def test_an_open_whole_bond_is_found(state, expected):
    order = make_order()
    bond_row(order, state=state)
    assert _trade_end_has_bonds(order.pk) is expected


def test_another_orders_bond_does_not_count():
    order, other = make_order(), make_order()
    bond_row(other, state="locked")
    assert _trade_end_has_bonds(order.pk) is False


def test_a_part_is_not_a_whole_bond():
    order = make_order()
    parent = bond_row(order, state="locked", role="maker", pubkey="a" * 64)
    Bond.objects.filter(pk=parent.pk).update(state="released")
    bond_row(order, state="locked", part="slice", parent_bond=parent, hash=None)
    assert _trade_end_has_bonds(order.pk) is False


def test_a_range_order_and_its_child_take_the_full_path():
    only_min = make_order(min_fiat_amount=10)
    assert _trade_end_has_bonds(only_min.pk) is False
    root = make_order(min_fiat_amount=10, max_fiat_amount=100)
    child = make_order(range_parent=root)
    assert (_trade_end_has_bonds(root.pk), _trade_end_has_bonds(child.pk)) == (True, True)


def test_a_missing_order_raises_as_the_full_read_did():
    order = make_order()
    missing = order.pk
    order.delete()
    with pytest.raises(Order.DoesNotExist):
        _trade_end_has_bonds(missing)
    with pytest.raises(Order.DoesNotExist), transaction.atomic():
        bonds_trade_end(order_id=missing, actor="lightning", reason="order success")


def test_a_plain_trade_end_is_one_statement():
    order = make_order()
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        bonds_trade_end(order_id=order.pk, actor="lightning", reason="order success")
    statements = [
        q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE", "BEGIN"))
    ]
    assert len(statements) == 1
    assert statements[0].startswith("SELECT")
    assert "EXISTS" in statements[0]


def test_a_bonded_trade_end_still_releases(fake_ln, node):
    order = make_order()
    bond = bond_row(order, state="locked", fake_ln=fake_ln)
    with transaction.atomic():
        bonds_trade_end(order_id=order.pk, actor="lightning", reason="order success")
    bond.refresh_from_db()
    assert bond.state == "released"
