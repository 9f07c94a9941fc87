"""Post-commit pushes to the staff dispute views (Channels group `staff.disputes`).

Scheduled with `on_commit` so a rolled-back change is never shown; `robust` so a channel
layer that is down (Redis) never breaks the money path that caused the push.
"""

from functools import partial

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

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


def _push(snapshot: dict) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(STAFF_DISPUTES_GROUP, {"type": DISPUTE_CHANGED, "dispute": snapshot})
