"""The kind 30078 rates event queued by the price refresh (docs/PROTOCOL.md §Rates-event)."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from nostrbridge.models import OutboundMessage
from nostrbridge.node_identity import node_pubkey
from nostrbridge.protocol.nip01 import Event
from orders.models import BtcPrice
from orders.pricing import BreakerBoard, prices_refresh
from tests.orders.test_pricing import YADIO_PATH

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
NOW_S = int(NOW.timestamp())

pytestmark = pytest.mark.django_db


def rates_events() -> list[Event]:
    rows = OutboundMessage.objects.filter(kind=30078).order_by("pk")
    return [Event.from_dict(json.loads(row.event_json)) for row in rows]


def test_a_tick_queues_one_signed_rates_event_with_the_stored_prices(feed, settings):
    settings.MOSTRO_PRICE_PROVIDERS = [f"coingecko:{feed.url}/cg"]
    settings.MOSTRO_EXCHANGE_RATES_UPDATE_INTERVAL_SECONDS = 300
    feed.serve_yadio("/yadio", {"USD": 65000.5, "EUR": 60000, "ARS": 65000000})
    feed.serve_coingecko("/cg", {"usd": 65001.5})

    prices_refresh(now=NOW, breakers=BreakerBoard())

    [event] = rates_events()
    assert event.verify()
    assert event.pubkey == node_pubkey()
    assert (event.kind, event.created_at) == (30078, NOW_S)
    assert event.tags == [
        ["d", "mostro-rates"],
        ["published_at", str(NOW_S)],
        ["source", "coingecko,yadio"],
        ["expiration", str(NOW_S + 600)],
    ]
    assert event.content == '{"BTC":{"ARS":65000000.0,"EUR":60000.0,"USD":65001.0}}'
    stored = {row.fiat_code: row.price for row in BtcPrice.objects.all()}
    assert stored == {"ARS": Decimal("65000000"), "EUR": Decimal("60000"), "USD": Decimal("65001")}
    row = OutboundMessage.objects.get(kind=30078)
    assert (row.d_tag, row.recipient_pubkey, row.status) == ("mostro-rates", "", "pending")


def test_expiration_is_capped_at_an_hour(feed, settings):
    settings.MOSTRO_EXCHANGE_RATES_UPDATE_INTERVAL_SECONDS = 3000
    feed.serve_yadio("/yadio", {"USD": 65000.5})

    prices_refresh(now=NOW, breakers=BreakerBoard())

    [event] = rates_events()
    assert event.tags[3] == ["expiration", str(NOW_S + 3600)]
    assert event.content == '{"BTC":{"USD":65000.5}}'


def test_two_ticks_in_one_second_get_increasing_created_at(feed):
    feed.serve_yadio("/yadio", {"USD": 65000.5})

    prices_refresh(now=NOW, breakers=BreakerBoard())
    prices_refresh(now=NOW, breakers=BreakerBoard())

    assert [event.created_at for event in rates_events()] == [NOW_S, NOW_S + 1]


def test_nothing_is_published_when_the_tick_got_no_price(feed):
    feed.set_status(YADIO_PATH, 503)

    counts = prices_refresh(now=NOW, breakers=BreakerBoard())

    assert counts["currencies"] == 0
    assert rates_events() == []
    assert OutboundMessage.objects.count() == 0


def test_publishing_can_be_switched_off(feed, settings):
    settings.MOSTRO_PUBLISH_EXCHANGE_RATES_TO_NOSTR = False
    feed.serve_yadio("/yadio", {"USD": 65000.5})

    prices_refresh(now=NOW, breakers=BreakerBoard())

    assert BtcPrice.objects.count() == 1
    assert OutboundMessage.objects.count() == 0
