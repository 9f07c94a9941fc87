"""The dispute event (38386) written to the outbox.

Must run inside the transaction that changed the dispute, so the event and the change
commit together (order events, 38383, belong to `orders.publish`).
"""

import time

from disputes.live import dispute_changed_on_commit
from disputes.models import Dispute
from nostrbridge.event_settings import publisher_settings
from nostrbridge.models import OutboundMessage
from nostrbridge.outbox import enqueue_event, next_created_at, node_keys
from nostrbridge.protocol.enums import DisputeStatus
from nostrbridge.protocol.published_events import DISPUTE_KIND, build_dispute_event


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
