"""The dev-fee job run twice at the same moment (real threads, real commits; SQLite and
PostgreSQL): the fund is paid once and one audit event is published."""

import threading

import pytest
from django.db import connection

from devfee import services
from devfee.models import DevFeePayment
from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.enums import Action
from orders.jobs import pay_pending_dev_fees
from orders.selectors import dev_fee_billable_orders
from tests.orders.trade_states import active_sell_trade

pytestmark = pytest.mark.django_db(transaction=True)


def _together(*targets) -> list:
    """Run each target in its own thread (own DB connection); results or exceptions."""
    results: list[object] = [None] * len(targets)

    def runner(i, target):
        try:
            results[i] = target()
        except Exception as exc:  # noqa: BLE001 - the test inspects what each side raised
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _gate(monkeypatch, name: str) -> None:
    """Hold `services.<name>` until both runs reached it (both saw the row as theirs to act on)."""
    real = getattr(services, name)
    barrier = threading.Barrier(2)

    def gated(*args, **kwargs):
        barrier.wait(timeout=20)
        return real(*args, **kwargs)

    monkeypatch.setattr(services, name, gated)


@pytest.fixture
def settled_row(node, fake_ln, fund):
    trade = active_sell_trade(fake_ln)
    trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
    trade.seller.send(Action.RELEASE, index=1, order_id=trade.order.id, request_id=5)
    assert services.dev_fee_rows_create(billable=dev_fee_billable_orders(limit=10)) == 1
    return DevFeePayment.objects.get(order=trade.order)


def _dev_sends(fake_ln, fund) -> int:
    return sum(1 for name, args in fake_ln.calls if name == "send_payment" and args["payment_request"] in fund.invoices)


def test_two_runs_at_once_pay_once(settled_row, fake_ln, fund, monkeypatch):
    _gate(monkeypatch, "dev_fee_claim")

    first, second = _together(pay_pending_dev_fees, pay_pending_dev_fees)

    assert sorted([first["paid"], second["paid"]]) == [0, 1], (first, second)
    assert sorted([first["skipped"], second["skipped"]]) == [0, 1]
    assert (len(fund.requests), _dev_sends(fake_ln, fund)) == (1, 1)
    row = DevFeePayment.objects.get(pk=settled_row.pk)
    assert (row.status, row.attempts) == ("paid", 1)
    assert OutboundMessage.objects.filter(kind=8383).count() == 1


def test_two_reconciliations_of_one_payment_record_it_once(settled_row, fake_ln, fund, monkeypatch):
    fake_ln.leave_next_payment_in_flight()
    assert services.dev_fee_pay(payment_id=settled_row.pk) == services.PENDING
    row = DevFeePayment.objects.get(pk=settled_row.pk)
    fake_ln.resolve_payment(row.payment_hash, succeed=True)
    _gate(monkeypatch, "_mark_paid")

    outcomes = _together(
        lambda: services.dev_fee_reconcile(payment_id=row.pk), lambda: services.dev_fee_reconcile(payment_id=row.pk)
    )

    assert sorted(outcomes) == [services.PAID, services.SKIPPED], outcomes
    assert (_dev_sends(fake_ln, fund), OutboundMessage.objects.filter(kind=8383).count()) == (1, 1)
    assert DevFeePayment.objects.get(pk=row.pk).status == "paid"
