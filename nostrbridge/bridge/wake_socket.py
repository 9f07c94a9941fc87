"""The bridge's wake socket: nudges from the node's other processes when there is no Redis.

`nostrbridge.wake.wake()` in a process without local wakers and without Redis (`mostrod`'s
forked job cluster, a separate web or `qcluster` on the same host) sends one byte to a Unix
datagram socket in the var directory; the bridge reads it on its event loop and wakes its
publisher (`o`) or inbox consumer (`i`). Best effort, like every nudge: a datagram lost to a
full buffer or a bridge that is not running costs the poll interval, never a message.

One bridge per var directory listens (SQLite has one bridge; with PostgreSQL the bridges share
Redis instead). A socket file left by a dead bridge is replaced; one a live bridge holds is
left alone (this bridge then relies on its polls, as before).
"""

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

from nostrbridge.wake import SOCKET_CODES

logger = logging.getLogger(__name__)

_READ_BYTES = 64


class WakeSocket:
    def __init__(self, path: Path, wakers: dict[str, Callable[[], None]]):
        self.path = path
        self._by_code = {SOCKET_CODES[channel]: waker for channel, waker in wakers.items()}
        self._socket: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def listening(self) -> bool:
        return self._socket is not None

    def open(self) -> bool:
        """Bind and start reading on the running loop; False if another bridge holds the path."""
        try:
            sock = _bind(self.path)
        except OSError as exc:
            logger.info("no wake socket at %s (%s): other processes' nudges wait for the polls", self.path, exc)
            return False
        self._socket = sock
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._read)
        return True

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(sock.fileno())
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _read(self) -> None:
        assert self._socket is not None, "the reader is removed before the socket closes"
        woken: set[bytes] = set()
        while True:
            try:
                data = self._socket.recv(_READ_BYTES)
            except (BlockingIOError, InterruptedError):
                break
            woken.update(data[i : i + 1] for i in range(len(data)))
        for code in woken:  # however many datagrams queued up: each loop once
            waker = self._by_code.get(code)
            if waker is not None:
                waker()


def _bind(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        try:
            sock.bind(str(path))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or _held_by_live_bridge(path):
                raise
            path.unlink()  # left by a bridge that died
            sock.bind(str(path))
        os.chmod(path, 0o600)  # only this node's user may nudge it
    except OSError:
        sock.close()
        raise
    return sock


def _held_by_live_bridge(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        return False  # a file nobody reads
    except OSError:
        return True  # not ours to judge (permissions, not a socket): leave it
    finally:
        probe.close()
    return True
