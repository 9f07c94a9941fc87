"""Market prices for market-priced orders (docs/PROTOCOL.md §Prices).

- `refresh_prices` (scheduled every `price_refresh_interval_seconds()`) polls the
  providers over HTTP, aggregates per currency and upserts `BtcPrice` rows.
- The order path only reads: `btc_price_get` refuses with `PriceTooStale` or
  `PriceUnavailable`, and `sats_for_fiat` / `market_amount_sats` turn a price into sats
  exactly as Mostro does.

Modules: `providers` (who to ask, how to read the answer), `eltoque` (CUP/MLC cross quotes),
`nostr_feed` (trusted nodes' 30078 events), `fetch` (HTTP), `breaker` (per-provider circuit
breaker), `aggregate` (median, outlier cut, cross quotes, nostr fallback), `refresh` (the job),
`rates_event` (our own 30078), `quotes` (the order-path reads and the sats math), `on_demand` (a tick for a
message whose currency has no price yet), `fiat` (the currency allowlist).
"""

from orders.pricing.aggregate import AggregatedPrice, price_aggregate, quotes_aggregate
from orders.pricing.breaker import BREAKERS, BreakerBoard
from orders.pricing.errors import PriceError, PriceProviderError, PriceTooStale, PriceUnavailable
from orders.pricing.fiat import is_fiat_code
from orders.pricing.providers import (
    PROVIDER_KINDS,
    PriceProvider,
    price_provider_parse,
    price_providers_configured,
    provider_fetch,
)
from orders.pricing.quotes import (
    btc_price_for_trade,
    btc_price_get,
    market_amount_sats,
    market_price_ready,
    sats_for_fiat,
)
from orders.pricing.refresh import price_refresh_interval_seconds, prices_refresh, refresh_prices

__all__ = [
    "BREAKERS",
    "PROVIDER_KINDS",
    "AggregatedPrice",
    "BreakerBoard",
    "PriceError",
    "PriceProvider",
    "PriceProviderError",
    "PriceTooStale",
    "PriceUnavailable",
    "btc_price_for_trade",
    "btc_price_get",
    "is_fiat_code",
    "market_amount_sats",
    "market_price_ready",
    "price_aggregate",
    "price_provider_parse",
    "price_providers_configured",
    "price_refresh_interval_seconds",
    "prices_refresh",
    "provider_fetch",
    "quotes_aggregate",
    "refresh_prices",
    "sats_for_fiat",
]
