"""One hard end for an outbound HTTP request: connect + TLS + headers + body together.

A socket timeout bounds each read, not the request: a server that sends one byte every 1.5 s
never trips a 2 s read timeout. `TotalDeadline.arm(sock)` starts a timer that shuts the socket
down when the budget is spent, which ends any blocking connect, TLS handshake or read at once;
the caller then sees an OSError (or an early end of stream) and checks `expired`.

Used by every outbound call whose server an outsider picks or controls: LNURL / Lightning
addresses (`lightning.lnurl_http`, which the buyer payout and the dev fee use), the price
providers (`orders.pricing.fetch`) and chat attachments (`disputes.chat.attachments`).
"""

from __future__ import annotations

import socket
import threading
import time


class DeadlineExpired(TimeoutError):
    """The request's total budget is spent."""


class TotalDeadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends_at = time.monotonic() + seconds
        self.expired = False
        self._timers: list[threading.Timer] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        """Seconds left; raises `DeadlineExpired` when none are."""
        left = self.ends_at - time.monotonic()
        if left <= 0 or self.expired:
            self.expired = True
            raise DeadlineExpired(f"outbound request took over {self.seconds:g} s")
        return left

    def arm(self, sock: socket.socket) -> None:
        """Shut `sock` down when the budget ends (a timer thread; `disarm` cancels it)."""
        timer = threading.Timer(max(self.ends_at - time.monotonic(), 0.0), self._fire, args=(sock,))
        timer.daemon = True
        with self._lock:
            self._timers.append(timer)
        timer.start()

    def disarm(self) -> None:
        with self._lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()

    def _fire(self, sock: socket.socket) -> None:
        self.expired = True
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed: the request ended on its own

    def __enter__(self) -> TotalDeadline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.disarm()
