"""Per-provider circuit breaker (Mostro src/price/provider.rs `ProviderHealth`).

After `FAILURE_THRESHOLD` consecutive failures a provider is skipped for a cool-down of
`BASE_COOLDOWN_SECONDS`, doubled by each further failure up to `MAX_COOLDOWN_SECONDS`.
Once the cool-down has passed the provider is polled again: one success closes the breaker,
one more failure reopens it with the doubled cool-down.

The state lives in process memory on purpose. It is advisory (it only saves a dead API
from being asked every tick), losing it on restart costs at most three failed polls, and
keeping it out of the database keeps the refresh job's only write the price upsert. Each
worker process therefore learns a provider's health on its own.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

FAILURE_THRESHOLD = 3
BASE_COOLDOWN_SECONDS = 120.0
MAX_COOLDOWN_SECONDS = 1800.0


@dataclass
class _Health:
    consecutive_failures: int = 0
    open_until: float | None = None


class BreakerBoard:
    """Circuit breakers keyed by provider; `clock` returns seconds (monotonic by default)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._health: dict[str, _Health] = {}
        self._lock = threading.Lock()

    def is_available(self, key: str) -> bool:
        with self._lock:
            health = self._health.get(key)
            return health is None or health.open_until is None or self._clock() >= health.open_until

    def record_success(self, key: str) -> None:
        with self._lock:
            self._health.pop(key, None)

    def record_failure(self, key: str) -> float | None:
        """Count a failed poll; the cool-down in seconds when the breaker (re)opens, else None."""
        with self._lock:
            health = self._health.setdefault(key, _Health())
            health.consecutive_failures += 1
            beyond = health.consecutive_failures - FAILURE_THRESHOLD
            if beyond < 0:
                return None
            cooldown = min(BASE_COOLDOWN_SECONDS * 2 ** min(beyond, 32), MAX_COOLDOWN_SECONDS)
            health.open_until = self._clock() + cooldown
            return cooldown

    def reset(self) -> None:
        with self._lock:
            self._health.clear()


# The process-wide board the refresh job uses unless a caller (a test) passes its own.
BREAKERS = BreakerBoard()
