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
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from nostrbridge.thread_connection import db_connection

STAFF_ORDERS_GROUP = "staff.orders"
ORDERS_CHANGED = "orders.changed"
MIN_INTERVAL_S = 0.25
MAX_IDS = 50  # a push names at most this many orders; pages treat any push as "refresh"

_lock = threading.Lock()
_pending: set[str] = set()
_last_push = 0.0
_skip_pushes = False  # True in processes whose channel layer reaches no page (below)


@contextmanager
def pushes_skipped_in_forks() -> Iterator[None]:
    """Processes forked inside this block (the node's job cluster) push nothing when the channel
    layer is in-memory: such a layer reaches only consumers of its own process, and the cluster
    serves no page; the pages see the cluster's changes by polling the database
    (MOSTRO_LIVE_POLL_SECONDS). Each push there cost a payout a new event loop and thread
    (`async_to_sync` outside any loop) for nothing (docs/PERFORMANCE.md). A Redis layer reaches
    every process's pages, so pushes stay on.
    """
    global _skip_pushes
    skip = isinstance(get_channel_layer(), InMemoryChannelLayer)
    _skip_pushes = skip
    try:
        yield
    finally:
        _skip_pushes = False


def _clock() -> float:
    return time.monotonic()


def order_changed_on_commit(order_id) -> None:
    # `transaction.on_commit` itself, on the connection got without Django's costlier lookup.
    db_connection().on_commit(partial(_changed, str(order_id)), robust=True)


def _changed(order_id: str) -> None:
    global _last_push
    if _skip_pushes:
        return
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
    if layer is not None and not _nobody_listens(layer):
        async_to_sync(layer.group_send)(STAFF_ORDERS_GROUP, {"type": ORDERS_CHANGED, "orders": ids})


def _nobody_listens(layer: object) -> bool:
    """An in-memory layer's group with no member (no staff page open in this process): its
    `group_send` would deliver nothing, and the call cost the committing thread a new thread and
    event loop (`async_to_sync` off any loop), four times a second on a busy node (docs/PERFORMANCE.md).
    A Redis layer's members are in other processes: always pushed."""
    return isinstance(layer, InMemoryChannelLayer) and not layer.groups.get(STAFF_ORDERS_GROUP)
