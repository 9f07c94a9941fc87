"""The durable inbox: store every inbound event once, claim it with a lease, record the outcome.

Claims are conditional UPDATEs, so two bridge processes on PostgreSQL never process the same
row; a lease that expires (process killed mid-handler) makes the row claimable again.
"""

import json
import logging
from collections import Counter
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from nostrbridge.models import InboundEvent, InboundStatus

logger = logging.getLogger(__name__)

# Retries for events whose handler crashed (internal errors), before the row is parked.
MAX_ATTEMPTS = 3
LEASE_SECONDS = 60


def inbox_store(*, items: list[tuple[str, dict]], catch_up: bool = False) -> list[int]:
    """Store events not seen before; return the primary keys of the new rows.

    `items` are (relay_url, event) pairs whose outer checks (kind, PoW, signature) passed.
    A duplicate (same id from another relay, or again after a restart) only bumps seen_count.
    """
    by_id: dict[str, tuple[str, dict]] = {}
    copies: Counter[str] = Counter()  # the same event from several relays in one batch
    for relay_url, event in items:
        by_id.setdefault(event["id"], (relay_url, event))
        copies[event["id"]] += 1
    if not by_id:
        return []
    with transaction.atomic():
        existing = set(InboundEvent.objects.filter(event_id__in=list(by_id)).values_list("event_id", flat=True))
        for count in {copies[event_id] for event_id in existing}:
            seen = [event_id for event_id in existing if copies[event_id] == count]
            InboundEvent.objects.filter(event_id__in=seen).update(seen_count=F("seen_count") + count)
        rows = [
            InboundEvent(
                event_id=event_id,
                kind=event["kind"],
                pubkey=event["pubkey"],
                event_created_at=event["created_at"],
                raw=json.dumps(event, separators=(",", ":"), ensure_ascii=False),
                first_relay=relay_url[:300],
                caught_up=catch_up,
                seen_count=copies[event_id],
            )
            for event_id, (relay_url, event) in by_id.items()
            if event_id not in existing
        ]
        # ignore_conflicts: another bridge process may insert the same id concurrently.
        InboundEvent.objects.bulk_create(rows, ignore_conflicts=True)
        new_ids = [row.event_id for row in rows]
        return list(
            InboundEvent.objects.filter(event_id__in=new_ids, status=InboundStatus.RECEIVED).values_list(
                "pk", flat=True
            )
        )


def inbox_claim(*, worker_id: str, limit: int = 50) -> list[int]:
    """Lease up to `limit` unprocessed rows to this worker; return their primary keys."""
    now = timezone.now()
    claimable = Q(status=InboundStatus.RECEIVED) | Q(status=InboundStatus.PROCESSING, locked_until__lt=now)
    candidates = list(InboundEvent.objects.filter(claimable).order_by("pk").values_list("pk", flat=True)[:limit])
    if not candidates:
        return []
    with transaction.atomic():
        InboundEvent.objects.filter(claimable, pk__in=candidates).update(
            status=InboundStatus.PROCESSING,
            locked_by=worker_id,
            locked_until=now + timedelta(seconds=LEASE_SECONDS),
            attempts=F("attempts") + 1,
        )
    return list(
        InboundEvent.objects.filter(pk__in=candidates, status=InboundStatus.PROCESSING, locked_by=worker_id)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def inbox_finish(*, pk: int, status: str, action: str = "", drop_reason: str = "") -> bool:
    """Record the final outcome; only the current lease holder's row in PROCESSING changes."""
    return (
        InboundEvent.objects.filter(pk=pk, status=InboundStatus.PROCESSING).update(
            status=status,
            action=action[:40],
            drop_reason=drop_reason[:200],
            processed_at=timezone.now(),
            locked_until=None,
        )
        == 1
    )


def inbox_fail(*, pk: int, error: str) -> str:
    """An internal error: retry later, or park the row after MAX_ATTEMPTS."""
    row = InboundEvent.objects.filter(pk=pk).values("attempts").first()
    if row is None:
        return InboundStatus.PARKED
    status = InboundStatus.PARKED if row["attempts"] >= MAX_ATTEMPTS else InboundStatus.RECEIVED
    InboundEvent.objects.filter(pk=pk, status=InboundStatus.PROCESSING).update(
        status=status, last_error=error[-4000:], locked_until=None
    )
    if status == InboundStatus.PARKED:
        logger.error("inbound event %s parked after %s attempts", pk, row["attempts"])
    return status


def inbox_latest_created_at() -> int | None:
    """Newest `created_at` seen, the anchor of the `since` filter after a restart."""
    return InboundEvent.objects.order_by("-event_created_at").values_list("event_created_at", flat=True).first()
