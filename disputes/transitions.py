"""The only code that writes a dispute: its creation and every change of `Dispute.status`.

As `orders/transitions.py` does for orders: a conditional UPDATE (`WHERE status = <seen>` plus
any invariant guard) inside the caller's short transaction, then, when it won, a `DisputeLog`
row and the 38386 revision (whose outbox row commits with the change; it also pushes the change
to the staff pages after commit). Zero rows changed means another writer won: the caller
answers or skips, nothing was logged or published. Callers that must also move the order do
both inside one transaction, so each money step stays a single guarded change.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from disputes.events import publish_dispute_event
from disputes.models import OPEN_DISPUTE_STATUSES, Dispute, DisputeLog, DisputeLogAction, DisputeStatus

S = DisputeStatus

# Spelled out row by row (no shared "closed" set): each edge is one element a test pins.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    # Taken by a solver (or the node); settled or refunded by a solver, or closed by the parties
    # themselves: `released` (the seller released), `cooperatively-canceled`.
    S.INITIATED: frozenset({S.IN_PROGRESS, S.SETTLED, S.SELLER_REFUNDED, S.RELEASED, S.COOPERATIVELY_CANCELED}),
    # Re-taken by its solver, taken over (read-write over read-only, or the node), or closed.
    S.IN_PROGRESS: frozenset({S.IN_PROGRESS, S.SETTLED, S.SELLER_REFUNDED, S.RELEASED, S.COOPERATIVELY_CANCELED}),
    # A closed dispute is reopened for the buyer by the escrow guardian (one dispute per order).
    S.SETTLED: frozenset({S.INITIATED}),
    S.SELLER_REFUNDED: frozenset({S.INITIATED}),
    S.RELEASED: frozenset({S.INITIATED}),
    S.COOPERATIVELY_CANCELED: frozenset({S.INITIATED}),
}

# What the log says about a move, by its target status.
LOG_ACTIONS: dict[str, str] = {
    S.INITIATED: DisputeLogAction.OPENED,
    S.IN_PROGRESS: DisputeLogAction.TAKEN,
    S.SETTLED: DisputeLogAction.SETTLED,
    S.SELLER_REFUNDED: DisputeLogAction.REFUNDED,
    S.RELEASED: DisputeLogAction.RELEASED,
    S.COOPERATIVELY_CANCELED: DisputeLogAction.COOP_CANCELED,
}


class IllegalDisputeTransition(Exception):
    """A programming error: the dispute state machine has no such move."""


def is_allowed_dispute_transition(from_status: str, to_status: str) -> bool:
    return to_status in ALLOWED_TRANSITIONS.get(from_status, frozenset())


def dispute_create(
    *,
    order_id: UUID | str,
    initiator: str,
    initiator_pubkey: str,
    order_previous_status: str,
    actor: str,
    now: datetime | None = None,
) -> Dispute:
    """Insert the order's one dispute (`initiated`), log it and publish its 38386.

    Must run inside the caller's transaction, which holds the order's transition to `dispute`.
    The insert runs in a savepoint: a concurrent dispute for the same order (the unique order
    link) raises `IntegrityError` and leaves the caller's transaction usable.
    """
    _require_transaction("dispute_create")
    with transaction.atomic():
        dispute = Dispute.objects.create(
            order_id=order_id,
            initiator=initiator,
            initiator_pubkey=initiator_pubkey,
            order_previous_status=order_previous_status,
        )
    _record(dispute, to_status=S.INITIATED, actor=actor, now=now)
    return dispute


def transition_dispute(
    *,
    dispute: Dispute,
    from_statuses: Iterable[str],
    to_status: str,
    actor: str,
    set_fields: dict[str, Any] | None = None,
    guard: Q | None = None,
    now: datetime | None = None,
) -> bool:
    """Move `dispute` to `to_status` if it is still in one of `from_statuses` (and matches `guard`).

    Must run inside `transaction.atomic()`. Returns True when this call won; then `dispute` is
    refreshed, the log row written (`actor`: a pubkey, "admin:<username>" or "scheduler") and
    the 38386 revision queued. `now` (default: the current time) stamps `updated_at` and the
    event's expiration.
    """
    _require_transaction("transition_dispute")
    allowed = frozenset(from_statuses)
    for status in allowed:
        if not is_allowed_dispute_transition(status, to_status):
            raise IllegalDisputeTransition(f"{status} -> {to_status}")
    query = Dispute.objects.filter(pk=dispute.pk, status__in=allowed)
    if guard is not None:
        query = query.filter(guard)
    changed = query.update(status=to_status, updated_at=now or timezone.now(), **(set_fields or {}))
    if changed == 0:
        return False
    dispute.refresh_from_db()
    _record(dispute, to_status=to_status, actor=actor, now=now)
    return True


def dispute_close(*, dispute: Dispute, to_status: str, actor: str) -> bool:
    """Close an open dispute (a solver's `settled`/`seller-refunded`, the parties' `released`/
    `cooperatively-canceled`), stamping `resolved_at`."""
    now = timezone.now()
    return transition_dispute(
        dispute=dispute,
        from_statuses=OPEN_DISPUTE_STATUSES,
        to_status=to_status,
        actor=actor,
        set_fields={"resolved_at": now},
        now=now,
    )


def _record(dispute: Dispute, *, to_status: str, actor: str, now: datetime | None) -> None:
    DisputeLog.objects.create(dispute=dispute, action=LOG_ACTIONS[to_status], actor=actor[:80])
    publish_dispute_event(dispute=dispute, now=None if now is None else int(now.timestamp()))


def _require_transaction(name: str) -> None:
    if not connection.in_atomic_block:
        raise RuntimeError(f"{name} must run inside transaction.atomic()")
