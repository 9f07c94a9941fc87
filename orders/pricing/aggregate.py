"""Combine the providers' quotes into one price per currency (Mostro src/price/aggregate.rs).

Per currency, over the candidates that survived parsing (finite, positive, allow-listed):
1 → that value; 2 → the mean; 3 or more → the median, then the mean of the values within
`outlier_pct` % of it (the bound is inclusive). With an even count the median is the
midpoint of the two central values and may match none of them; when nothing lies within
the band the median itself is the price.

The arithmetic is Decimal, not Mostro's f64, so the stored value is exact and identical on
every database; the result is rounded half-even to the 8 decimals of `BtcPrice.price`.
For one source this is exactly the number the provider sent.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from orders.pricing.eltoque import CrossQuote
from orders.pricing.providers import NOSTR

_PRICE_QUANTUM = Decimal("0.00000001")
_PRECISION = 50  # well above the 24 digits a stored price can have


@dataclass(frozen=True)
class AggregatedPrice:
    price: Decimal
    sources: tuple[str, ...]  # sorted provider kinds whose values made the price

    @property
    def from_nostr_only(self) -> bool:
        """Sourced from trusted nodes' events alone: stamped with their time, never republished."""
        return self.sources == (NOSTR,)


def price_aggregate(values: Sequence[Decimal], *, outlier_pct: Decimal) -> Decimal | None:
    """The aggregated price of one currency's candidate values; None without a usable one."""
    result = _combine([("", value) for value in values], outlier_pct=outlier_pct)
    return None if result is None else result[0]


def quotes_aggregate(
    quotes_by_provider: Sequence[tuple[str, Mapping[str, Decimal | CrossQuote]]], *, outlier_pct: Decimal
) -> dict[str, AggregatedPrice]:
    """Aggregate per currency the quotes of each provider that answered this tick.

    `quotes_by_provider` pairs a provider kind with its quotes; a failed provider is simply
    absent. Currencies no provider reported are absent from the result, which is what keeps
    their last-known-good rows. Three kinds of candidates, in this order (docs/PROTOCOL.md §Prices):
    direct BTC prices; cross quotes (El Toque's CUP per USD), each multiplied by the
    aggregated direct price of its base currency this tick, and dropped without one; and the
    `nostr` provider's prices, used only for currencies that have no other candidate.
    """
    direct: dict[str, list[tuple[str, Decimal]]] = {}
    cross: list[tuple[str, str, CrossQuote]] = []
    fallback: dict[str, list[tuple[str, Decimal]]] = {}
    for kind, quotes in quotes_by_provider:
        for code, quote in quotes.items():
            if isinstance(quote, CrossQuote):
                cross.append((kind, code, quote))
            else:
                (fallback if kind == NOSTR else direct).setdefault(code, []).append((kind, quote))
    candidates = {code: list(values) for code, values in direct.items()}
    for kind, code, quote in cross:
        anchor = _combine(direct.get(quote.base, []), outlier_pct=outlier_pct)
        if anchor is not None:
            with localcontext() as context:
                context.prec = _PRECISION
                candidates.setdefault(code, []).append((kind, quote.value * anchor[0]))
    for code, values in fallback.items():
        candidates.setdefault(code, values)
    aggregated: dict[str, AggregatedPrice] = {}
    for code, currency_candidates in sorted(candidates.items()):
        result = _combine(currency_candidates, outlier_pct=outlier_pct)
        if result is not None:
            price, contributors = result
            aggregated[code] = AggregatedPrice(price=price, sources=tuple(sorted(set(contributors))))
    return aggregated


def _combine(candidates: list[tuple[str, Decimal]], *, outlier_pct: Decimal) -> tuple[Decimal, list[str]] | None:
    clean = sorted(((kind, value) for kind, value in candidates if value.is_finite() and value > 0), key=lambda c: c[1])
    if not clean:
        return None
    with localcontext() as context:
        context.prec = _PRECISION
        if len(clean) <= 2:
            kept = clean
            value = _mean([v for _, v in kept])
        else:
            median, central = _median(clean)
            tolerance = median * outlier_pct / 100
            kept = [(kind, v) for kind, v in clean if abs(v - median) <= tolerance]
            if kept:
                value = _mean([v for _, v in kept])
            else:
                kept, value = central, median
        price = value.quantize(_PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)
    if price <= 0:
        return None
    return price, [kind for kind, _ in kept]


def _mean(values: list[Decimal]) -> Decimal:
    return sum(values, Decimal(0)) / len(values)


def _median(sorted_candidates: list[tuple[str, Decimal]]) -> tuple[Decimal, list[tuple[str, Decimal]]]:
    """The median of sorted candidates and the one or two candidates it is made of."""
    middle = len(sorted_candidates) // 2
    if len(sorted_candidates) % 2:
        return sorted_candidates[middle][1], [sorted_candidates[middle]]
    central = sorted_candidates[middle - 1 : middle + 1]
    return (central[0][1] + central[1][1]) / 2, central
