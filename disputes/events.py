"""Dispute (38386) and rating (38384) events written to the outbox.

Order events (38383) belong to `orders.publish`; these two are built directly with the
protocol builders. Every function here must run inside the transaction that caused the
event, so the event and the change commit together.
"""

import time

from disputes.live import dispute_changed_on_commit
from disputes.models import Dispute
from nostrbridge.models import OutboundMessage
from nostrbridge.outbox import enqueue_event, next_created_at, node_keys
from nostrbridge.protocol.enums import DisputeStatus
from nostrbridge.protocol.published_events import DISPUTE_KIND, build_dispute_event, build_rating_event
from orders.models import Trader
from orders.publish import publisher_settings


def publish_dispute_event(*, dispute: Dispute, now: int | None = None) -> OutboundMessage:
    """A new 38386 revision for the dispute's current status (created_at strictly increasing)."""
    now = int(time.time()) if now is None else now
    d_tag = str(dispute.id)
    event = build_dispute_event(
        node_keys(),
        dispute_id=dispute.id,
        status=DisputeStatus(dispute.status),
        initiator=dispute.initiator or "unknown",
        dispute_created_at=int(dispute.created_at.timestamp()),
        settings=publisher_settings(),
        now=now,
        created_at=next_created_at(kind=DISPUTE_KIND, d_tag=d_tag, now=now),
    )
    dispute_changed_on_commit(dispute)  # every dispute change passes here: push it to staff pages too
    return enqueue_event(event=event, order_id=dispute.order_id, d_tag=d_tag)


def publish_rating_event(*, trader: Trader, d_pubkey: str, order_id, now: int | None = None) -> OutboundMessage:
    """The 38384 event for `trader`'s aggregates, published at once (plain `now` created_at)."""
    now = int(time.time()) if now is None else now
    days = max(0, (now - int(trader.created_at.timestamp())) // 86_400) if trader.created_at else 0
    event = build_rating_event(
        node_keys(),
        d_pubkey=d_pubkey,
        total_reviews=trader.total_reviews,
        total_rating=trader.total_rating,
        last_rating=trader.last_rating,
        max_rate=trader.max_rating,
        min_rate=trader.min_rating,
        days=days,
        settings=publisher_settings(),
        now=now,
    )
    return enqueue_event(event=event, order_id=order_id, d_tag=d_pubkey)
