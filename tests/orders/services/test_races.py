"""Money races with real threads and real commits (SQLite and PostgreSQL).

* release vs cooperative cancel: the guarded decision picks one, LND settles or cancels the
  escrow after it, never both, and the loser changes nothing and gets a cant-do;
* two `payout_start` at once: one claim, one payment.
"""

import threading
import time

import pytest
from django.db import OperationalError, connection

from lightning.types import InvoiceState
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from orders.models import Order, OrderStatusChange
from orders.services import cancel as cancel_service
from orders.services import payout as payout_service
from orders.services import release as release_service
from orders.services.cancel import order_cancel
from orders.services.payout import payout_start
from orders.services.release import order_release
from tests.orders.trade_states import active_sell_trade

pytestmark = pytest.mark.django_db(transaction=True)


def _run_together(*targets):
    """Run each target in its own thread (own DB connection); return results or exceptions."""
    results: list[object] = [None] * len(targets)

    def runner(i, target):
        try:
            results[i] = _waiting_for_locks(target)
        except Exception as exc:  # noqa: BLE001 - the test inspects what each side raised
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def _waiting_for_locks(target):
    """Call an idempotent service, retrying while SQLite reports a lock conflict.

    The SQLite test database is in memory with a shared cache, where a second writer gets
    "database table is locked" at once: busy_timeout does not cover shared-cache table
    locks. A file database (what the node runs) makes that writer wait instead; calling
    the service again from the start is the same wait, one level up. PostgreSQL row locks
    block, so nothing is retried there.
    """
    for _ in range(200):
        try:
            return target()
        except OperationalError as exc:
            if connection.vendor != "sqlite" or "locked" not in str(exc):
                raise
            time.sleep(0.01)
    raise AssertionError("still locked after 2 s")


def _gate(monkeypatch, module, name, barrier, delay=0.0):
    """Hold `module.name` until both racers reached it, so both passed their checks first.

    Only each thread's first call waits (a retried call must not wait for a partner).
    """
    real = getattr(module, name)
    seen = threading.local()

    def gated(*args, **kwargs):
        if not getattr(seen, "done", False):
            seen.done = True
            barrier.wait(timeout=10)
            if delay:
                time.sleep(delay)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, gated)


@pytest.fixture
def coop_pending(node, fake_ln):
    """fiat-sent, and the buyer has asked for a cooperative cancel: the seller may now either
    release or accept the cancel."""
    trade = active_sell_trade(fake_ln)
    trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
    trade.buyer.send(Action.CANCEL, index=1, order_id=trade.order.id, request_id=51)
    assert trade.refresh().cancel_initiator_pubkey == trade.buyer_key
    return trade


@pytest.mark.parametrize(
    ("_case", "release_delay", "cancel_delay"),
    [("release first", 0.0, 0.2), ("cancel first", 0.2, 0.0), ("no head start", 0.0, 0.0)],
)
def test_release_racing_cooperative_cancel_has_one_outcome(
    _case, release_delay, cancel_delay, coop_pending, fake_ln, monkeypatch
):
    trade = coop_pending
    barrier = threading.Barrier(2)
    # Both passed their checks and wait just before their decision (the guarded transition).
    _gate(monkeypatch, release_service, "escrow_ensure_held", barrier, release_delay)
    _gate(monkeypatch, cancel_service, "_cooperative_accept", barrier, cancel_delay)
    order_id, seller = trade.order.id, trade.seller_key

    released, canceled = _run_together(
        lambda: order_release(order_id=order_id, sender=seller, request_id=5),
        lambda: order_cancel(order_id=order_id, sender=seller, request_id=52),
    )

    order = Order.objects.get(pk=order_id)
    reached = set(OrderStatusChange.objects.filter(order=order).values_list("to_status", flat=True))
    hold = fake_ln.invoice_state(order.hold_invoice_hash)
    sends = [name for name, _ in fake_ln.calls if name == "send_payment"]
    if isinstance(canceled, CantDo):
        assert canceled.reason is CantDoReason.NOT_ALLOWED_BY_STATUS
        assert isinstance(released, Order)
        assert (order.status, hold, len(sends)) == ("success", InvoiceState.SETTLED, 1)
        assert "cooperatively-canceled" not in reached
    else:
        assert isinstance(released, CantDo), released  # never silence
        assert released.reason is CantDoReason.NOT_ALLOWED_BY_STATUS
        assert isinstance(canceled, Order)
        assert (order.status, hold, sends) == ("cooperatively-canceled", InvoiceState.CANCELED, [])
        assert not reached & {"settled-hold-invoice", "success"}
    if release_delay:
        assert order.status == "cooperatively-canceled"
    if cancel_delay:
        assert order.status == "success"


def test_concurrent_payout_starts_pay_once(node, fake_ln, monkeypatch):
    trade = active_sell_trade(fake_ln)
    trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
    fake_ln.fail_next_payment()
    trade.seller.send(Action.RELEASE, index=1, order_id=trade.order.id, request_id=5)  # payout runs after commit
    order = trade.refresh()
    assert (order.status, order.payout_payment_hash, order.payment_attempts) == ("settled-hold-invoice", None, 1)

    barrier = threading.Barrier(2)
    # Both workers have read the unclaimed order and resolved its invoice before either claims.
    _gate(monkeypatch, payout_service, "_resolve", barrier)
    outcomes = _run_together(
        lambda: payout_start(order_id=order.id, request_id=None),
        lambda: payout_start(order_id=order.id, request_id=None),
    )

    assert sorted(map(str, outcomes)) == ["skipped", "succeeded"], outcomes
    assert [name for name, _ in fake_ln.calls if name == "send_payment"] == ["send_payment", "send_payment"]
    assert trade.refresh().status == "success"
    changes = list(OrderStatusChange.objects.filter(order=order).values_list("to_status", flat=True))
    assert changes.count("success") == 1
