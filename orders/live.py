"""Post-commit pushes to the staff order views (Channels group `staff.orders`), rate-limited.

Every status change passes through `orders.transitions`, which calls `order_changed_on_commit`.
A busy node changes hundreds of orders a second, so pushes leave at most every
MIN_INTERVAL_S; changes in between ride on the next push, and a page that received a push
refreshes once more a second later, so a trailing change is never missed for long. The push
runs on the committing thread (no extra thread), and a channel layer that is down never
breaks the transition that caused it.
"""

import threading
import time
from functools import partial

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

STAFF_ORDERS_GROUP = "staff.orders"
ORDERS_CHANGED = "orders.changed"
MIN_INTERVAL_S = 0.25
MAX_IDS = 50  # a push names at most this many orders; pages treat any push as "refresh"

_lock = threading.Lock()
_pending: set[str] = set()
_last_push = 0.0


def _clock() -> float:
    return time.monotonic()


def order_changed_on_commit(order_id) -> None:
    transaction.on_commit(partial(_changed, str(order_id)), robust=True)


def _changed(order_id: str) -> None:
    global _last_push
    with _lock:
        if len(_pending) < MAX_IDS:
            _pending.add(order_id)
        now = _clock()
        if now - _last_push < MIN_INTERVAL_S:
            return
        _last_push = now
        ids = sorted(_pending)
        _pending.clear()
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(STAFF_ORDERS_GROUP, {"type": ORDERS_CHANGED, "orders": ids})
