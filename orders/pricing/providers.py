"""The price providers: which are configured, how each is asked, how its answer is read.

The primary provider is the Yadio-compatible `bitcoin_price_api_url` of the node config
(operator-overridable, Mostro's legacy mode); `MOSTRO_PRICE_PROVIDERS` adds `kind:url`
entries. Every provider answers a `dict[fiat_code, Decimal]` (fiat per 1 BTC) or raises
`PriceProviderError`; a partial map with bogus values is never returned. Two exceptions:
El Toque answers CUP/MLC per USD (`CrossQuote`, resolved by the aggregation), and `nostr`
answers `NostrQuotes`, which also carry when the trusted node observed them.
"""

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from mostro_site.config import node_config
from nostrbridge.node_identity import decode_npub
from orders.pricing.eltoque import CrossQuote, eltoque_fetch
from orders.pricing.errors import PriceProviderError
from orders.pricing.fetch import http_get_json, price_number
from orders.pricing.fiat import is_fiat_code
from orders.pricing.nostr_feed import NostrQuotes, nostr_rates_fetch

logger = logging.getLogger(__name__)

# A provider's answer: BTC prices by fiat code, or (El Toque) prices against another fiat.
Quotes = dict[str, Decimal] | dict[str, CrossQuote]

YADIO = "yadio"
COINGECKO = "coingecko"
CURRENCY_API = "currency_api"
BLOCKCHAIN = "blockchain"
ELTOQUE = "eltoque"  # CUP/MLC cross quotes against USD (orders.pricing.eltoque)
NOSTR = "nostr"  # trusted nodes' 30078 events, a fallback (orders.pricing.nostr_feed)
PROVIDER_KINDS = (YADIO, COINGECKO, CURRENCY_API, BLOCKCHAIN, ELTOQUE, NOSTR)

# CoinGecko wants an explicit list; codes it does not know are simply absent from the answer.
# Mostro's list: the fiat subset of its supported vs_currencies (no CUP/MLC, no VEF).
COINGECKO_VS_CURRENCIES = (
    "usd,eur,gbp,jpy,ars,aud,bdt,bhd,bmd,brl,cad,chf,clp,cny,czk,dkk,gel,hkd,huf,idr,ils,inr,krw,kwd,"
    "lkr,mmk,mxn,myr,ngn,nok,nzd,php,pkr,pln,rub,sar,sek,sgd,thb,try,twd,uah,vnd,zar"
)
# currency-api's CUP and MLC are the official Cuban rates (~26 CUP/USD), a different market
# from the informal rate Yadio quotes (~400 CUP/USD); averaging the two would be meaningless.
# Mostro's shipped config scopes them out the same way (`except = ["CUP", "MLC"]`).
_CURRENCY_API_EXCLUDED = frozenset({"CUP", "MLC"})


@dataclass(frozen=True)
class PriceProvider:
    kind: str
    url: str  # base URL, no trailing slash

    @property
    def key(self) -> str:
        """Identity for the circuit breaker and the logs."""
        return f"{self.kind}:{self.url}"

    def request_url(self) -> str:
        return self.url + _PATHS[self.kind]


_PATHS = {
    YADIO: "/exrates/BTC",
    COINGECKO: f"/simple/price?ids=bitcoin&vs_currencies={COINGECKO_VS_CURRENCIES}",
    CURRENCY_API: "/currencies/btc.min.json",
    BLOCKCHAIN: "/ticker",
}


