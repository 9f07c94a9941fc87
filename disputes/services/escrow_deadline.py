"""The escrow guardian's pass over one order (docs/PROTOCOL.md §Escrow-guardian).

The chain test and the `active` branch are order services (`orders.services.guardian`); the
`fiat-sent` branch opens the buyer's dispute, so the pass lives here, above both. The order's
move to `dispute` and the dispute's opening (or reopening) are one transaction.
"""

from datetime import datetime
from uuid import UUID

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from disputes.models import OPEN_DISPUTE_STATUSES, Dispute, DisputeInitiator, DisputeStatus
from disputes.services.open import dispute_notify_opened
from disputes.transitions import dispute_create, transition_dispute
from orders.models import Order
from orders.services import guardian
from orders.status import OrderStatus
from orders.transitions import transition_order


def escrow_deadline_enforce(*, order_id: UUID | str, tip_height: int, now: datetime | None = None) -> str:
    """Check one escrow against the chain tip and act when it is at risk; returns an outcome."""
    now = now or timezone.now()
    order = Order.objects.filter(pk=order_id).first()
    if order is None or order.status not in guardian.GUARDED_STATUSES or not order.hold_invoice_hash:
        return guardian.SKIPPED
    verdict = guardian.escrow_verdict(order, tip_height)
    if verdict != guardian.AT_RISK:
        return verdict
    if order.status == OrderStatus.ACTIVE:
        return guardian.order_cancel_at_risk_escrow(order, now)
    return _force_dispute(order, now)


def escrow_lost_force_dispute(*, order_id: UUID | str, now: datetime | None = None) -> str:
    """LND canceled the escrow of a `fiat-sent` order (orders reports it through its wiring):
    the buyer's dispute opens, as when the guardian finds the escrow gone."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None or order.status != OrderStatus.FIAT_SENT:
        return guardian.SKIPPED
    return _force_dispute(order, now or timezone.now())


def _force_dispute(order: Order, now: datetime) -> str:
    with transaction.atomic(durable=True):
        won = transition_order(
            order_id=order.pk,
            from_statuses=[OrderStatus.FIAT_SENT],
            to_status=OrderStatus.DISPUTE,
            actor=guardian.ACTOR,
            reason="escrow deadline: dispute opened for the buyer",
            set_fields={"buyer_dispute": True},
            guard=Q(hold_invoice_hash=order.hold_invoice_hash),
        )
        if not won:
            return guardian.SKIPPED
        dispute = _dispute_open_or_reopen(order, now)
        # As for a user's dispute, the order's 38383 is not republished (docs/PROTOCOL.md §Dispute).
        dispute_notify_opened(order, dispute, sender=order.buyer_pubkey or "", request_id=None)
    return guardian.DISPUTED


def _dispute_open_or_reopen(order: Order, now: datetime) -> Dispute:
    """The order's one dispute row, initiated by the buyer. Caller holds the order lock."""
    opened_by_buyer = {
        "initiator": DisputeInitiator.BUYER,
        "initiator_pubkey": order.buyer_pubkey or "",
        "order_previous_status": OrderStatus.FIAT_SENT,
    }
    existing = Dispute.objects.select_for_update().filter(order_id=order.pk).first()
    if existing is None:
        return dispute_create(order_id=order.pk, actor=guardian.ACTOR, now=now, **opened_by_buyer)
    if existing.status in OPEN_DISPUTE_STATUSES:
        return existing  # unreachable through the protocol; keep the solver's work
    fresh = {"solver_pubkey": None, "taken_at": None, "resolved_at": None, "created_at": now}
    reopened = transition_dispute(
        dispute=existing,
        from_statuses=[existing.status],
        to_status=DisputeStatus.INITIATED,
        actor=guardian.ACTOR,
        set_fields={**opened_by_buyer, **fresh},
        now=now,
    )
    if not reopened:  # the row is locked: only a bug elsewhere gets here
        raise RuntimeError(f"dispute {existing.pk} changed under its row lock")
    return existing
