"""El Toque: the informal Cuban market rate for CUP and MLC (docs/PROTOCOL.md §Prices).

El Toque is not a BTC price source: it publishes how many CUP one unit of a foreign currency
fetches on the street. So it answers *cross quotes* against USD — CUP per USD, and MLC per USD
(CUP per USD ÷ CUP per MLC) — which the aggregation turns into BTC prices with this tick's
aggregated USD/BTC from the direct providers (`orders.pricing.aggregate`). Without a USD anchor
in a tick, CUP and MLC keep their last-known-good prices.

`GET {url}/v1/trmi?date_from=…&date_to=…` with `Authorization: Bearer <token>`; the endpoint
answers the latest rate published inside the window, so the window reaches 48 h back (the rate
is published about daily). Answer: `{"tasas": {"USD": 490.0, "MLC": 200.0, "ECU": 540.0, …},
"date": …}` (CUP per unit; `ECU` is the euro, not used: EUR comes from the direct providers).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from orders.pricing.errors import PriceProviderError
from orders.pricing.fetch import http_get_json, price_number

LOOKBACK = timedelta(hours=48)
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class CrossQuote:
    """A price in units of another currency: `value` of this currency per 1 `base`."""

    base: str
    value: Decimal


def eltoque_request_url(base_url: str, *, now: datetime | None = None) -> str:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    window = {"date_from": (now - LOOKBACK).strftime(_DATE_FORMAT), "date_to": now.strftime(_DATE_FORMAT)}
    return f"{base_url}/v1/trmi?{urlencode(window)}"


def eltoque_fetch(base_url: str, *, token: str, timeout: float) -> dict[str, CrossQuote]:
    """CUP and MLC per USD from El Toque, or PriceProviderError (no token, no usable rate)."""
    if not token.strip():
        raise PriceProviderError("eltoque needs MOSTRO_ELTOQUE_TOKEN (a Bearer API token)")
    body = http_get_json(
        eltoque_request_url(base_url), timeout=timeout, headers={"Authorization": f"Bearer {token.strip()}"}
    )
    quotes = eltoque_parse(body)
    if not quotes:
        raise PriceProviderError("no usable CUP/USD rate in the answer")
    return quotes


def eltoque_parse(body: Any) -> dict[str, CrossQuote]:
    """The cross quotes in a `/v1/trmi` answer; empty without a usable CUP-per-USD figure."""
    tasas = body.get("tasas") if isinstance(body, dict) else None
    if not isinstance(tasas, dict):
        raise PriceProviderError("unexpected answer shape: 'tasas' is not an object")
    cup_per_usd = price_number(tasas.get("USD"))
    if cup_per_usd is None:
        return {}
    quotes = {"CUP": CrossQuote(base="USD", value=cup_per_usd)}
    cup_per_mlc = price_number(tasas.get("MLC"))
    if cup_per_mlc is not None:
        quotes["MLC"] = CrossQuote(base="USD", value=cup_per_usd / cup_per_mlc)
    return quotes
