"""Operator limits per trader and taker requirements (docs/OPERATIONS.md §Policies).

Checked after the protocol's own checks of `new-order` and the takes, before any network call
or write: a refusal changes nothing. A trader is its identity key in reputation mode and its
trade key in full privacy (where that key is all there is, so a new key escapes a limit: the
operator who needs more sets taker requirements, which full-privacy takers never meet).

* `too_many_requests` (docs/PROTOCOL.md §Operator-policies): too many orders on the book, a take
  too soon after the last one, or the 24-hour volume cap reached.
* `not_authorized`: a take of an order above the threshold by a taker short of the required
  completed trades, rating or age here (the reason a ban gets too; the dashboard tells them apart).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Max, Q, Sum
from django.db.models.functions import Coalesce

from mostro_site.config import NodeConfig
from nostrbridge.protocol.enums import CantDoReason
from nostrbridge.protocol.errors import CantDo
from orders.models import Order
from orders.services.traders import trader_user_info
from orders.status import PRE_TRADE_STATUSES, OrderKind, OrderStatus

DAY = timedelta(days=1)
# An order that never became a trade does not count towards the daily volume.
NOT_TRADED = (OrderStatus.CANCELED, OrderStatus.EXPIRED)
OPEN_STATUSES = (*PRE_TRADE_STATUSES, OrderStatus.WAITING_MAKER_BOND)

MAX_OPEN_ORDERS = "max-open-orders"
TAKE_COOLDOWN = "take-cooldown"
DAILY_VOLUME = "daily-volume"
TAKER_REQUIREMENTS = "taker-requirements"
POLICIES = (MAX_OPEN_ORDERS, TAKE_COOLDOWN, DAILY_VOLUME, TAKER_REQUIREMENTS, "ban")


def _as_maker(key: str) -> Q:
    return Q(kind=OrderKind.SELL, master_seller_pubkey=key) | Q(kind=OrderKind.BUY, master_buyer_pubkey=key)


def _as_taker(key: str) -> Q:
    return Q(kind=OrderKind.SELL, master_buyer_pubkey=key) | Q(kind=OrderKind.BUY, master_seller_pubkey=key)


def traded_volume_sats(*, key: str, now: datetime) -> int:
    """Sats of the trader's orders made or taken in the last 24 hours (a market-priced order on
    the book counts from its take, when its amount is fixed)."""
    query = Order.objects.filter(Q(master_buyer_pubkey=key) | Q(master_seller_pubkey=key)).exclude(
        status__in=NOT_TRADED
    )
    query = query.annotate(moved_at=Coalesce("taken_at", "created_at")).filter(moved_at__gt=now - DAY)
    return int(query.aggregate(total=Sum("amount_sats"))["total"] or 0)


def _check_volume(*, key: str, amount_sats: int, config: NodeConfig, now: datetime) -> None:
    cap = config.daily_volume_sats
    if cap and traded_volume_sats(key=key, now=now) + amount_sats > cap:
        raise CantDo(CantDoReason.TOO_MANY_REQUESTS, policy=DAILY_VOLUME)


def policy_check_maker(*, key: str, amount_sats: int, config: NodeConfig, now: datetime) -> None:
    """`new-order`: the open-orders limit, then the daily volume with the order's sats (its
    fixed amount, or its highest quote for a market-priced order)."""
    limit = config.max_open_orders
    if limit and Order.objects.filter(_as_maker(key), status__in=OPEN_STATUSES).count() >= limit:
        raise CantDo(CantDoReason.TOO_MANY_REQUESTS, policy=MAX_OPEN_ORDERS)
    _check_volume(key=key, amount_sats=amount_sats, config=config, now=now)


def policy_check_taker(*, key: str, amount_sats: int, config: NodeConfig, now: datetime) -> None:
    """A take: the cooldown since the trader's last take, the daily volume, the requirements."""
    cooldown = config.take_cooldown_seconds
    if cooldown:
        last = Order.objects.filter(_as_taker(key), taken_at__isnull=False).aggregate(last=Max("taken_at"))["last"]
        if last is not None and now - last < timedelta(seconds=cooldown):
            raise CantDo(CantDoReason.TOO_MANY_REQUESTS, policy=TAKE_COOLDOWN)
    _check_volume(key=key, amount_sats=amount_sats, config=config, now=now)
    threshold = config.counterparty_threshold_sats
    if threshold and amount_sats > threshold and not taker_qualifies(key=key, config=config, now=now):
        raise CantDo(CantDoReason.NOT_AUTHORIZED, policy=TAKER_REQUIREMENTS)


@dataclass(frozen=True)
class TakerRecord:
    completed_trades: int
    rating: float
    age_days: int


def taker_record(*, key: str, now: datetime) -> TakerRecord:
    """What the requirements compare: successful trades here, the rating and the days since the
    record starts, as the node publishes them (`user-info`, the `rating` tag)."""
    info = trader_user_info(identity=key, now=now)
    completed = Order.objects.filter(
        Q(master_buyer_pubkey=key) | Q(master_seller_pubkey=key), status=OrderStatus.SUCCESS
    ).count()
    return TakerRecord(completed_trades=completed, rating=info.rating, age_days=info.operating_days)


def taker_qualifies(*, key: str, config: NodeConfig, now: datetime) -> bool:
    record = taker_record(key=key, now=now)
    return (
        record.completed_trades >= config.counterparty_min_trades
        and record.rating >= config.counterparty_min_rating
        and record.age_days >= config.counterparty_min_age_days
    )
