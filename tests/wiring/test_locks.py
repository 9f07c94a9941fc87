"""The guarded transitions lock or conditionally update their row, read at the SQL level.

A behavioural race test passes by luck when the threads do not interleave; a missing
`FOR UPDATE` or a dropped `WHERE status = …` only shows in the statements sent. So these tests
capture the SQL on PostgreSQL (where `SELECT … FOR UPDATE` is real; SQLite serialises writers with
IMMEDIATE transactions instead) and assert its shape, as saleor's `assert_locks_rows_before_write`.
"""

import re
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from disputes.models import Dispute, DisputeStatus
from disputes.transitions import dispute_create, transition_dispute
from nostrbridge.protocol.keys import Keys
from orders.models import Order, OrderStatusChange, Trader
from orders.services.release import order_mark_fiat_sent
from orders.services.traders import trader_bump_trade_index
from orders.status import OrderStatus
from orders.transitions import transition_order, update_order_guarded
from tests.foundation.factories import make_order

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are only real on PostgreSQL"),
    pytest.mark.django_db(transaction=True),
]

# Real keys: the service encrypts its replies to them.
BUYER, SELLER = Keys.generate().public_key_hex, Keys.generate().public_key_hex


def _statements(captured: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in captured.captured_queries]


def assert_locks_rows_before_write(statements: list[str], *, table: str, pk) -> None:
    """Exactly one `SELECT … FOR UPDATE` of the row, before the status UPDATE of that row, and the
    UPDATE still guarded by the status it read."""
    pk_text = pk.hex  # PostgreSQL's SQL shows a UUID parameter as '<hex>'::uuid
    locks = [i for i, sql in enumerate(statements) if _is_lock(sql, table, pk_text)]
    writes = [i for i, sql in enumerate(statements) if _is_status_update(sql, table, pk_text)]
    assert len(writes) == 1, statements
    assert len(locks) == 1, statements
    assert locks[0] < writes[0], statements
    assert_conditional_update(statements[writes[0]], table=table)


def assert_conditional_update(sql: str, *, table: str) -> None:
    """The UPDATE names the status (or statuses) it may change from in its WHERE clause."""
    where = sql.split(" WHERE ", 1)[1]
    assert re.search(rf'"{table}"\."status" (=|IN) ', where), sql


def _is_lock(sql: str, table: str, pk: str) -> bool:
    return sql.startswith("SELECT") and f'FROM "{table}"' in sql and sql.rstrip().endswith("FOR UPDATE") and pk in sql


def _is_status_update(sql: str, table: str, pk: str) -> bool:
    return sql.startswith(f'UPDATE "{table}" SET') and '"status" = ' in sql.split(" WHERE ")[0] and pk in sql


def _active_order() -> Order:
    return make_order(
        status=OrderStatus.ACTIVE,
        buyer_pubkey=BUYER,
        master_buyer_pubkey=BUYER,
        seller_pubkey=SELLER,
        master_seller_pubkey=SELLER,
        creator_pubkey=SELLER,
        taken_at=timezone.now() - timedelta(minutes=1),
    )


def assert_one_guarded_update(statements: list[str], *, pk, from_status: str) -> None:
    """No status read of the row: exactly one status UPDATE of it, guarded by `from_status`."""
    pk_text = pk.hex
    assert [sql for sql in statements if _is_lock(sql, "orders_order", pk_text)] == [], statements
    [update] = [sql for sql in statements if _is_status_update(sql, "orders_order", pk_text)]
    assert_conditional_update(update, table="orders_order")
    assert f'"orders_order"."status" = \'{from_status}\'' in update.split(" WHERE ", 1)[1], update


def test_transition_order_from_one_status_is_one_conditional_update():
    # The UPDATE's WHERE is the guard (it waits on a concurrent writer's row lock and re-checks,
    # below): the locked read before it would only repeat it.
    order = _active_order()
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        assert transition_order(
            order_id=order.pk,
            from_statuses=[OrderStatus.ACTIVE],
            to_status=OrderStatus.FIAT_SENT,
            actor=BUYER,
            reason="test",
        )
    assert_one_guarded_update(_statements(captured), pk=order.pk, from_status=OrderStatus.ACTIVE)


def test_transition_order_from_a_stale_view_locks_the_row_then_updates_it_conditionally():
    # Several allowed statuses, the caller saw `fiat-sent`, the row is in `dispute`: the first
    # UPDATE changes nothing, then the row is locked, read, and updated from what it holds.
    order = _active_order()
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.DISPUTE)
    order.status = OrderStatus.FIAT_SENT
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        assert transition_order(
            order_id=order.pk,
            from_statuses=[OrderStatus.FIAT_SENT, OrderStatus.DISPUTE],
            to_status=OrderStatus.SETTLED_HOLD_INVOICE,
            actor=SELLER,
            reason="test",
            reload=order,
        )
    statements = _statements(captured)
    pk_text = order.pk.hex
    updates = [i for i, sql in enumerate(statements) if _is_status_update(sql, "orders_order", pk_text)]
    assert len(updates) == 2, statements
    assert_locks_rows_before_write(statements[updates[0] + 1 :], table="orders_order", pk=order.pk)
    assert order.status == Order.objects.get(pk=order.pk).status == OrderStatus.SETTLED_HOLD_INVOICE


