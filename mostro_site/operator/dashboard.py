"""Read-only figures for the operator dashboard (selectors; no writes, no network).

Volume and fees count successful orders only (`success`): the node keeps 2 × fee of each
(buyer and seller share). A trade is dated by when it was taken, or created if never taken.
"""

import datetime as dt
import statistics
from dataclasses import dataclass

from django.db.models import Count, F, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from devfee.models import DevFeePayment, DevFeeStatus
from disputes.models import OPEN_DISPUTE_STATUSES, Dispute
from nostrbridge.models import RelayHealth
from orders.models import Order
from orders.status import ESCROW_LOCKED_STATUSES, OrderStatus

DEV_FEE_AUDIT_KIND = 8383
RECENT_DEV_FEES = 20


@dataclass(frozen=True)
class DayVolume:
    day: dt.date
    orders: int
    sats: int


@dataclass(frozen=True)
class CurrencyVolume:
    fiat_code: str
    orders: int
    fiat_amount: int
    sats: int


@dataclass(frozen=True)
class OpenDispute:
    dispute: Dispute
    age: dt.timedelta


def _successful():
    return Order.objects.filter(status=OrderStatus.SUCCESS)


def orders_by_status() -> list[tuple[str, int]]:
    """(status, count) in the protocol's status order, only statuses that occur."""
    counts = dict(Order.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return [(status, counts[status]) for status in OrderStatus.values if counts.get(status)]


def _per_day(queryset, date_expr, *, days: int, today: dt.date | None, **aggregates) -> list[tuple[dt.date, dict]]:
    """(day, {aggregate: value}) for each day of the window, oldest first, zero-filled."""
    today = today or timezone.now().date()
    first = today - dt.timedelta(days=days - 1)
    rows = (
        queryset.annotate(day=TruncDate(date_expr, tzinfo=dt.UTC))
        .filter(day__gte=first, day__lte=today)
        .values("day")
        .annotate(**aggregates)
    )
    by_day = {row["day"]: row for row in rows}
    empty = dict.fromkeys(aggregates, 0)
    return [
        (day, {name: by_day.get(day, empty)[name] or 0 for name in aggregates})
        for day in (first + dt.timedelta(days=offset) for offset in range(days))
    ]


def volume_by_day(*, days: int = 30, today: dt.date | None = None) -> list[DayVolume]:
    """One entry per day of the window (oldest first), zero-filled."""
    rows = _per_day(
        _successful(), Coalesce("taken_at", "created_at"), days=days, today=today,
        orders=Count("id"), sats=Sum("amount_sats"),
    )  # fmt: skip
    return [DayVolume(day, row["orders"], row["sats"]) for day, row in rows]


def fees_by_day(*, days: int = 30, today: dt.date | None = None) -> list[tuple[dt.date, int]]:
    """The node's fee income per day (2 × fee of each successful order, dated like the volume)."""
    rows = _per_day(_successful(), Coalesce("taken_at", "created_at"), days=days, today=today, fees=Sum("fee_sats"))
    return [(day, 2 * row["fees"]) for day, row in rows]


def disputes_by_day(*, days: int = 30, today: dt.date | None = None) -> list[tuple[dt.date, int]]:
    rows = _per_day(Dispute.objects.all(), "created_at", days=days, today=today, opened=Count("id"))
    return [(day, row["opened"]) for day, row in rows]


@dataclass(frozen=True)
class Resolution:
    count: int
    median: dt.timedelta | None
    mean: dt.timedelta | None
    longest: dt.timedelta | None


def resolution_times(*, days: int = 30, now: dt.datetime | None = None) -> Resolution:
    """How long disputes resolved in the window waited, opened → resolved."""
    now = now or timezone.now()
    rows = Dispute.objects.filter(resolved_at__gte=now - dt.timedelta(days=days)).values_list(
        "created_at", "resolved_at"
    )
    # `resolved_at__gte` already leaves out unresolved disputes.
    seconds = sorted((resolved - created).total_seconds() for created, resolved in rows if resolved is not None)
    if not seconds:
        return Resolution(0, None, None, None)
    as_delta = lambda value: dt.timedelta(seconds=round(value))  # noqa: E731
    return Resolution(len(seconds), as_delta(statistics.median(seconds)), as_delta(statistics.fmean(seconds)),
                      as_delta(seconds[-1]))  # fmt: skip


@dataclass(frozen=True)
class Amount:
    count: int
    sats: int


def escrow_now() -> Amount:
    """Sats locked in sellers' hold invoices right now (amount + the seller's fee)."""
    rows = Order.objects.filter(status__in=ESCROW_LOCKED_STATUSES, invoice_held_at__isnull=False)
    totals = rows.aggregate(n=Count("id"), sats=Sum(F("amount_sats") + F("fee_sats")))
    return Amount(totals["n"] or 0, totals["sats"] or 0)


def payouts() -> dict[str, Amount]:
    """Buyer payouts owed (escrow settled, buyer not paid yet): in flight, failed, waiting."""
    owed = Order.objects.filter(status=OrderStatus.SETTLED_HOLD_INVOICE)
    groups = {
        "in_flight": owed.filter(payout_payment_hash__isnull=False),
        "failed": owed.filter(payout_payment_hash__isnull=True, failed_payment=True),
        "waiting": owed.filter(payout_payment_hash__isnull=True, failed_payment=False),
    }
    out = {}
    for name, rows in groups.items():
        totals = rows.aggregate(n=Count("id"), sats=Sum(F("amount_sats") - F("fee_sats")))
        out[name] = Amount(totals["n"] or 0, totals["sats"] or 0)
    return out


def volume_by_currency() -> list[CurrencyVolume]:
    rows = (
        _successful()
        .values("fiat_code")
        .annotate(orders=Count("id"), fiat=Sum("fiat_amount"), sats=Sum("amount_sats"))
        .order_by("-sats", "fiat_code")
    )
    return [CurrencyVolume(r["fiat_code"], r["orders"], r["fiat"] or 0, r["sats"] or 0) for r in rows]


def fees_earned_sats() -> int:
    return 2 * (_successful().aggregate(total=Sum("fee_sats"))["total"] or 0)


def dev_fees_paid() -> tuple[int, int, list[DevFeePayment]]:
    """(count, sats) of paid dev fees, and the most recent payments."""
    paid = DevFeePayment.objects.filter(status=DevFeeStatus.PAID)
    totals = paid.aggregate(n=Count("id"), sats=Sum("amount_sats"))
    recent = list(paid.order_by(F("paid_at").desc(nulls_last=True), "-id")[:RECENT_DEV_FEES])
    return totals["n"] or 0, totals["sats"] or 0, recent


def open_disputes(*, now: dt.datetime | None = None) -> list[OpenDispute]:
    """Open disputes, oldest first: the ones waiting longest need a solver first."""
    now = now or timezone.now()
    rows = Dispute.objects.filter(status__in=OPEN_DISPUTE_STATUSES).select_related("order").order_by("created_at")
    return [OpenDispute(row, now - row.created_at) for row in rows]


def relay_health() -> list[RelayHealth]:
    return list(RelayHealth.objects.order_by("relay_url"))