def price_provider_parse(entry: str) -> PriceProvider:
    """Parse one `kind:url` entry of MOSTRO_PRICE_PROVIDERS; ValueError when it is unusable.

    `nostr` takes no URL (it asks the node's relays) or one `ws(s)://` relay to ask instead.
    """
    kind, separator, url = entry.strip().partition(":")
    kind = kind.strip().lower()
    url = url.strip().rstrip("/")
    if kind == NOSTR:
        if url and urlsplit(url).scheme not in ("ws", "wss"):
            raise ValueError("nostr takes no URL, or a ws(s):// relay")
        return PriceProvider(kind=kind, url=url)
    if not separator or kind not in PROVIDER_KINDS:
        raise ValueError(f"expected '<kind>:<url>' with kind in {', '.join(PROVIDER_KINDS)}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("the URL must be absolute http(s)")
    return PriceProvider(kind=kind, url=url)


def price_providers_configured() -> list[PriceProvider]:
    """The primary Yadio-compatible provider, then the valid extra ones, without duplicates.

    An invalid extra entry is logged and skipped so one typo cannot stop the whole feed.
    """
    providers: list[PriceProvider] = []
    primary = node_config().bitcoin_price_api_url.strip().rstrip("/")
    if primary:
        providers.append(PriceProvider(kind=YADIO, url=primary))
    for entry in settings.MOSTRO_PRICE_PROVIDERS:
        try:
            provider = price_provider_parse(entry)
        except ValueError as exc:
            logger.error("Ignoring price provider entry %r: %s", entry, exc)
            continue
        if provider not in providers:
            providers.append(provider)
    return providers


def provider_fetch(provider: PriceProvider, *, timeout: float) -> Quotes:
    """Poll one provider; the fiat quotes it reports, or PriceProviderError.

    An answer with no usable quote at all is a failure too, so that a provider that went
    silent (an empty map, every value null) counts against its circuit breaker.
    """
    if provider.kind == ELTOQUE:
        return dict(eltoque_fetch(provider.url, token=settings.MOSTRO_ELTOQUE_TOKEN, timeout=timeout))
    if provider.kind == NOSTR:
        answer = _nostr_fetch(provider, timeout=timeout)
        rates: Mapping[str, Any] = answer
    else:
        rates = _EXTRACTORS[provider.kind](http_get_json(provider.request_url(), timeout=timeout))
    excluded = _CURRENCY_API_EXCLUDED if provider.kind == CURRENCY_API else frozenset()
    quotes: dict[str, Decimal] = {}
    for raw_code, raw_value in rates.items():
        code = raw_code.upper()
        value = price_number(raw_value)
        if value is None or code in excluded or not is_fiat_code(code):
            continue
        quotes[code] = value
    if not quotes:
        raise PriceProviderError("no usable fiat quote in the answer")
    if provider.kind == NOSTR:
        return NostrQuotes(quotes, observed_at=answer.observed_at, event_id=answer.event_id)
    return quotes


def _nostr_fetch(provider: PriceProvider, *, timeout: float) -> NostrQuotes:
    relays = [provider.url] if provider.url else list(node_config().relays)
    try:
        trusted = trusted_node_pubkeys()
    except ValueError as exc:  # `manage.py check` reports it too (mostro.E017)
        raise PriceProviderError(str(exc)) from None
    return nostr_rates_fetch(
        relays,
        trusted=trusted,
        timeout=timeout,
        max_age_s=settings.MOSTRO_MAX_PRICE_STALENESS_SECONDS,
    )


def trusted_node_pubkeys() -> list[str]:
    """MOSTRO_PRICE_TRUSTED_NODES as hex pubkeys (npub or hex accepted); ValueError on a bad one."""
    pubkeys = []
    for entry in settings.MOSTRO_PRICE_TRUSTED_NODES:
        entry = entry.strip()
        if not entry:
            continue
        pubkey = decode_npub(entry) if entry.startswith("npub1") else entry.lower()
        if len(pubkey) != 64 or any(char not in "0123456789abcdef" for char in pubkey):
            raise ValueError(f"MOSTRO_PRICE_TRUSTED_NODES entry {entry!r} is not a pubkey (hex or npub)")
        pubkeys.append(pubkey)
    return pubkeys


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise PriceProviderError(f"unexpected answer shape: {what} is not an object")
    return value


def _yadio_rates(body: Any) -> Mapping[str, Any]:
    # {"BTC": {"USD": 65000.5, ...}, "base": "BTC", "timestamp": ...}
    return _object(_object(body, "body").get("BTC"), "'BTC'")


def _coingecko_rates(body: Any) -> Mapping[str, Any]:
    # {"bitcoin": {"usd": 65000.5, ...}}
    return _object(_object(body, "body").get("bitcoin"), "'bitcoin'")


def _currency_api_rates(body: Any) -> Mapping[str, Any]:
    # {"date": "2024-06-01", "btc": {"usd": 65000.5, ...}}
    return _object(_object(body, "body").get("btc"), "'btc'")


def _blockchain_rates(body: Any) -> Mapping[str, Any]:
    # {"USD": {"15m": ..., "last": 65000.5, "buy": ..., "sell": ..., "symbol": "USD"}, ...}
    # `last` is the mid-market price; buy/sell carry the exchange spread and are ignored.
    tickers = _object(body, "body")
    return {code: entry.get("last") for code, entry in tickers.items() if isinstance(entry, dict)}


_EXTRACTORS: dict[str, Callable[[Any], Mapping[str, Any]]] = {
    YADIO: _yadio_rates,
    COINGECKO: _coingecko_rates,
    CURRENCY_API: _currency_api_rates,
    BLOCKCHAIN: _blockchain_rates,
}
