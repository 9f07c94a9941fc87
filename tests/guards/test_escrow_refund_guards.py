"""The escrow refund's own guards (docs/PROTOCOL.md §Escrow): the decision row, LND's answers.

Every write of `orders/services/escrow_refund.py` is made to reach its own refund row and no
other: a second refund decided for another order sits next to it, and is compared before and
after. A replayed decision keeps the first row; a confirmed refund is never confirmed again nor
retried; LND's answers (canceled, unknown, settled, down) are recorded exactly.
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction

from lightning.errors import AlreadySettledOrCanceled
from lightning.types import InvoiceState
from orders.models import EscrowRefund
from orders.services.escrow import escrow_settle
from orders.services.escrow_refund import (
    ALREADY_SETTLED,
    PENDING,
    REFUNDED,
    RETRY_BATCH,
    escrow_refund_decide,
    escrow_refund_execute,
    escrow_refund_is_decided,
    escrow_refunds_retry,
)
from tests.foundation.factories import make_order as factory_order
from tests.guards.support import fresh_trade

pytestmark = pytest.mark.django_db

CONFIRMED_BEFORE = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _row(refund: EscrowRefund) -> tuple:
    row = EscrowRefund.objects.get(pk=refund.pk)
    return (row.order_id, row.hold_invoice_hash, row.reason, row.attempts, row.confirmed_at)


def _decided(order, reason: str) -> EscrowRefund:
    with transaction.atomic():  # the decision's own transaction
        refund = escrow_refund_decide(order=order, reason=reason)
    assert refund is not None
    return refund


def _bystander() -> EscrowRefund:
    """Another order's refund, decided and not confirmed: no write below may touch it."""
    return _decided(factory_order(hold_invoice_hash="ee" * 32), "bystander")


# --- the decision ---------------------------------------------------------------------------------


def test_decision_records_the_hash_and_the_reason():
    order = factory_order(hold_invoice_hash="11" * 32)

    refund = _decided(order, "maker canceled")

    assert _row(refund) == (order.pk, "11" * 32, "maker canceled", 0, None)
    assert EscrowRefund.objects.count() == 1


def test_order_without_a_hold_invoice_decides_nothing():
    assert escrow_refund_decide(order=factory_order(hold_invoice_hash=None), reason="canceled") is None
    assert EscrowRefund.objects.count() == 0


def test_replayed_decision_keeps_the_first_row_among_others():
    order = factory_order(hold_invoice_hash="11" * 32)
    first = _decided(order, "first decision")
    other = _bystander()

    again = _decided(order, "second decision")

    assert again.pk == first.pk
    assert _row(first) == (order.pk, "11" * 32, "first decision", 0, None)
    assert _row(other) == (other.order_id, "ee" * 32, "bystander", 0, None)
    assert EscrowRefund.objects.count() == 2


def test_is_decided_asks_about_its_own_hash_only():
    _bystander()

    assert escrow_refund_is_decided(payment_hash_hex="ee" * 32) is True
    assert escrow_refund_is_decided(payment_hash_hex="11" * 32) is False


# --- the LND call -------------------------------------------------------------------------------


def test_execute_cancels_counts_the_attempt_and_confirms_its_own_row_only(node, fake_ln):
    order = fresh_trade(fake_ln).refresh()  # active: LND holds the seller's HTLC
    refund = _decided(order, "admin canceled")
    other = _bystander()

    assert escrow_refund_execute(refund) == REFUNDED

    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.CANCELED
    order_id, payment_hash, reason, attempts, confirmed_at = _row(refund)
    assert (order_id, payment_hash, reason, attempts) == (order.pk, order.hold_invoice_hash, "admin canceled", 1)
    assert confirmed_at is not None
    assert _row(other) == (other.order_id, "ee" * 32, "bystander", 0, None)


def test_nothing_decided_calls_nothing(fake_ln):
    assert escrow_refund_execute(None) is None
    assert fake_ln.calls == []


def test_invoice_unknown_to_lnd_is_refunded_and_confirmed(fake_ln):
    refund = _decided(factory_order(hold_invoice_hash="11" * 32), "taker canceled")

    assert escrow_refund_execute(refund) == REFUNDED

    assert _row(refund)[3] == 1
    assert _row(refund)[4] is not None
    assert [name for name, _ in fake_ln.calls] == ["cancel_invoice"]


