"""Post-commit nudges from the services to the node's loops (outbox publisher, inbox consumer,
invoice watcher).

Nudges are hints only: the rows in the database are the source of truth and the loops also
poll, so a lost nudge costs latency, never a message. In the bridge process a waker is
registered directly; other processes (web, qcluster, `mostrod`'s job cluster) reach the bridge
on the same machine by a datagram to a Unix socket the bridge listens on while it has wakers
(Linux abstract namespace, named after the database and the channel), and through the channel
layer when Redis is configured. The invoice watcher is only nudged in its own process (in `mostrod`,
where the take handlers run); a standalone `invoice_watcher` finds new invoices by its poll.
"""

import hashlib
import logging
import os
import select
import socket
import sys
import threading
from collections.abc import Callable

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

OUTBOX_CHANNEL = "mostro-outbox"
INBOX_CHANNEL = "mostro-inbox"
INVOICES_CHANNEL = "mostro-invoices"  # a new hold invoice to follow (local wakers only)
SIDE_CHANNEL = "mostro-side"  # the bridge's side subscriptions (dispute chat) may have changed (local only)
_REMOTE_CHANNELS = frozenset({OUTBOX_CHANNEL, INBOX_CHANNEL})  # the bridge's consumers listen on these

_local_wakers: dict[str, list[Callable[[], None]]] = {
    OUTBOX_CHANNEL: [],
    INBOX_CHANNEL: [],
    INVOICES_CHANNEL: [],
    SIDE_CHANNEL: [],
}


def register_waker(channel: str, waker: Callable[[], None]) -> None:
    """`waker` must be thread-safe (e.g. `loop.call_soon_threadsafe(event.set)`)."""
    _local_wakers[channel].append(waker)
    if channel in _REMOTE_CHANNELS:
        _listen_on_this_machine(channel)


def unregister_waker(channel: str, waker: Callable[[], None]) -> None:
    if waker in _local_wakers[channel]:
        _local_wakers[channel].remove(waker)


def wake(channel: str) -> None:
    wakers: list[Callable[[], None]] = _local_wakers[channel]
    for waker in wakers:
        waker()
    if not wakers and channel in _REMOTE_CHANNELS:
        machine_hint(machine_address(channel))
        if str(getattr(settings, "REDIS_URL", "")):
            _wake_remote(channel)


def wake_on_commit(channel: str) -> None:
    transaction.on_commit(lambda: wake(channel))


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


# --- hints between processes of one machine --------------------------------------------------


def machine_address(name: str, *, database_alias: str = "default") -> str | None:
    """The abstract Unix socket of hint `name` for this node's database (None: not on Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    database = settings.DATABASES[database_alias]
    identity = "|".join(str(database.get(key, "")) for key in ("ENGINE", "HOST", "PORT", "NAME"))
    return "\0mostro-wake-" + hashlib.sha256(f"{identity}|{name}".encode()).hexdigest()[:32]


class _HintSender:
    """One unbound datagram socket per process (a fork makes its own)."""

    def __init__(self) -> None:
        self._pid = -1
        self._socket: socket.socket | None = None

    def send(self, address: str) -> None:
        if self._pid != os.getpid() or self._socket is None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.setblocking(False)
            self._pid = os.getpid()
        try:
            self._socket.sendto(b"w", address)
        except OSError:  # nobody listening here, or its buffer is full: it polls anyway
            pass


_hint_sender = _HintSender()


def machine_hint(address: str | None) -> None:
    """One datagram to `address`, never blocking, never failing."""
    if address is not None:
        _hint_sender.send(address)


def drain_hints(listener: socket.socket) -> None:
    """Every queued hint at once (the socket is non-blocking): one wake-up answers them all."""
    try:
        while listener.recv(16):
            pass
    except OSError:
        pass


_listening: dict[str, int] = {}  # channel -> pid of the process whose thread listens


def _listen_on_this_machine(channel: str) -> None:
    """From the first waker on: a daemon thread turns the channel's datagrams into calls of the
    wakers registered at that moment. A second process of the same node (another bridge) cannot
    bind the name and relies on Redis or its poll."""
    address = machine_address(channel)
    if address is None or _listening.get(channel) == os.getpid():
        return
    _listening[channel] = os.getpid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        listener.bind(address)
    except OSError:
        listener.close()
        logger.info("%s: another process of this node listens for its hints", channel)
        return
    listener.setblocking(False)

    def relay() -> None:
        while True:
            select.select([listener], [], [])
            drain_hints(listener)
            for waker in list(_local_wakers[channel]):
                try:
                    waker()
                except Exception:  # noqa: BLE001 — e.g. a stopped loop's nudge; the others still run
                    logger.warning("%s: a waker failed", channel, exc_info=True)

    threading.Thread(target=relay, name=f"wake-{channel}", daemon=True).start()
