"""Republish order events (38383) that reached no relay (mostrod's orderbook reconciler).

A revision the publisher parked (accepted by no relay after its retries) is left alone for
`RECONCILE_QUIET_S`, then the order's current revision is republished, at most
`RECONCILE_MAX_ATTEMPTS` times since the last revision a service published on its own. The
republish re-checks under the order's row lock that the order's last event is still the
parked one, so a run racing a service (or another run) publishes nothing twice.
"""

import logging
from datetime import UTC, datetime
from uuid import UUID

from django.db import transaction
from django.db.models import Max

from nostrbridge.models import OutboundMessage, OutboundStatus
from nostrbridge.protocol.published_events import ORDER_KIND
from orders.models import Order
from orders.publish import publish_order_event

logger = logging.getLogger(__name__)

RECONCILE_QUIET_S = 120  # the publisher is still retrying the event meanwhile
RECONCILE_MAX_ATTEMPTS = 5
RECONCILE_ACTION = "reconcile"  # `OutboundMessage.action` of a republished revision


def parked_order_event_ids(*, now: float, limit: int) -> list[UUID]:
    """Orders whose latest 38383 revision was parked more than the quiet time ago, oldest first."""
    quiet_before = datetime.fromtimestamp(now - RECONCILE_QUIET_S, tz=UTC)
    latest = (
        OutboundMessage.objects.filter(kind=ORDER_KIND, order_id__isnull=False)
        .values("order_id")
        .annotate(last_pk=Max("pk"))
        .values("last_pk")
    )
    parked = (
        OutboundMessage.objects.filter(pk__in=latest, status=OutboundStatus.PARKED, created_at__lt=quiet_before)
        .order_by("pk")
        .values_list("order_id", flat=True)[:limit]
    )
    return [order_id for order_id in parked if order_id is not None]  # `latest` has only order events


def order_event_republish(*, order_id: UUID, now: int) -> bool:
    """Queue the order's current revision again; False when there is nothing (left) to do."""
    if _reconcile_attempts(order_id) >= RECONCILE_MAX_ATTEMPTS:
        return False
    with transaction.atomic():
        order = Order.objects.select_for_update().filter(pk=order_id).first()
        if order is None or not _last_order_event_parked(order_id):
            return False  # gone, or a service (or a concurrent run) published a newer revision
        row = publish_order_event(order, now=now)
        if row is None:
            return False
        OutboundMessage.objects.filter(pk=row.pk).update(action=RECONCILE_ACTION)
    logger.info("republished order event of %s (reconciliation)", order_id)
    return True


def _last_order_event_parked(order_id: UUID) -> bool:
    last = OutboundMessage.objects.filter(kind=ORDER_KIND, order_id=order_id).order_by("-pk").values("status").first()
    return last is not None and last["status"] == OutboundStatus.PARKED


def _reconcile_attempts(order_id: UUID) -> int:
    """Reconciliation revisions since the last revision a service published on its own."""
    rows = OutboundMessage.objects.filter(kind=ORDER_KIND, order_id=order_id)
    last_organic = rows.exclude(action=RECONCILE_ACTION).aggregate(pk=Max("pk"))["pk"] or 0
    return rows.filter(action=RECONCILE_ACTION, pk__gt=last_organic).count()
