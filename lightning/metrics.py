"""LND call metrics (prometheus-client, no Django): latency and errors by gRPC method.

Recorded by `lightning.lnd.LndClient`, so they describe the real node (the in-memory fake
records nothing). Process-local; the shell persists and serves them (`mostro_site.ops`).
"""

from prometheus_client import Counter, Histogram

# Unary calls take milliseconds; payments wait for their route (up to the payment timeout).
LND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

LND_CALL_SECONDS = Histogram(
    "mostro_lnd_call_duration_seconds", "LND gRPC call time, by method.", ["method"], buckets=LND_BUCKETS
)
LND_CALL_ERRORS = Counter(
    "mostro_lnd_call_errors",
    "LND gRPC calls that failed, by method and error (the typed lightning error's class).",
    ["method", "error"],
)


def lnd_call_observed(*, method: str, seconds: float, error: str = "") -> None:
    LND_CALL_SECONDS.labels(method=method).observe(seconds)
    if error:
        LND_CALL_ERRORS.labels(method=method, error=error).inc()
