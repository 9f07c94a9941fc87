"""Read-only dispute queries: the admin console, the REST API, the live feed and the Nostr gates."""

from datetime import timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from disputes.models import OPEN_DISPUTE_STATUSES, Dispute, DisputeLog
from nostrbridge.protocol.enums import DisputeInitiator
from nostrbridge.protocol.structs import RestoredDispute
from orders.models import Order, OrderStatusChange, Trader
from orders.services.amounts import buyer_payout_sats, seller_escrow_sats
from orders.services.session import identity_trade_index

AGE_BUCKETS = {
    "1h": (None, timedelta(hours=1)),
    "1d": (timedelta(hours=1), timedelta(days=1)),
    "7d": (timedelta(days=1), timedelta(days=7)),
    "older": (timedelta(days=7), None),
}


def solver_of_open_dispute(*, pubkey: str) -> bool:
    """The key is the assigned solver of a dispute still open."""
    return Dispute.objects.filter(solver_pubkey=pubkey, status__in=OPEN_DISPUTE_STATUSES).exists()


def restorable_disputes(*, identity: str) -> list[RestoredDispute]:
    """Open disputes of the identity's orders for `restore-session`, oldest first."""
    disputes = (
        Dispute.objects.filter(status__in=OPEN_DISPUTE_STATUSES)
        .filter(Q(order__master_buyer_pubkey=identity) | Q(order__master_seller_pubkey=identity))
        .select_related("order")
        .order_by("created_at", "id")
    )
    return [
        RestoredDispute(
            dispute_id=dispute.id,
            order_id=dispute.order_id,
            trade_index=identity_trade_index(dispute.order, identity),
            status=dispute.status,
            initiator=DisputeInitiator(dispute.initiator) if dispute.initiator else None,
            solver_pubkey=dispute.solver_pubkey,
        )
        for dispute in disputes
    ]


def dispute_queryset() -> QuerySet[Dispute]:
    return Dispute.objects.select_related("order").order_by("-created_at")


def dispute_filter(
    queryset: QuerySet[Dispute],
    *,
    status: str | None = None,
    solver_pubkey: str | None = None,
    unassigned: bool | None = None,
    fiat_code: str | None = None,
    age: str | None = None,
) -> QuerySet[Dispute]:
    if status:
        queryset = queryset.filter(status=status)
    if solver_pubkey:
        queryset = queryset.filter(solver_pubkey=solver_pubkey)
    if unassigned is not None:
        queryset = queryset.filter(solver_pubkey__isnull=unassigned)
    if fiat_code:
        queryset = queryset.filter(order__fiat_code__iexact=fiat_code)
    if age in AGE_BUCKETS:
        newest, oldest = AGE_BUCKETS[age]
        now = timezone.now()
        if newest is not None:
            queryset = queryset.filter(created_at__lte=now - newest)
        if oldest is not None:
            queryset = queryset.filter(created_at__gt=now - oldest)
    return queryset


def dispute_timeline(dispute: Dispute) -> list[dict]:
    """The order's status changes and the dispute's own actions, oldest first."""
    rows = [
        {
            "at": row.created_at,
            "what": f"order {row.from_status or '∅'} → {row.to_status}",
            "actor": row.actor,
            "why": row.reason,
        }
        for row in OrderStatusChange.objects.filter(order_id=dispute.order_id)
    ]
    rows += [
        {"at": row.created_at, "what": f"dispute {row.action}", "actor": row.actor, "why": ""}
        for row in DisputeLog.objects.filter(dispute=dispute)
    ]
    return sorted(rows, key=lambda row: row["at"])


def dispute_amounts(order: Order) -> dict:
    """What the escrow holds and where it goes in each outcome (integer sats)."""
    escrow = seller_escrow_sats(amount_sats=order.amount_sats, fee_sats=order.fee_sats)
    return {
        "amount_sats": order.amount_sats,
        "fee_sats": order.fee_sats,
        "escrow_sats": escrow,
        "buyer_payout_sats": buyer_payout_sats(amount_sats=order.amount_sats, fee_sats=order.fee_sats),
        "node_fee_sats": 2 * order.fee_sats,
        "seller_refund_sats": escrow,
        "fiat": f"{order.fiat_amount} {order.fiat_code}",
    }


def solvers() -> QuerySet[Trader]:
    return Trader.objects.filter(is_solver=True).order_by("pubkey")


def dispute_counters(*, solver_pubkey: str | None, now=None) -> dict[str, int]:
    """The queue's live counters: waiting for a solver, in progress, mine, resolved today."""
    now = now or timezone.now()
    rows = Dispute.objects.values_list("status", "solver_pubkey", "resolved_at")
    counts = {"unassigned": 0, "in_progress": 0, "mine": 0, "resolved_today": 0}
    for status, solver, resolved_at in rows.filter(
        Q(resolved_at__isnull=True) | Q(resolved_at__gte=now - timedelta(days=1))
    ):
        if status == "initiated":
            counts["unassigned"] += 1
        elif status == "in-progress":
            counts["in_progress"] += 1
            counts["mine"] += int(solver_pubkey is not None and solver == solver_pubkey)
        elif resolved_at is not None:
            counts["resolved_today"] += 1
    return counts
