"""How long the intake lets a batch gather before it stores it (docs/PERFORMANCE.md, issue 20).

Every batch pays the same fixed costs whatever its size: two commits (the store, then the group
with its replies: durability needs both), a trip to the database thread and back, and several
statements. At 300 events/s spread evenly a fixed 10 ms window gathers about three events, so
those costs dominate the bridge's CPU per message. A longer window cuts them but adds its length
to every reply's latency, which light traffic (a few traders, target 3's p99 budget) must not
pay. So the window follows the arrival rate: `LIGHT_WINDOW_S` up to `LIGHT_RATE_PER_S`, growing
linearly to `BUSY_WINDOW_S` at `BUSY_RATE_PER_S` and above; a batch of `FULL_BATCH` events is
stored at once whatever the window.

The rate is a time-decayed average over the batches taken: each batch's events divided by the
time since the previous batch was taken (the events a batch holds are exactly those that arrived
in between), weighted by exp(-interval / RATE_HORIZON_S), so after a pause of a few horizons
the first events are back to the light window.
"""

import math

LIGHT_WINDOW_S = 0.01
BUSY_WINDOW_S = 0.03
LIGHT_RATE_PER_S = 100.0
BUSY_RATE_PER_S = 250.0
RATE_HORIZON_S = 0.05
# Half the consumer's claim (32): a batch of more than a claim is stored for the consumer instead
# of being processed in the intake's trip (worker.store_and_process).
FULL_BATCH = 16


class Coalescing:
    """The window decision; no clock of its own (the intake passes monotonic seconds)."""

    def __init__(
        self,
        *,
        light_window_s: float = LIGHT_WINDOW_S,
        busy_window_s: float = BUSY_WINDOW_S,
        light_rate_per_s: float = LIGHT_RATE_PER_S,
        busy_rate_per_s: float = BUSY_RATE_PER_S,
        horizon_s: float = RATE_HORIZON_S,
        full_batch: int = FULL_BATCH,
    ):
        self.light_window_s = light_window_s
        self.busy_window_s = busy_window_s
        self.light_rate_per_s = light_rate_per_s
        self.busy_rate_per_s = busy_rate_per_s
        self.horizon_s = horizon_s
        self.full_batch = full_batch
        self.rate_per_s = 0.0
        self._taken_at: float | None = None

    def window_s(self) -> float:
        """How long after its first event the next batch may wait for more."""
        span = self.busy_rate_per_s - self.light_rate_per_s
        busy = min(max((self.rate_per_s - self.light_rate_per_s) / span, 0.0), 1.0)
        return self.light_window_s + busy * (self.busy_window_s - self.light_window_s)

    def taken(self, events: int, now_s: float) -> None:
        """A batch of `events` was taken from the buffer at `now_s`."""
        if self._taken_at is not None and now_s > self._taken_at:
            interval_s = now_s - self._taken_at
            keep = math.exp(-interval_s / self.horizon_s)
            self.rate_per_s = keep * self.rate_per_s + (1.0 - keep) * (events / interval_s)
        self._taken_at = now_s
