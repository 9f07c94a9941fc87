"""The order book, replayed to a relay that (re)connects (docs/ARCHITECTURE.md §Relay bridge).

A relay that restarts may come back empty (an in-memory relay, a wiped database), and a relay
the operator adds has never seen the book. Without this, a pending order published before
the outage stays invisible to every client browsing that relay until its next revision. On
each (re)connection the latest 38383 revision of every order still on the book (`pending`,
`in-progress`, not expired) is sent again to that relay alone: the same signed event, so a
relay that kept it answers "duplicate" and nothing new is written to the outbox.
"""

import asyncio
import json
import logging
import time
from typing import Any

from django.db import DatabaseError
from django.db.models import Max

from nostrbridge.bridge.dbthread import db_call
from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.published_events import ORDER_KIND
from nostrbridge.relays import RelayPool

logger = logging.getLogger(__name__)

BOOK_STATUSES = frozenset({"pending", "in-progress"})
REPLAY_LIMIT = 5_000  # newest first; far above any real book
REPLAY_BATCH = 100  # events in flight to the relay at once


def book_events(*, now: int, limit: int = REPLAY_LIMIT) -> list[dict[str, Any]]:
    """The latest stored 38383 revision of every order still on the book, newest first."""
    latest = (
        OutboundMessage.objects.filter(kind=ORDER_KIND, order_id__isnull=False)
        .values("order_id")
        .annotate(last_pk=Max("pk"))
        .values("last_pk")
    )
    rows = OutboundMessage.objects.filter(pk__in=latest).order_by("-pk").values_list("event_json", flat=True)
    events = []
    for raw in rows[:limit]:
        event = json.loads(raw)
        tags = {tag[0]: tag[1] for tag in event.get("tags", []) if len(tag) > 1}
        expiration = tags.get("expiration")
        if tags.get("s") in BOOK_STATUSES and (expiration is None or int(expiration) > now):
            events.append(event)
    return events


async def book_replay(pool: RelayPool, url: str) -> int:
    """Send the book to one relay; returns how many events that relay accepted (new or duplicate)."""
    try:
        events = await db_call(book_events)(now=int(time.time()))
    except DatabaseError:
        logger.exception("relay %s: cannot read the order book to replay it", url)
        return 0
    accepted = 0
    for start in range(0, len(events), REPLAY_BATCH):
        batch = events[start : start + REPLAY_BATCH]
        results = await asyncio.gather(*(pool.publish_to(url, event) for event in batch))
        accepted += sum(1 for result in results if result.accepted)
    if events:
        logger.info("relay %s: order book replayed, %d of %d events accepted", url, accepted, len(events))
    return accepted
