"""The relay bridge's counters and latency histograms (prometheus-client, no Django).

Process-local values: the shell (`mostro_site.ops.persist`) adds each process's increments to
the database, and `/metrics` serves the sums, so several bridges, the watcher and the job
cluster add up. Label values come from closed sets (actions, CantDo reasons, error class
names, a few intake causes), never from user input, so the series stay bounded.
"""

import functools
from typing import Any

from prometheus_client import Counter, Histogram

# The handler latencies sit between a millisecond (a cant-do) and seconds (an LND call inside).
HANDLER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNKNOWN_ACTION = "unknown"  # the event could not be opened, so its action is not known

INBOUND = Counter(
    "mostro_inbound_messages",
    "Stored inbound events processed, by action and outcome (handled, cant-do, dropped, error).",
    ["action", "outcome"],
)
CANT_DO = Counter("mostro_inbound_cant_do", "cant-do replies, by action and reason.", ["action", "reason"])
DROPPED = Counter(
    "mostro_inbound_dropped",
    "Inbound events dropped without a reply, by stage (intake: before storing; dispatch) and cause.",
    ["stage", "cause"],
)
HANDLER_SECONDS = Histogram(
    "mostro_handler_duration_seconds",
    "Time from a claimed inbound event to its outcome, by action.",
    ["action"],
    buckets=HANDLER_BUCKETS,
)


@functools.cache
def _child(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, looked up once per label set (closed sets: the series are bounded
    anyway); `labels()` takes a lock and builds a key on every call (once per message)."""
    return metric.labels(*labels)


def inbound_handled(*, action: str, seconds: float) -> None:
    _child(INBOUND, action, "handled").inc()
    _child(HANDLER_SECONDS, action).observe(seconds)


def inbound_cant_do(*, action: str, reason: str, seconds: float) -> None:
    _child(INBOUND, action, "cant-do").inc()
    _child(CANT_DO, action, reason).inc()
    _child(HANDLER_SECONDS, action).observe(seconds)


def inbound_dropped(*, action: str, cause: str, seconds: float | None = None) -> None:
    INBOUND.labels(action=action, outcome="dropped").inc()
    DROPPED.labels(stage="dispatch", cause=cause).inc()
    if seconds is not None:
        HANDLER_SECONDS.labels(action=action).observe(seconds)


def inbound_error(*, action: str, seconds: float) -> None:
    INBOUND.labels(action=action, outcome="error").inc()
    HANDLER_SECONDS.labels(action=action).observe(seconds)


def intake_dropped(*, cause: str) -> None:
    DROPPED.labels(stage="intake", cause=cause).inc()
