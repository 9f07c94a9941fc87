"""Post-commit nudges from the services to the node's loops (outbox publisher, inbox consumer,
invoice watcher).

Nudges are hints only: the rows in the database are the source of truth and the loops also
poll, so a lost nudge costs latency, never a message. In the bridge process a waker is
registered directly; other processes (web, qcluster, `mostrod`'s forked job cluster) reach the
bridge through the channel layer when Redis is configured, and without Redis (the embedded
SQLite node) through the bridge's wake socket: a Unix datagram socket in the var directory
(`nostrbridge.bridge.wake_socket`), one byte per nudge, dropped when no bridge listens or its
buffer is full. Without it a payout's `purchase-completed`, written by a job worker, waited for
the publisher's next poll (up to 1 s). The invoice watcher is only nudged in its own process
(in `mostrod`, where the take handlers run); a standalone `invoice_watcher` finds new invoices
by its poll.

`hints_held()` holds this thread's job-queue wake-ups (`send_hint_or_hold`, the job broker's
on-commit hint) until its block ends, however it ends: the release and the admin settle commit
their decision with the payout's queue row inside it and only then settle the escrow at LND
(`orders.services.escrow_reconcile.escrow_settle_after`), so
the cluster wakes after the settle instead of at the commit. Waking at the commit let the payout
read the escrow still ACCEPTED and settle it a second time (a no-op LND answers "already
settled"): 33 of 100 trades run one at a time against the simnet, 0 of 100 with the hold. The
row is committed with the decision either way: a hint held and then lost (the process killed
before the block ends) costs one poll, never the task. A commit that happens after the block
ends (an outer transaction) hints at that commit, as without it. What it cannot close: a pusher
that polls by itself (its poll interval ends, or another task's hint woke it) in the moment
between the commit and the settle still takes the payout first; the payout then settles first
and the release's own settle is the no-op (more likely on a loaded machine).
"""

import functools
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from nostrbridge.thread_connection import db_connection

logger = logging.getLogger(__name__)

OUTBOX_CHANNEL = "mostro-outbox"
INBOX_CHANNEL = "mostro-inbox"
INVOICES_CHANNEL = "mostro-invoices"  # a new hold invoice to follow (local wakers only)
SIDE_CHANNEL = "mostro-side"  # the bridge's side subscriptions (dispute chat) may have changed (local only)
_REMOTE_CHANNELS = frozenset({OUTBOX_CHANNEL, INBOX_CHANNEL})  # the bridge's consumers listen on these
# The wake socket's datagrams: one byte naming the channel.
SOCKET_CODES = {OUTBOX_CHANNEL: b"o", INBOX_CHANNEL: b"i"}
WAKE_SOCKET_NAME = "bridge-wake.sock"

_local_wakers: dict[str, list[Callable[[], None]]] = {
    OUTBOX_CHANNEL: [],
    INBOX_CHANNEL: [],
    INVOICES_CHANNEL: [],
    SIDE_CHANNEL: [],
}


def register_waker(channel: str, waker: Callable[[], None]) -> None:
    """`waker` must be thread-safe (e.g. `loop.call_soon_threadsafe(event.set)`)."""
    _local_wakers[channel].append(waker)


def unregister_waker(channel: str, waker: Callable[[], None]) -> None:
    if waker in _local_wakers[channel]:
        _local_wakers[channel].remove(waker)


def wake(channel: str) -> None:
    wakers: list[Callable[[], None]] = _local_wakers[channel]
    for waker in wakers:
        waker()
    if wakers or channel not in _REMOTE_CHANNELS:
        return
    if str(getattr(settings, "REDIS_URL", "")):
        _wake_remote(channel)
    else:
        _wake_socket(channel)


def wake_socket_path() -> Path:
    """Where the bridge of this node listens for nudges when there is no Redis."""
    return Path(settings.VAR_DIR) / WAKE_SOCKET_NAME


class _HintSender:
    """One unbound, non-blocking datagram socket per process (a fork makes its own)."""

    def __init__(self) -> None:
        self._pid = -1
        self._socket: socket.socket | None = None

    def send(self, address: str, data: bytes) -> None:
        if self._pid != os.getpid() or self._socket is None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.setblocking(False)
            self._pid = os.getpid()
        try:
            self._socket.sendto(data, address)
        except OSError:  # nobody listening (ENOENT, ECONNREFUSED) or its buffer full (EAGAIN): it polls
            pass


_hint_sender = _HintSender()


def send_hint(address: str, data: bytes = b"w") -> None:
    """One datagram to the Unix socket `address` (a path, or an abstract name starting with NUL):
    never blocking, never failing. The bridge's wake socket and the job broker's both use it."""
    _hint_sender.send(address, data)


_held = threading.local()  # `hints`: the open `hints_held()` block's list, else absent or None


@contextmanager
def hints_held() -> Iterator[None]:
    """Hold this thread's `send_hint_or_hold` datagrams until the block ends (an exception too),
    then send them in order. Only what is sent while the block is open is held: an on-commit hint
    of a transaction that commits after the block ends goes at its commit. A block inside
    another sends its own hints at its own end."""
    outer = getattr(_held, "hints", None)
    held: list[tuple[str, bytes]] = []
    _held.hints = held
    try:
        yield
    finally:
        _held.hints = outer
        for address, data in held:
            send_hint(address, data)


def send_hint_or_hold(address: str, data: bytes = b"w") -> None:
    """`send_hint`, or held to the end of this thread's `hints_held()` block if one is open."""
    held: list[tuple[str, bytes]] | None = getattr(_held, "hints", None)
    if held is None:
        send_hint(address, data)
    else:
        held.append((address, data))


def _wake_socket(channel: str) -> None:
    send_hint(_socket_address(settings.VAR_DIR), SOCKET_CODES[channel])


@functools.lru_cache(maxsize=4)
def _socket_address(var_dir: str | Path) -> str:
    """`wake_socket_path()` as the address string, joined once per var directory instead of at
    every nudge (a payout's success sends three, one per outbox row)."""
    return str(Path(var_dir) / WAKE_SOCKET_NAME)


def wake_on_commit(channel: str) -> None:
    db_connection().on_commit(lambda: wake(channel))  # transaction.on_commit's own call


def _wake_remote(channel: str) -> None:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.send)(channel, {"type": "wake"})
    except Exception:  # noqa: BLE001 — a nudge is best effort; the bridge polls anyway
        logger.warning("could not nudge %s through the channel layer", channel, exc_info=True)
