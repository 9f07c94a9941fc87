"""Post-commit pushes to the staff live views (Channels groups `staff.disputes`, `staff.orders`).

Scheduled with `on_commit` so a rolled-back change is never shown; `robust` so a channel
layer that is down (Redis) never breaks the money path that caused the push. Every dispute
change also nudges the relay bridge's side subscriptions (a taken dispute opens its chat).
"""

import logging
from functools import partial

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from nostrbridge.wake import SIDE_CHANNEL, wake_on_commit

logger = logging.getLogger(__name__)

STAFF_DISPUTES_GROUP = "staff.disputes"
DISPUTE_CHANGED = "dispute.changed"


def dispute_snapshot(dispute) -> dict:
    return {
        "id": str(dispute.id),
        "order_id": str(dispute.order_id),
        "status": dispute.status,
        "solver_pubkey": dispute.solver_pubkey,
    }


def dispute_changed_on_commit(dispute) -> None:
    """Tell every connected staff page about this dispute once the caller's transaction commits."""
    transaction.on_commit(partial(_push, dispute_snapshot(dispute)), robust=True)
    wake_on_commit(SIDE_CHANNEL)


def _push(snapshot: dict) -> None:
    push_to_staff(STAFF_DISPUTES_GROUP, {"type": DISPUTE_CHANGED, "dispute": snapshot})


def push_to_staff(group: str, event: dict) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(group, event)
