"""The database as a second live feed, for processes the channel layer does not join.

With the in-memory channel layer (the embedded default) a push reaches only pages served by
the process that made the change. Jobs run in django-q2's forked workers (timeouts, payouts,
the escrow guardian), so their changes would never reach an open page. A connected staff page
therefore also watches `updated_at` of orders and disputes and `received_at` of chat
messages, every MOSTRO_LIVE_POLL_SECONDS (on by default only with the in-memory layer; Redis
reaches every process), and is sent the same messages a push would carry.

A writer stamps `updated_at` before its commit, so a change can become visible with a stamp
older than the last look. Each look therefore reaches OVERLAP_S back and skips what it has
already reported (same row, same stamp).
"""

from datetime import datetime, timedelta

from django.utils import timezone

from disputes.chat.live import CHAT_CHANGED
from disputes.chat.models import ChatMessage
from disputes.live import DISPUTE_CHANGED, STAFF_DISPUTES_GROUP, dispute_snapshot
from disputes.models import Dispute
from orders.live import MAX_IDS, ORDERS_CHANGED, STAFF_ORDERS_GROUP
from orders.models import Order

OVERLAP_S = 5.0
BATCH = 200  # rows per table per look: a page refreshes on any message, it needs no more


class ChangeWatch:
    """What one connected page has already been told; `look()` returns the messages to send."""

    def __init__(self, feeds: list[str], *, since: datetime | None = None) -> None:
        self.feeds = set(feeds)
        self.since = since or timezone.now()
        self._seen: dict[tuple[str, str], datetime] = {}

    def look(self) -> list[dict]:
        now = timezone.now()
        floor = self.since - timedelta(seconds=OVERLAP_S)
        messages: list[dict] = []
        if STAFF_ORDERS_GROUP in self.feeds:
            messages += self._orders(floor)
        if STAFF_DISPUTES_GROUP in self.feeds:
            messages += self._disputes(floor) + self._chat(floor)
        self.since = now
        self._forget(floor)
        return messages

    def _new(self, kind: str, key, stamp: datetime) -> bool:
        if self._seen.get((kind, str(key))) == stamp:
            return False
        self._seen[(kind, str(key))] = stamp
        return True

    def _forget(self, floor: datetime) -> None:
        self._seen = {key: stamp for key, stamp in self._seen.items() if stamp >= floor}

    def _orders(self, floor: datetime) -> list[dict]:
        rows = Order.objects.filter(updated_at__gte=floor).order_by("updated_at").values_list("pk", "updated_at")
        ids = [str(pk) for pk, stamp in rows[:BATCH] if self._new("order", pk, stamp)]
        return [{"type": ORDERS_CHANGED, "orders": sorted(ids)[:MAX_IDS]}] if ids else []

    def _disputes(self, floor: datetime) -> list[dict]:
        rows = Dispute.objects.filter(updated_at__gte=floor).order_by("updated_at")[:BATCH]
        return [
            {"type": DISPUTE_CHANGED, "dispute": dispute_snapshot(dispute)}
            for dispute in rows
            if self._new("dispute", dispute.pk, dispute.updated_at)
        ]

    def _chat(self, floor: datetime) -> list[dict]:
        rows = ChatMessage.objects.filter(received_at__gte=floor).order_by("received_at")
        fresh: dict[str, list[int]] = {}
        for pk, dispute_id, stamp in rows.values_list("pk", "dispute_id", "received_at")[:BATCH]:
            if self._new("chat", pk, stamp):
                fresh.setdefault(str(dispute_id), []).append(pk)
        return [{"type": CHAT_CHANGED, "dispute": dispute, "messages": pks} for dispute, pks in fresh.items()]
