"""The automatic ban (docs/OPERATIONS.md §Policies): a trader who lost `auto_ban_disputes_lost`
disputes within `auto_ban_window_days` days is banned, off by default (0).

Runs after a resolution committed, outside its transaction: the money decision is recorded
first, and whatever happens here can never undo it (a failure is logged, the resolution stands).
"""

import logging
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from disputes.models import Dispute, DisputeStatus
from mostro_site.config import node_config
from orders.models import Ban, Order
from orders.services.bans import BanConflict, active_ban, ban_create

logger = logging.getLogger(__name__)
AUTO_BAN_ACTOR = "auto:disputes-lost"


def disputes_lost(*, key: str, since: datetime) -> int:
    """Disputes resolved against `key` (identity, or trade key in full privacy) since `since`:
    settled to the buyer when it sold, refunded to the seller when it bought."""
    return Dispute.objects.filter(
        (Q(order__master_seller_pubkey=key) & Q(status=DisputeStatus.SETTLED))
        | (Q(order__master_buyer_pubkey=key) & Q(status=DisputeStatus.SELLER_REFUNDED)),
        resolved_at__gte=since,
    ).count()


def auto_ban_after_resolution(*, order: Order, loser: str, now: datetime | None = None) -> Ban | None:
    """Ban the losing party (`"buyer"` or `"seller"`) when it reached the limit; None otherwise."""
    try:
        return _auto_ban(order=order, loser=loser, now=now or timezone.now())
    except Exception:  # noqa: BLE001 — the resolution already committed; never fail it from here
        logger.exception("automatic ban check failed for order %s", order.pk)
        return None


def _auto_ban(*, order: Order, loser: str, now: datetime) -> Ban | None:
    config = node_config()
    limit, days = config.auto_ban_disputes_lost, config.auto_ban_window_days
    key = order.master_seller_pubkey if loser == "seller" else order.master_buyer_pubkey
    if not limit or not key or active_ban(key, now=now) is not None:
        return None
    lost = disputes_lost(key=key, since=now - timedelta(days=days))
    if lost < limit:
        return None
    try:
        ban = ban_create(pubkey=key, reason=f"lost {lost} disputes in {days} days", actor=AUTO_BAN_ACTOR, now=now)
    except BanConflict:
        return None  # banned meanwhile
    logger.info("automatic ban of %s: lost %d disputes in %d days", key[:16], lost, days)
    return ban
