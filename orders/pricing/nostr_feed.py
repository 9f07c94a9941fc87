"""Prices from other Mostro nodes' kind 30078 `mostro-rates` events (docs/PROTOCOL.md §Prices, `nostr`).

For operators whose price APIs are blocked while Nostr relays are reachable: the node asks its
relays for the latest rates event of each pubkey in `MOSTRO_PRICE_TRUSTED_NODES` and uses the
freshest usable one. The aggregation uses these prices only for currencies no other provider
covered this tick, stamps them with the event's own `created_at` (so a rate does not look
fresher than it is), and the node never republishes them in its own 30078 event.

An event counts only if it is a correctly signed kind 30078 with `d` = `mostro-rates` from a
trusted key, not dated in the future, not older than `MOSTRO_MAX_PRICE_STALENESS_SECONDS` and
not expired by its own NIP-40 tag; if the freshest one's content is unusable the next one is
tried. At most 64 candidate events per relay are kept, so a relay ignoring the filter cannot
make the job buffer without bound.
"""

import asyncio
import json
import logging
import os
import time
from decimal import Decimal
from typing import Any

from websockets.asyncio.client import connect

from nostrbridge.protocol.errors import ProtocolError
from nostrbridge.protocol.nip01 import Event
from nostrbridge.protocol.published_events import RATES_D_TAG, RATES_KIND
from orders.pricing.errors import PriceProviderError
from orders.pricing.fetch import price_json_decode, price_number

logger = logging.getLogger(__name__)

MAX_CANDIDATES_PER_RELAY = 64
MAX_FRAME_BYTES = 256 * 1024


class NostrQuotes(dict[str, Decimal]):
    """Quotes from one trusted node's event; `observed_at` is that event's `created_at`."""

    def __init__(self, quotes: dict[str, Decimal], *, observed_at: int, event_id: str) -> None:
        super().__init__(quotes)
        self.observed_at = observed_at
        self.event_id = event_id


def nostr_rates_fetch(
    relays: list[str], *, trusted: list[str], timeout: float, max_age_s: int, now: int | None = None
) -> NostrQuotes:
    """The rates of the freshest usable trusted-node event found on `relays`, or PriceProviderError."""
    if not trusted:
        raise PriceProviderError("nostr needs MOSTRO_PRICE_TRUSTED_NODES")
    if not relays:
        raise PriceProviderError("nostr needs at least one relay")
    events = asyncio.run(_query_relays(relays, trusted=trusted, budget_s=timeout))
    now = int(time.time()) if now is None else now
    for event in rates_candidates(events, trusted=trusted, now=now, max_age_s=max_age_s):
        quotes = rates_content_parse(event.content)
        if quotes:
            return NostrQuotes(quotes, observed_at=event.created_at, event_id=event.id)
    raise PriceProviderError("no fresh, valid rates event from a trusted node")


def rates_candidates(events: list[Event], *, trusted: list[str], now: int, max_age_s: int) -> list[Event]:
    """The events that may be used, freshest first (duplicates from several relays removed)."""
    usable = {
        event.id: event
        for event in events
        if _is_rates_event(event, trusted)
        and now - max_age_s <= event.created_at <= now
        and not _expired(event, now)
        and event.verify()
    }
    return sorted(usable.values(), key=lambda event: (-event.created_at, event.id))


def rates_content_parse(content: str) -> dict[str, Decimal]:
    """`{"BTC": {"USD": 65000.5, …}}` → quotes by upper-case code (junk values skipped)."""
    try:
        body = price_json_decode(content)
    except (ValueError, RecursionError):
        return {}
    rates = body.get("BTC") if isinstance(body, dict) else None
    if not isinstance(rates, dict):
        return {}
    return {code.upper(): value for code, raw in rates.items() if (value := price_number(raw)) is not None}


def _is_rates_event(event: Event, trusted: list[str]) -> bool:
    return event.kind == RATES_KIND and event.pubkey in trusted and event.tag_value("d") == RATES_D_TAG


def _expired(event: Event, now: int) -> bool:
    expiration = event.tag_value("expiration")
    return expiration is not None and (not expiration.isdigit() or int(expiration) <= now)


async def _query_relays(relays: list[str], *, trusted: list[str], budget_s: float) -> list[Event]:
    results = await asyncio.gather(*(_query_relay(url, trusted=trusted, budget_s=budget_s) for url in relays))
    return [event for events in results for event in events]


async def _query_relay(url: str, *, trusted: list[str], budget_s: float) -> list[Event]:
    """The plausible rates events one relay stores; whatever arrived before a failure or the deadline."""
    sub_id = "mostro-price-" + os.urandom(4).hex()
    wanted = {"kinds": [RATES_KIND], "authors": trusted, "#d": [RATES_D_TAG], "limit": MAX_CANDIDATES_PER_RELAY}
    found: list[Event] = []
    try:
        async with asyncio.timeout(budget_s):
            async with connect(url, max_size=MAX_FRAME_BYTES, open_timeout=budget_s) as websocket:
                await websocket.send(json.dumps(["REQ", sub_id, wanted]))
                async for frame in websocket:
                    if _take(frame, sub_id, trusted, found) or len(found) >= MAX_CANDIDATES_PER_RELAY:
                        break
                await websocket.send(json.dumps(["CLOSE", sub_id]))
    except Exception as exc:  # noqa: BLE001 — a bad relay is only a missing answer; others may still answer
        logger.info("price relay %s: %s: %s", url, type(exc).__name__, exc)
    return found


def _take(frame: Any, sub_id: str, trusted: list[str], found: list[Event]) -> bool:
    """Collect one relay frame; True at the end of stored events (EOSE or CLOSED)."""
    try:
        message = json.loads(frame)
    except (ValueError, TypeError):
        return False
    if not isinstance(message, list) or len(message) < 2 or message[1] != sub_id:
        return False
    if message[0] in ("EOSE", "CLOSED"):
        return True
    if message[0] == "EVENT" and len(message) >= 3:
        try:
            event = Event.from_dict(message[2])
        except ProtocolError:
            return False
        if _is_rates_event(event, trusted):
            found.append(event)
    return False
