"""Periodic jobs of the relay bridge; each is thin and safe to run twice.

Owner: qcluster, through `mostro_site/schedules.py`. The bridge process publishes the info,
metadata and relay-list events itself only at start and when a setting or the connected
relay set changes (`nostr_bridge --periodic-jobs` also runs these on timers, for a node
without qcluster). Running both is harmless: the publication jobs skip an identical event
queued within their interval (`nostrbridge.node_announcements`). The order-event
reconciliation is an orders job (`orders.jobs.reconcile_order_events`).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from mostro_site.config import node_config
from nostrbridge import node_announcements
from nostrbridge.models import InboundEvent, InboundStatus, OutboundMessage, OutboundStatus, RelayHealth
from nostrbridge.relays import normalize_url
from nostrbridge.wake import OUTBOX_CHANNEL, wake

logger = logging.getLogger(__name__)

PRUNE_AFTER_DAYS = 7
PRUNE_OUTBOX_AFTER_DAYS = 30  # long after the publisher's retries (minutes) have ended
# Deletes in chunks keep each transaction (and SQLite's write lock) short.
PRUNE_CHUNK = 1_000
# A RelayHealth row not refreshed for this long belongs to a bridge that is not running.
HEALTH_FRESH_S = 30
INTERVAL_SLACK_S = 5


def publish_info_event() -> bool:
    """Kind 38385, unless the same info went out within the publication interval."""
    lnd = node_announcements.lnd_status()
    interval = max(settings.MOSTRO_PUBLISH_MOSTRO_INFO_INTERVAL - INTERVAL_SLACK_S, 0)
    return node_announcements.info_event_enqueue(lnd=lnd, min_interval_s=interval) is not None


def publish_relay_list(relays: list[str] | None = None) -> bool:
    """Kind 10002 of the connected relays (by default: those a running bridge reports connected)."""
    if relays is None:
        fresh = timezone.now() - timedelta(seconds=HEALTH_FRESH_S)
        configured = list(node_config().relays)
        connected = set(
            RelayHealth.objects.filter(connected=True, updated_at__gte=fresh).values_list("relay_url", flat=True)
        )
        relays = [url for url in configured if _normalized(url) in connected]
    interval = max(settings.MOSTRO_PUBLISH_RELAYS_INTERVAL - INTERVAL_SLACK_S, 0)
    return node_announcements.relay_list_enqueue(relays=relays, min_interval_s=interval) is not None


def _normalized(url: str) -> str | None:
    """A configured relay as the pool names it; None for an entry that is not a relay URL."""
    try:
        return normalize_url(url)
    except ValueError:
        logger.warning("relay list: ignoring %r, not a ws:// or wss:// URL", url)
        return None


def retry_outbox() -> int:
    """Safety net: nudge the publisher when due outbox rows exist (it also polls on its own)."""
    now = timezone.now()
    due = OutboundMessage.objects.filter(status__in=[OutboundStatus.PENDING, OutboundStatus.SENT]).exclude(
        next_attempt_at__gt=now
    )
    count = due.exclude(status=OutboundStatus.SENT, next_attempt_at__isnull=True).count()
    if count:
        wake(OUTBOX_CHANNEL)
    return count


def prune_inbox(*, older_than_days: int = PRUNE_AFTER_DAYS) -> int:
    """Delete handled (DONE) and dropped inbound rows older than a week; PARKED rows stay."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    finished = InboundEvent.objects.filter(
        status__in=[InboundStatus.DONE, InboundStatus.DROPPED], received_at__lt=cutoff
    )
    deleted = 0
    while True:
        chunk = list(finished.order_by("pk").values_list("pk", flat=True)[:PRUNE_CHUNK])
        if not chunk:
            return deleted
        deleted += InboundEvent.objects.filter(pk__in=chunk).delete()[0]


def prune_outbox(*, older_than_days: int = PRUNE_OUTBOX_AFTER_DAYS) -> int:
    """Delete outbound rows accepted by a relay more than a month ago (deliveries cascade).

    PENDING and PARKED rows stay: they are still owed, or an operator has to look at them.
    The relays, not this table, are the record of what was published.
    """
    cutoff = timezone.now() - timedelta(days=older_than_days)
    sent = OutboundMessage.objects.filter(status=OutboundStatus.SENT, sent_at__lt=cutoff)
    deleted = 0
    while True:
        chunk = list(sent.order_by("pk").values_list("pk", flat=True)[:PRUNE_CHUNK])
        if not chunk:
            break
        OutboundMessage.objects.filter(pk__in=chunk).delete()
        deleted += len(chunk)
    logger.info("pruned %s sent outbound messages", deleted)
    return deleted