def test_node_down_counts_the_attempt_and_leaves_the_refund_unconfirmed(node, fake_ln):
    order = fresh_trade(fake_ln).refresh()
    refund = _decided(order, "admin canceled")
    fake_ln.set_unavailable(True)
    try:
        assert escrow_refund_execute(refund) == PENDING
        assert escrow_refund_execute(refund) == PENDING
    finally:
        fake_ln.set_unavailable(False)

    assert _row(refund) == (order.pk, order.hold_invoice_hash, "admin canceled", 2, None)
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.ACCEPTED


def test_invoice_lnd_already_canceled_is_refunded(node, fake_ln, monkeypatch):
    order = fresh_trade(fake_ln).refresh()
    refund = _decided(order, "admin canceled")

    def already_canceled(**kwargs):
        raise AlreadySettledOrCanceled("invoice already canceled", code="UNKNOWN", details="invoice already canceled")

    monkeypatch.setattr(fake_ln, "cancel_invoice", already_canceled)

    assert escrow_refund_execute(refund) == REFUNDED
    assert _row(refund)[3] == 1
    assert _row(refund)[4] is not None


def test_invoice_lnd_already_settled_is_reported_and_never_retried(node, fake_ln):
    # A settle without its own decision is a bug elsewhere: reported, confirmed (nothing left
    # to cancel), so the sweep does not ask LND about it forever.
    order = fresh_trade(fake_ln).refresh()
    escrow_settle(order=order)
    refund = _decided(order, "admin canceled")

    assert escrow_refund_execute(refund) == ALREADY_SETTLED

    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.SETTLED
    assert _row(refund)[3] == 1
    assert _row(refund)[4] is not None
    fake_ln.calls.clear()
    assert escrow_refunds_retry() == 0
    assert fake_ln.calls == []


def test_confirmed_refund_executed_again_keeps_its_first_confirmation(node, fake_ln):
    # A replayed decision returns the confirmed row; executing it again changes nothing LND
    # said before (`confirmed_at` is the first confirmation).
    order = fresh_trade(fake_ln).refresh()
    refund = _decided(order, "admin canceled")
    assert escrow_refund_execute(refund) == REFUNDED
    EscrowRefund.objects.filter(pk=refund.pk).update(confirmed_at=CONFIRMED_BEFORE)

    assert escrow_refund_execute(_decided(order, "replayed")) == REFUNDED

    assert _row(refund) == (order.pk, order.hold_invoice_hash, "admin canceled", 2, CONFIRMED_BEFORE)


# --- the sweep --------------------------------------------------------------------------------------


def test_sweep_retries_unconfirmed_refunds_only(node, fake_ln):
    confirmed_order = fresh_trade(fake_ln).refresh()
    confirmed = _decided(confirmed_order, "confirmed")
    assert escrow_refund_execute(confirmed) == REFUNDED
    EscrowRefund.objects.filter(pk=confirmed.pk).update(confirmed_at=CONFIRMED_BEFORE)
    pending = _bystander()
    fake_ln.calls.clear()

    assert escrow_refunds_retry() == 1

    assert fake_ln.calls == [("cancel_invoice", {"payment_hash": "ee" * 32})]
    assert _row(confirmed) == (confirmed_order.pk, confirmed_order.hold_invoice_hash, "confirmed", 1, CONFIRMED_BEFORE)
    assert _row(pending)[3] == 1
    assert _row(pending)[4] is not None


def test_sweep_takes_one_batch_of_the_oldest_refunds():
    refunds = [_decided(factory_order(hold_invoice_hash=f"{n:064x}"), f"refund {n}") for n in range(RETRY_BATCH + 1)]
    for age, refund in enumerate(refunds):  # the first decided is the newest: order by time, not by id
        EscrowRefund.objects.filter(pk=refund.pk).update(created_at=CONFIRMED_BEFORE - timedelta(seconds=age))

    assert RETRY_BATCH == 50
    assert escrow_refunds_retry() == 50

    assert [_row(r)[3] for r in refunds] == [0] + [1] * 50
    assert _row(refunds[0])[4] is None
    assert escrow_refunds_retry() == 1
    assert _row(refunds[0])[3] == 1
