"""Read-only figures for the operator dashboard (selectors; no writes, no network).

Volume and fees count successful orders only (`success`): the node keeps 2 × fee of each
(buyer and seller share). A trade is dated by when it was taken, or created if never taken.
"""

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, F, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from devfee.models import DevFeePayment, DevFeeStatus
from disputes.models import OPEN_DISPUTE_STATUSES, Dispute
from nostrbridge.models import RelayHealth
from orders.models import Order
from orders.status import OrderStatus

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


def volume_by_day(*, days: int = 30, today: dt.date | None = None) -> list[DayVolume]:
    """One entry per day of the window (oldest first), zero-filled."""
    today = today or timezone.now().date()
    first = today - dt.timedelta(days=days - 1)
    rows = (
        _successful()
        .annotate(day=TruncDate(Coalesce("taken_at", "created_at"), tzinfo=dt.UTC))
        .filter(day__gte=first, day__lte=today)
        .values("day")
        .annotate(orders=Count("id"), sats=Sum("amount_sats"))
    )
    by_day = {row["day"]: row for row in rows}
    out = []
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        row = by_day.get(day)
        out.append(DayVolume(day, row["orders"], row["sats"]) if row else DayVolume(day, 0, 0))
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
