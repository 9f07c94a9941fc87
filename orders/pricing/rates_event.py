"""The node's kind 30078 exchange-rates event (docs/PROTOCOL.md §Rates-event).

Queued in the same transaction that stores a refresh tick's prices, so the published rates
are exactly the stored ones; the relay bridge publishes it after commit. Only the currencies
this tick produced are in it (a currency whose providers failed keeps its row, but is not
re-announced with an old price).
"""

from django.conf import settings

from nostrbridge.outbox import enqueue_event, next_created_at, node_keys
from nostrbridge.protocol.published_events import RATES_D_TAG, RATES_KIND, build_rates_event
from orders.pricing.aggregate import AggregatedPrice


def rates_event_enqueue(*, aggregated: dict[str, AggregatedPrice], now: int, update_interval_seconds: int) -> None:
    """Queue one 30078 revision for this tick, when `publish_exchange_rates_to_nostr` is on."""
    # Prices taken from other nodes' events alone are theirs to publish, not ours (docs/PROTOCOL.md §Rates-event).
    own = {code: result for code, result in aggregated.items() if not result.from_nostr_only}
    if not settings.MOSTRO_PUBLISH_EXCHANGE_RATES_TO_NOSTR or not own:
        return
    sources = sorted({source for result in own.values() for source in result.sources})
    rates = {code: own[code].price for code in sorted(own)}
    event = build_rates_event(
        node_keys(),
        rates=rates,
        sources=sources,
        update_interval_seconds=update_interval_seconds,
        now=next_created_at(kind=RATES_KIND, d_tag=RATES_D_TAG, now=now),
    )
    enqueue_event(event=event, d_tag=RATES_D_TAG)
