"""A price fetch on demand, for a market order whose currency has no stored price (issue 15, cold start).

The refresh job runs every few minutes; a node that has just started, or a currency nobody has
traded yet, may have no `BtcPrice` row when a market-priced `new-order` or take arrives. Instead
of dropping the message, the order path asks this fetcher for one refresh tick and hands the
message back to the inbox (`RetryLater`); the fetcher nudges the inbox when the tick ends, and
the retry finds the price. If no provider answers, the message is retried until the give-up
time (`MOSTRO_PRICE_WAIT_SECONDS`) and then answered `price_too_stale`.

One tick at a time for the whole node (a tick asks every provider for every currency, so it is
also one at a time per currency), at most one per `RETRY_GAP_S` after a tick that brought no
price for the currency asked: a burst of orders in made-up currencies costs the providers one
request per gap, never one per message. Each provider call has its total deadline
(`lightning.outbound_deadline`, through `orders.pricing.fetch`).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable

from django.db import connections

logger = logging.getLogger(__name__)

# Looked at again after this while a tick runs (sooner: the tick's end nudges the inbox).
FETCHING_RECHECK_S = 0.5
# After a tick that brought nothing for a currency, the next one starts no sooner than this.
RETRY_GAP_S = 3.0


def _refresh_tick() -> object:
    """One refresh tick in the fetcher's thread; the thread's database connection is closed after.

    It asks every provider, even one whose breaker is open (a fresh board): a message is waiting,
    the ticks are spaced `RETRY_GAP_S` apart, and after a cold start with the providers briefly
    unreachable the scheduled job's breaker would otherwise keep a provider that is back unasked
    for two minutes."""
    from orders.pricing.breaker import BreakerBoard
    from orders.pricing.refresh import prices_refresh

    try:
        return prices_refresh(breakers=BreakerBoard())
    finally:
        connections.close_all()


class PriceFetcher:
    def __init__(self, *, refresh: Callable[[], object] = _refresh_tick) -> None:
        self._refresh = refresh
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="price-on-demand")
        self._lock = threading.Lock()
        self._running: concurrent.futures.Future[object] | None = None
        self._ended_at: float | None = None
        self.ticks = 0  # started, for the figures and tests
        self.on_done: Callable[[], None] | None = None  # the inbox nudge, set by the caller

    def request(self) -> float:
        """Start a tick unless one runs or one ended under `RETRY_GAP_S` ago; returns the seconds
        after which the message should be looked at again."""
        now = time.monotonic()
        with self._lock:
            if self._running is not None and not self._running.done():
                return FETCHING_RECHECK_S
            if self._ended_at is not None and now - self._ended_at < RETRY_GAP_S:
                return RETRY_GAP_S - (now - self._ended_at)
            self._running = future = self._pool.submit(self._refresh)
            self.ticks += 1
        future.add_done_callback(self._finished)
        return FETCHING_RECHECK_S

    def _finished(self, future: concurrent.futures.Future[object]) -> None:
        with self._lock:
            self._ended_at = time.monotonic()
        error = future.exception()
        if error is not None:
            logger.error("on-demand price refresh failed: %r", error)
        if self.on_done is not None:
            self.on_done()

    def wait_idle(self, timeout_s: float) -> None:
        """Until the running tick (if any) ends (tests)."""
        running = self._running
        if running is not None:
            concurrent.futures.wait([running], timeout=timeout_s)


_fetcher: PriceFetcher | None = None
_fetcher_lock = threading.Lock()


def price_fetcher() -> PriceFetcher:
    global _fetcher
    with _fetcher_lock:
        if _fetcher is None:
            _fetcher = PriceFetcher()
        return _fetcher


def price_fetcher_replace(fetcher: PriceFetcher | None) -> None:
    """Swap the process-wide fetcher (tests: a refresh that never leaves the process)."""
    global _fetcher
    with _fetcher_lock:
        _fetcher = fetcher
