"""Builders for the guard tests.

Every test here makes a guard decide: a second claimant is run *between* the first one's read
and its guarded write, in the same thread, through a patched step (`after_first_call`,
`before_first_transaction`) or by
calling the lower-level service on a row another claimant already holds. Nothing is left to
the database's lock, so the tests decide the same way on SQLite and PostgreSQL.
"""

from collections.abc import Callable

from django.db import transaction

from nostrbridge.protocol.enums import Action
from orders.models import Order, OrderStatusChange
from tests.orders.trade_states import Trade, active_sell_trade
from tests.trade.harness import TradeClient, reset_seen


class _TransactionSeam:
    """Stands in for a module's `django.db.transaction`: `step` runs once, just before the
    module opens its first transaction (after its reads and its Lightning calls)."""

    def __init__(self, step: Callable[[], object]) -> None:
        self._step: Callable[[], object] | None = step

    def atomic(self, *args, **kwargs):
        step, self._step = self._step, None
        if step is not None:
            step()
        return transaction.atomic(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(transaction, name)


def before_first_transaction(monkeypatch, module, step: Callable[[], object]) -> None:
    """Run `step` (a competitor, or a crash) between `module`'s read and its transaction."""
    monkeypatch.setattr(module, "transaction", _TransactionSeam(step))


def after_first_call(monkeypatch, owner, name: str, competitor: Callable[[], object]) -> list:
    """Wrap `owner.name` so that its first call returns, then `competitor` runs, and only then
    the caller gets the (now stale) result. Returns the list the competitor's result lands in."""
    real = getattr(owner, name)
    ran: list = []

    def step(*args, **kwargs):
        result = real(*args, **kwargs)
        if not ran:
            ran.append(None)  # before the competitor: its own calls go straight through
            ran[0] = competitor()
        return result

    monkeypatch.setattr(owner, name, step)
    return ran


def fresh_trade(fake_ln, *, buyer_invoice: str | None = None) -> Trade:
    """An `active` sell trade between two new clients (so several can exist at once)."""
    return active_sell_trade(
        fake_ln, seller=TradeClient("seller"), buyer=TradeClient("buyer"), buyer_invoice=buyer_invoice
    )


def settled_trade(fake_ln, *, buyer_invoice: str | None = None, fresh: bool = True) -> Trade:
    """Released (`settled-hold-invoice`), the payout not started: its post-commit task is not run."""
    trade = fresh_trade(fake_ln, buyer_invoice=buyer_invoice) if fresh else active_sell_trade(fake_ln)
    trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
    trade.seller.send(Action.RELEASE, index=1, order_id=trade.order.id, request_id=5)
    order = trade.refresh()
    assert (order.status, order.payout_payment_hash) == ("settled-hold-invoice", None)
    reset_seen(trade.seller, trade.buyer)
    return trade


def row_state(order: Order, *fields: str) -> tuple:
    order.refresh_from_db()
    return tuple(getattr(order, name) for name in fields)


def audit_trail(order: Order) -> list[tuple[str, str]]:
    return list(OrderStatusChange.objects.filter(order=order).order_by("pk").values_list("from_status", "to_status"))


def actions(client: TradeClient) -> list[str]:
    return [reply.action for reply in client.replies()]


def payout_tasks(callbacks) -> int:
    """How many buyer payouts the captured on-commit callbacks would start."""
    return sum(1 for c in callbacks if getattr(c, "__qualname__", "").startswith("payout_schedule."))


def loses_to(monkeypatch, owner, name: str, competitor: Callable[[], object], action, error=Exception):
    """`action` runs with `competitor` slipped in after its `owner.name` step and must raise
    `error`; returns (the exception, the competitor's result)."""
    ran = after_first_call(monkeypatch, owner, name, competitor)
    try:
        action()
    except error as exc:
        return exc, ran[0]
    raise AssertionError(f"{action} won against a competitor that ran first")


def before_first_call(monkeypatch, owner, name: str, competitor: Callable[[], object]) -> list:
    """Wrap `owner.name` so that `competitor` runs just before its first call: used to slip a
    second actor between a decision's commit and the Lightning call that follows it."""
    real = getattr(owner, name)
    ran: list = []

    def step(*args, **kwargs):
        if not ran:
            ran.append(None)
            ran[0] = competitor()
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, step)
    return ran