def test_a_service_transition_keeps_the_guard(node):
    # The fiat-sent service end to end: its replies and order event come after the guarded write.
    order = _active_order()
    with CaptureQueriesContext(connection) as captured:
        order_mark_fiat_sent(order_id=order.pk, sender=BUYER, request_id=1)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.FIAT_SENT
    assert_one_guarded_update(_statements(captured), pk=order.pk, from_status=OrderStatus.ACTIVE)


def test_a_transition_waiting_on_a_concurrent_writer_loses_cleanly():
    """Real row locks: a second transaction's transition from `active` blocks on the first one's
    uncommitted move, then re-checks its WHERE on the committed row and changes nothing."""
    order = _active_order()
    first_moved, commit_first = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def first():
        try:
            with transaction.atomic():
                results["first"] = transition_order(
                    order_id=order.pk,
                    from_statuses=[OrderStatus.ACTIVE],
                    to_status=OrderStatus.FIAT_SENT,
                    actor=BUYER,
                    reason="first",
                )
                first_moved.set()
                commit_first.wait(timeout=10)
        finally:
            connection.close()

    def second():
        try:
            first_moved.wait(timeout=10)
            with transaction.atomic():
                results["second"] = transition_order(
                    order_id=order.pk,
                    from_statuses=[OrderStatus.ACTIVE],
                    to_status=OrderStatus.CANCELED,
                    actor=SELLER,
                    reason="second",
                )
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    assert first_moved.wait(timeout=10)
    time.sleep(0.3)
    assert threads[1].is_alive()  # the second UPDATE waits on the first one's row lock
    commit_first.set()
    for thread in threads:
        thread.join(timeout=10)

    assert results == {"first": True, "second": False}
    assert Order.objects.get(pk=order.pk).status == OrderStatus.FIAT_SENT
    assert list(OrderStatusChange.objects.filter(order=order).values_list("from_status", "to_status", "reason")) == [
        (OrderStatus.ACTIVE, OrderStatus.FIAT_SENT, "first")
    ]


def test_update_order_guarded_is_a_conditional_update():
    order = _active_order()
    with CaptureQueriesContext(connection) as captured:
        assert update_order_guarded(
            order_id=order.pk,
            statuses=[OrderStatus.ACTIVE],
            set_fields={"cancel_initiator_pubkey": BUYER},
            guard=Q(cancel_initiator_pubkey__isnull=True),
        )
    [update] = [sql for sql in _statements(captured) if sql.startswith('UPDATE "orders_order"')]
    assert_conditional_update(update, table="orders_order")
    assert '"cancel_initiator_pubkey" IS NULL' in update


def test_transition_dispute_is_a_conditional_update():
    order = _active_order()
    with transaction.atomic():
        dispute = dispute_create(
            order_id=order.pk, initiator="buyer", initiator_pubkey=BUYER, order_previous_status="active", actor=BUYER
        )
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        assert transition_dispute(
            dispute=dispute,
            from_statuses=[DisputeStatus.INITIATED],
            to_status=DisputeStatus.IN_PROGRESS,
            actor=SELLER,
            set_fields={"solver_pubkey": SELLER},
        )
    [update] = [sql for sql in _statements(captured) if sql.startswith('UPDATE "disputes_dispute"')]
    assert_conditional_update(update, table="disputes_dispute")
    assert Dispute.objects.get(pk=dispute.pk).status == DisputeStatus.IN_PROGRESS


def test_the_trade_index_bump_never_lowers_the_stored_index():
    Trader.objects.create(pubkey=BUYER, last_trade_index=3)
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        trader_bump_trade_index(identity=BUYER, sender=SELLER, trade_index=7)
    [update] = [sql for sql in _statements(captured) if sql.startswith('UPDATE "orders_trader"')]
    assert '"orders_trader"."last_trade_index" < 7' in update
    assert Trader.objects.get(pk=BUYER).last_trade_index == 7


def test_the_helper_refuses_a_write_without_a_lock():
    # The assertion itself must fail on the unguarded pattern it exists to catch.
    order = _active_order()
    with CaptureQueriesContext(connection) as captured:
        Order.objects.filter(pk=order.pk).update(status=OrderStatus.FIAT_SENT)
    with pytest.raises(AssertionError):
        assert_locks_rows_before_write(_statements(captured), table="orders_order", pk=order.pk)
