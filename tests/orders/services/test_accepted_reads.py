"""What a hold invoice's ACCEPTED report reads of the order (`orders.services.escrow.escrow_on_accepted`).

The order is read whole once, by its hash, to decide outside the transaction (a refund is a call
to LND); inside, under the lock, only the three columns the decision needs: the transition's
guarded UPDATE returns the row the replies are built from (eighth round: the locked read of the
whole row again was a third of the report's order reads).
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lightning.types import InvoiceState
from orders.escrow_watcher import invoice_on_update
from orders.services import escrow
from orders.services.cancel import order_cancel
from orders.services.escrow import escrow_on_accepted
from tests.guards.support import actions, after_first_call, audit_trail
from tests.orders.trade_states import taken_sell_trade

pytestmark = pytest.mark.django_db


def _order_selects(queries) -> list[str]:
    """The column list of every SELECT on the order table."""
    selects = [query["sql"] for query in queries if query["sql"].startswith("SELECT")]
    return [sql[len("SELECT ") : sql.index(" FROM ")] for sql in selects if ' FROM "orders_order"' in sql]


def test_an_accepted_report_reads_the_wide_row_once_and_three_columns_under_the_lock(node, fake_ln):
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    payment_hash = trade.order.hold_invoice_hash
    fake_ln.mark_accepted(payment_hash)

    with CaptureQueriesContext(connection) as queries:
        invoice_on_update(payment_hash_hex=payment_hash, state=InvoiceState.ACCEPTED)

    columns = _order_selects(queries)
    assert len(columns) == 2
    assert columns[0].count(",") > 30  # the whole row, by hash
    assert columns[1] == '"orders_order"."status", "orders_order"."invoice_held_at", "orders_order"."buyer_invoice"'
    order = trade.refresh()
    assert (order.status, order.invoice_held_at is not None) == ("active", True)
    assert audit_trail(order)[-1] == ("waiting-payment", "active")
    assert actions(trade.seller) == ["buyer-took-order"]
    assert actions(trade.buyer) == ["hold-invoice-payment-accepted"]


def test_an_accepted_report_for_an_escrow_already_recorded_changes_nothing(node, fake_ln):
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    payment_hash = trade.order.hold_invoice_hash
    fake_ln.mark_accepted(payment_hash)
    assert escrow_on_accepted(payment_hash_hex=payment_hash) is True
    actions(trade.seller), actions(trade.buyer)  # drain the first replies

    assert escrow_on_accepted(payment_hash_hex=payment_hash) is False

    assert [edge for edge in audit_trail(trade.order) if edge[1] == "active"] == [("waiting-payment", "active")]
    assert (actions(trade.seller), actions(trade.buyer)) == ([], [])


def test_an_order_canceled_after_the_refund_check_is_left_alone_by_the_locked_check(node, fake_ln, monkeypatch):
    # The maker cancels between the report's refund-row check and its lock, and nobody takes the
    # order again: the three columns read under the lock say `canceled`, so nothing moves and no
    # transition is even tried (a move from `canceled` to `active` is not an edge of the machine).
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    payment_hash, order_id, maker = trade.order.hold_invoice_hash, trade.order.id, trade.seller_key
    fake_ln.mark_accepted(payment_hash)
    before = audit_trail(trade.order)

    def cancel() -> None:
        order_cancel(order_id=order_id, sender=maker, request_id=60)
        trade.seller.replies(), trade.buyer.replies()

    after_first_call(monkeypatch, escrow, "escrow_refund_is_decided", cancel)
    assert escrow_on_accepted(payment_hash_hex=payment_hash) is False

    order = trade.refresh()
    assert (order.status, order.invoice_held_at) == ("canceled", None)
    assert audit_trail(order) == [*before, ("waiting-payment", "canceled")]
    assert (actions(trade.seller), actions(trade.buyer)) == ([], [])
