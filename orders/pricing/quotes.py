"""The order path's price reads and sats quotes. No HTTP here (Mostro #783).

The sats math is done in IEEE-754 doubles on purpose. Mostro computes
`(fiat as f64 / price) * 1E8`, optionally `sats -= (premium as f64 / 100.0) * sats`, and
truncates with `as i64`; exact decimal arithmetic gives a different integer whenever the
double lands just below a whole number (9 USD at 30,000 USD/BTC is 30,000 sats exactly,
but 29,999 in Mostro). Clients and other Mostro nodes quote with that formula, so this
module reproduces it operation by operation: Python floats are the same doubles and `/`,
`*`, `-` round the same way. The stored Decimal price is converted with `float()`, which
rounds to the nearest double exactly as serde does when Mostro parses the provider's JSON,
so a single-source price gives the very same double in both implementations.
"""

import math
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from mostro_site.config import node_config
from nostrbridge.context import RetryLater
from nostrbridge.protocol.enums import CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.wake import INBOX_CHANNEL, wake
from orders.models import BtcPrice
from orders.pricing.errors import PriceTooStale, PriceUnavailable
from orders.pricing.on_demand import price_fetcher

_SATS_PER_BTC = 1e8
_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1


def btc_price_get(*, fiat_code: str, now: datetime | None = None) -> Decimal:
    """The stored price of 1 BTC in `fiat_code` (any case), if it is fresh enough.

    Raises PriceUnavailable when no row exists and PriceTooStale when `as_of` is older
    than `max_price_staleness_seconds`; a price exactly that old is still served
    (Mostro's `now - as_of <= max`).
    """
    code = fiat_code.upper()
    row = BtcPrice.objects.filter(fiat_code=code).values_list("price", "as_of").first()
    if row is None:
        raise PriceUnavailable(code)
    price, as_of = row
    max_age_seconds = node_config().max_price_staleness_seconds
    if (now or timezone.now()) - as_of > timedelta(seconds=max_age_seconds):
        raise PriceTooStale(code, as_of=as_of, max_age_seconds=max_age_seconds)
    return price


def btc_price_for_trade(fiat_code: str) -> Decimal:
    """The price a `new-order` or a take quotes with, refusals in protocol terms
    (docs/PROTOCOL.md §Prices): a stale price is `price_too_stale`; no price at all waits for a
    fetch (`market_price_ready`, which the handlers call first)."""
    try:
        return btc_price_get(fiat_code=fiat_code)
    except PriceTooStale as exc:
        raise CantDo(CantDoReason.PRICE_TOO_STALE) from exc
    except PriceUnavailable as exc:
        raise _price_wait(str(exc)) from exc


def market_price_ready(fiat_code: str) -> None:
    """First step of the handlers that price a market order, before the trade-index gate (which
    registers a first-time identity, so a retry after it would be refused `invalid_trade_index`).

    No price stored at all (a cold start, a currency nobody traded yet): a refresh tick is
    started (`orders.pricing.on_demand`) and the message goes back to the inbox until the price
    is in; once it has waited `MOSTRO_PRICE_WAIT_SECONDS`, it is answered `price_too_stale`
    (the daemon drops it silently, and its client waits forever). A stale price is not raised
    here: it is answered at its own step."""
    code = fiat_code.upper()
    if not BtcPrice.objects.filter(fiat_code=code).exists():
        raise _price_wait(f"no BTC price stored for {code}")


def _price_wait(why: str) -> RetryLater:
    fetcher = price_fetcher()
    fetcher.on_done = _nudge_inbox
    return RetryLater(
        why,
        seconds=fetcher.request(),
        give_up_after_s=float(settings.MOSTRO_PRICE_WAIT_SECONDS),
        give_up=CantDoReason.PRICE_TOO_STALE,
    )


def _nudge_inbox() -> None:
    wake(INBOX_CHANNEL)  # a refresh tick ended: a message waiting for its price is looked at again


def sats_for_fiat(*, fiat_amount: int, price: Decimal) -> int:
    """Sats for `fiat_amount` at `price`, without premium: the new-order limit check.

    Mostro `calculate_and_check_quote`: `((fiat as f64 / price) * 1E8) as i64`.
    """
    return market_amount_sats(fiat_amount=fiat_amount, price=price, premium=0)


def market_amount_sats(*, fiat_amount: int, price: Decimal, premium: int) -> int:
    """Sats for `fiat_amount` at `price` minus `premium` percent: the amount fixed at take.

    Mostro `get_market_quote`, in doubles (see the module docstring). A negative premium
    raises the amount; the result is truncated toward zero and saturates like `as i64`.
    """
    price_f64 = float(price)
    if not price_f64 > 0:
        raise ValueError(f"price must be positive, got {price}")
    sats = (float(fiat_amount) / price_f64) * _SATS_PER_BTC
    if premium != 0:
        sats -= (float(premium) / 100.0) * sats
    return _f64_as_i64(sats)


def _f64_as_i64(value: float) -> int:
    """Rust's `f64 as i64`: truncate toward zero, NaN becomes 0, out-of-range saturates."""
    if math.isnan(value):
        return 0
    if value >= 2.0**63:
        return _I64_MAX
    if value < -(2.0**63):
        return _I64_MIN
    return int(value)
