"""Price errors: the order-path refusals and the refresh job's per-provider failure."""

from datetime import datetime


class PriceError(Exception):
    """Base class of the order-path price errors raised by `btc_price_get`."""


class PriceUnavailable(PriceError):
    """No price was ever stored for the currency (Mostro `NoAPIResponse`: internal, no reply)."""

    def __init__(self, fiat_code: str) -> None:
        super().__init__(f"no BTC price stored for {fiat_code}")
        self.fiat_code = fiat_code


class PriceTooStale(PriceError):
    """The stored price is older than the staleness window (answered with `CantDo(price_too_stale)`)."""

    def __init__(self, fiat_code: str, *, as_of: datetime, max_age_seconds: int) -> None:
        super().__init__(f"BTC price for {fiat_code} is from {as_of.isoformat()}, older than {max_age_seconds}s")
        self.fiat_code = fiat_code
        self.as_of = as_of
        self.max_age_seconds = max_age_seconds


class PriceProviderError(Exception):
    """One provider's poll failed (transport, HTTP status, size, timeout, or body shape).

    Never reaches the order path: the refresh job counts it against the provider's
    circuit breaker and the provider contributes nothing to that tick.
    """
