"""The price refresh job: poll every provider, aggregate, upsert `BtcPrice` (docs/PROTOCOL.md §Prices)
and queue the 30078 rates event in the same transaction (docs/PROTOCOL.md §Rates-event).

All HTTP happens first, concurrently, with no transaction open; the rows are then written
in one short transaction. A tick in which nothing usable arrived writes nothing, so the
last-known-good rows stay (and age out through the staleness check on the order path).
"""

import logging
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orders.models import BtcPrice
from orders.pricing.aggregate import AggregatedPrice, quotes_aggregate
from orders.pricing.breaker import BREAKERS, BreakerBoard
from orders.pricing.errors import PriceProviderError
from orders.pricing.nostr_feed import NostrQuotes
from orders.pricing.providers import PriceProvider, Quotes, price_providers_configured, provider_fetch
from orders.pricing.rates_event import rates_event_enqueue

logger = logging.getLogger(__name__)

MIN_REFRESH_INTERVAL_SECONDS = 60
# Slack for the thread hand-off on top of the providers' own time budget; a provider still
# running after it (a DNS lookup, which no socket timeout covers) is counted as failed.
_POLL_GRACE_SECONDS = 1.0


def price_refresh_interval_seconds() -> int:
    """The schedule interval for `refresh_prices`: the setting, clamped to at least 60 s."""
    return max(MIN_REFRESH_INTERVAL_SECONDS, settings.MOSTRO_EXCHANGE_RATES_UPDATE_INTERVAL_SECONDS)


def refresh_prices() -> dict[str, int]:
    """Scheduled job (django-q2): one refresh tick. Dotted path `orders.pricing.refresh_prices`."""
    return prices_refresh()


def prices_refresh(*, now: datetime | None = None, breakers: BreakerBoard | None = None) -> dict[str, int]:
    """Poll the providers whose breaker is closed, aggregate, and upsert the fresh prices.

    Returns the tick's counts: `providers` configured, `skipped` by an open breaker,
    `polled`, `succeeded`, `failed`, and `currencies` written. `now` stamps `as_of`
    (default: the current time); `breakers` replaces the process-wide board (tests).
    Safe to run twice: a second run rewrites the same rows with a newer `as_of`.
    """
    board = BREAKERS if breakers is None else breakers
    providers = price_providers_configured()
    due = [provider for provider in providers if board.is_available(provider.key)]
    timeout = float(settings.MOSTRO_PRICE_PROVIDER_TIMEOUT_SECONDS)
    answered: list[tuple[str, Quotes]] = []
    for provider, outcome in _poll(due, timeout=timeout):
        if isinstance(outcome, PriceProviderError):
            cooldown = board.record_failure(provider.key)
            logger.warning("Price provider %s failed: %s", provider.key, outcome)
            if cooldown is not None:
                logger.warning("Price provider %s skipped for %.0f s", provider.key, cooldown)
        else:
            board.record_success(provider.key)
            answered.append((provider.kind, outcome))

    outlier_pct = Decimal(str(settings.MOSTRO_PRICE_OUTLIER_THRESHOLD_PCT))
    aggregated = quotes_aggregate(answered, outlier_pct=outlier_pct)
    if aggregated:
        _prices_store(aggregated, as_of=now or timezone.now(), observed_at=_nostr_observed_at(answered))
    elif due:
        logger.warning("Price refresh got no usable quote; keeping the last-known-good prices")

    counts = {
        "providers": len(providers),
        "skipped": len(providers) - len(due),
        "polled": len(due),
        "succeeded": len(answered),
        "failed": len(due) - len(answered),
        "currencies": len(aggregated),
    }
    logger.info(
        "Price refresh: %d providers, %d skipped, %d polled, %d succeeded, %d failed, %d currencies stored",
        counts["providers"],
        counts["skipped"],
        counts["polled"],
        counts["succeeded"],
        counts["failed"],
        counts["currencies"],
    )
    return counts


def _poll(providers: list[PriceProvider], *, timeout: float) -> list[tuple[PriceProvider, Quotes | PriceProviderError]]:
    """Fetch every provider concurrently; each outcome is its quotes or its error.

    No database access happens in the worker threads. An exception other than
    PriceProviderError is a bug and propagates.
    """
    if not providers:
        return []
    pool = ThreadPoolExecutor(max_workers=len(providers), thread_name_prefix="price-provider")
    try:
        futures: dict[Future[Quotes], PriceProvider] = {
            pool.submit(provider_fetch, provider, timeout=timeout): provider for provider in providers
        }
        done, _pending = wait(futures, timeout=timeout + _POLL_GRACE_SECONDS)
        outcomes: list[tuple[PriceProvider, Quotes | PriceProviderError]] = []
        for future, provider in futures.items():
            if future not in done:
                outcomes.append((provider, PriceProviderError(f"no answer within {timeout:g} s")))
                continue
            error = future.exception()
            if error is None:
                outcomes.append((provider, future.result()))
            elif isinstance(error, PriceProviderError):
                outcomes.append((provider, error))
            else:
                raise error
        return outcomes
    finally:
        # Never wait for a straggler: its socket timeout ends it in the background.
        pool.shutdown(wait=False, cancel_futures=True)


def _nostr_observed_at(answered: list[tuple[str, Quotes]]) -> datetime | None:
    for _kind, quotes in answered:
        if isinstance(quotes, NostrQuotes):
            return datetime.fromtimestamp(quotes.observed_at, tz=UTC)
    return None


@transaction.atomic(durable=True)
def _prices_store(
    aggregated: dict[str, AggregatedPrice], *, as_of: datetime, observed_at: datetime | None = None
) -> None:
    """Upsert one row per fresh currency; currencies absent from this tick are left as they are.

    A price from trusted nodes' events alone is as old as the event it came from (`observed_at`),
    so the staleness limit counts from there, not from when this node read it.
    """
    BtcPrice.objects.bulk_create(
        [
            BtcPrice(
                fiat_code=code,
                price=result.price,
                as_of=min(observed_at, as_of) if result.from_nostr_only and observed_at else as_of,
                sources=",".join(result.sources),
            )
            for code, result in aggregated.items()
        ],
        update_conflicts=True,
        unique_fields=["fiat_code"],
        update_fields=["price", "as_of", "sources"],
    )
    rates_event_enqueue(
        aggregated=aggregated, now=int(as_of.timestamp()), update_interval_seconds=price_refresh_interval_seconds()
    )
