"""The only code that writes `Order.status`.

A transition is a conditional UPDATE (`WHERE id = … AND status = <from> AND <guard>`), followed by
an audit row, all inside the caller's transaction. Zero rows changed means another writer won:
handlers answer `not_allowed_by_status`, jobs skip.

The UPDATE is the guard: it changes the row only if, when it runs, the row is in `<from>`, and
on PostgreSQL a concurrent writer's uncommitted change makes it wait for that row lock and
re-check its WHERE on the committed row (READ COMMITTED), so the loser changes nothing. The
status it tries first is known without a read: the only allowed one, or the status the caller
saw (`reload.status`) when several are allowed. Only when that attempt changes nothing and
other statuses are allowed does the locked read (`SELECT status … FOR UPDATE`) decide whether
the order sits in another allowed status, tried then. This saves the read on every trade step
(four statements a trade, docs/PERFORMANCE.md). SQLite ignores FOR UPDATE, but the node opens
IMMEDIATE transactions there, so every statement already runs under the database write lock.
"""

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from nostrbridge.guarded import select_locked_column, update_guarded, update_guarded_returning
from nostrbridge.statements import db_connection, insert_row
from orders.bonds.release import bonds_on_order_transition
from orders.live import order_changed_on_commit
from orders.models import Order, OrderStatusChange
from orders.selectors import order_fill, order_refresh
from orders.status import TERMINAL_STATUSES, OrderStatus, is_allowed_transition


class IllegalTransition(Exception):
    """A programming error: the state machine has no such move."""


def transition_order(
    *,
    order_id: UUID | str,
    from_statuses: Iterable[str],
    to_status: str,
    actor: str,
    reason: str,
    set_fields: dict[str, Any] | None = None,
    guard: Q | None = None,
    reload: Order | None = None,
) -> bool:
    """Move the order to `to_status` if it is in one of `from_statuses` (and matches `guard`).

    Must run inside `transaction.atomic()`. Returns True when this call won. With `reload` (the
    caller's instance of the order), a won transition leaves it as `order_refresh` would after
    the call: the guarded UPDATE returns the row where nothing else in the transition can
    write the order, saving the read after it.
    """
    if not db_connection().in_atomic_block:
        raise RuntimeError("transition_order must run inside transaction.atomic()")
    allowed = set(from_statuses)
    for status in allowed:
        if not is_allowed_transition(status, to_status):
            raise IllegalTransition(f"{status} -> {to_status}")
    # Plain SQL of the ORM's shape (`WHERE id = … AND status = <from> AND <guard>`): compiling it
    # on every trade step was a tenth of mostrod's CPU (docs/PERFORMANCE.md).
    values = {"status": to_status, "updated_at": timezone.now(), **(set_fields or {})}
    returning = reload is not None and not _bonds_may_act(to_status)
    first = _first_guess(allowed, reload)
    if first is None:
        current = select_locked_column(Order, pk=order_id, column="status")
        if current is None or current not in allowed:
            return False
        changed, returned = _update_from(order_id, current, guard=guard, values=values, returning=returning)
    else:
        current = first
        changed, returned = _update_from(order_id, current, guard=guard, values=values, returning=returning)
        if changed == 0 and len(allowed) > 1:
            # The caller's view was stale (or the guard failed): does the row sit in another allowed status?
            current = select_locked_column(Order, pk=order_id, column="status")
            if current is None or current == first or current not in allowed:
                return False
            changed, returned = _update_from(order_id, current, guard=guard, values=values, returning=returning)
    if changed == 0:
        return False
    # The audit row as a plain INSERT (the model has no save() or signals): every trade writes five.
    insert_row(
        OrderStatusChange,
        order_id=order_id,
        from_status=current,
        to_status=to_status,
        actor=actor[:80],
        reason=reason[:200],
    )
    # A trade's end releases its bonds in this same transaction (docs/PROTOCOL.md §Bonds).
    bonds_on_order_transition(order_id=order_id, from_status=current, to_status=to_status, actor=actor)
    order_changed_on_commit(order_id)  # staff pages (orders list, order page, dashboard) refresh
    if reload is not None:
        if returned:
            order_fill(reload, returned[0])
        else:
            order_refresh(reload)
    return True


def _first_guess(allowed: set[str], reload: Order | None) -> str | None:
    """The from-status to try the UPDATE with before any read (None: read first)."""
    if len(allowed) == 1:
        return next(iter(allowed))
    if reload is not None and reload.status in allowed:
        return reload.status
    return None


def _update_from(
    order_id: UUID | str, status: str, *, guard: Q | None, values: dict[str, Any], returning: bool
) -> tuple[int, list[Order] | None]:
    """The guarded UPDATE from `status`: its row count, and the row after it when `returning`."""
    where = {"pk": order_id, "status": status}
    if returning:
        return update_guarded_returning(Order, where=where, guard=guard, values=values)
    return update_guarded(Order, where=where, guard=guard, values=values), None


def _bonds_may_act(to_status: str) -> bool:
    """Could `bonds_on_order_transition` write anything for a move to `to_status` (its two cases,
    kept in step)? Then the order is read after it, not returned by the UPDATE."""
    return to_status in TERMINAL_STATUSES or to_status == OrderStatus.PENDING


def update_order_guarded(
    *, order_id: UUID | str, statuses: Iterable[str], set_fields: dict[str, Any], guard: Q | None = None
) -> bool:
    """Change non-status columns only while the order is still in one of `statuses`."""
    values = {"updated_at": timezone.now(), **set_fields}
    where = {"pk": order_id, "status__in": list(statuses)}
    return update_guarded(Order, where=where, guard=guard, values=values) == 1


def record_creation(*, order: Order, actor: str, reason: str) -> None:
    """Audit row for a freshly inserted order (there is no previous status)."""
    insert_row(OrderStatusChange, order_id=order.pk, from_status="", to_status=order.status, actor=actor, reason=reason)
    order_changed_on_commit(order.pk)


__all__ = ["IllegalTransition", "record_creation", "transaction", "transition_order", "update_order_guarded"]
