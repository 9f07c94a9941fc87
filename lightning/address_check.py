"""Lightning-address checks off the handler threads (issue 13, part 3; docs/PROTOCOL.md §Invoices).

A bridge runs the handlers that may leave the database on a few network-lane threads, so a take
naming an attacker's slow-dribbling Lightning address must not hold one for the LNURL budget
(4 s): a handful of such takes would hold every other trader's take. The check runs
in this pool instead; the handler waits for it at most `HANDLER_WAIT_S` (a quarter second),
and only while no other check is running (a burst of slow addresses costs the path nothing).
Still pending → `None`: the caller hands the message back to the inbox (`RetryLater`), and it
is processed again once the verdict is in (the pool nudges the inbox when a check completes).
A verdict (a PayRequest or the LnurlError) is kept a short while, so that retry finds it.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from lightning.lnurl import LnurlError, PayRequest, resolve_pay_request

HANDLER_WAIT_S = 0.25
VERDICT_TTL_S = 60.0
MAX_ENTRIES = 10_000
POOL_WORKERS = 32


@dataclass
class _Entry:
    future: concurrent.futures.Future[PayRequest]
    started_at: float
    finished_at: float | None = None


class AddressChecker:
    def __init__(self, *, workers: int = POOL_WORKERS, resolve: Callable[[str], PayRequest] | None = None) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ln-address")
        self._resolve = resolve or resolve_pay_request
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self.on_done: Callable[[], None] | None = None  # the inbox nudge, set by the app layer

    def check(self, destination: str, *, wait_s: float = HANDLER_WAIT_S) -> PayRequest | None:
        """The destination's payRequest, None while its check is still running; raises the
        LnurlError of a destination that failed its check."""
        entry, started_here = self._entry(destination)
        try:
            # Only the call that started the check waits: a retry of a still-pending check
            # returns at once, so one slow server costs the serial path `wait_s` once.
            # Under a burst of new checks (attackers' slow servers) nobody waits at all.
            wait = wait_s if started_here and self._in_flight() <= 1 else 0
            verdict: PayRequest = entry.future.result(timeout=wait)
            return verdict
        except concurrent.futures.TimeoutError:
            return None
        except LnurlError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the resolver raised is a refusal
            raise LnurlError("bad_answer", f"Lightning address check failed: {type(exc).__name__}") from exc

    def _in_flight(self) -> int:
        with self._lock:
            return sum(1 for entry in self._entries.values() if entry.finished_at is None)

    def _entry(self, destination: str) -> tuple[_Entry, bool]:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(destination)
            if entry is not None and (entry.finished_at is None or now - entry.finished_at < VERDICT_TTL_S):
                return entry, False
            if len(self._entries) >= MAX_ENTRIES:
                self._evict(now)
            entry = _Entry(future=self._pool.submit(self._resolve, destination), started_at=now)
            self._entries[destination] = entry
        entry.future.add_done_callback(lambda _future: self._finished(entry))
        return entry, True

    def _finished(self, entry: _Entry) -> None:
        entry.finished_at = time.monotonic()
        if self.on_done is not None:
            self.on_done()

    def _evict(self, now: float) -> None:
        done = [key for key, e in self._entries.items() if e.finished_at is not None]
        for key in done or list(self._entries)[: MAX_ENTRIES // 10]:
            self._entries.pop(key, None)

    def forget(self) -> None:
        """Drop every verdict (tests)."""
        with self._lock:
            self._entries.clear()


_checker: AddressChecker | None = None
_checker_lock = threading.Lock()


def address_checker() -> AddressChecker:
    global _checker
    with _checker_lock:
        if _checker is None:
            _checker = AddressChecker()
        return _checker
