"""The El Toque (CUP/MLC cross quotes) and `nostr` (trusted nodes' 30078 events) price providers,
over a real HTTP server and a real relay."""

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.checks import run_checks
from websockets.sync.client import connect

from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.nip01 import Event, sign_event
from nostrbridge.protocol.published_events import build_rates_event
from orders.models import BtcPrice
from orders.pricing import BreakerBoard, prices_refresh
from orders.pricing.eltoque import eltoque_parse
from orders.pricing.nostr_feed import _take, rates_candidates, rates_content_parse

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def rows() -> dict[str, tuple[Decimal, datetime, str]]:
    return {row.fiat_code: (row.price, row.as_of, row.sources) for row in BtcPrice.objects.order_by("fiat_code")}


def error_ids() -> list[str]:
    return sorted(message.id for message in run_checks(tags=None) if message.id.startswith("mostro.E"))


# --- El Toque ----------------------------------------------------------------------------------


@pytest.fixture
def eltoque(feed, settings):
    settings.MOSTRO_PRICE_PROVIDERS = [f"eltoque:{feed.url}/et"]
    settings.MOSTRO_ELTOQUE_TOKEN = "tok-123"
    return feed


def serve_tasas(server, tasas: dict) -> None:
    server.set_json("/et/v1/trmi", {"tasas": tasas, "date": "2024-06-01", "hour": 7, "minutes": 59, "seconds": 30})


@pytest.mark.django_db
def test_eltoque_rates_become_btc_prices_through_the_usd_anchor(eltoque):
    eltoque.serve_yadio("/yadio", {"USD": 50000, "EUR": 45000})
    serve_tasas(eltoque, {"USD": 400, "MLC": 250, "ECU": 420})

    counts = prices_refresh(now=NOW, breakers=BreakerBoard())

    assert (counts["succeeded"], counts["currencies"]) == (2, 4)
    assert rows() == {
        "CUP": (Decimal("20000000"), NOW, "eltoque"),  # 400 CUP/USD × 50,000 USD/BTC
        "EUR": (Decimal("45000"), NOW, "yadio"),  # El Toque's ECU is not used
        "MLC": (Decimal("80000"), NOW, "eltoque"),  # 400 / 250 MLC/USD × 50,000
        "USD": (Decimal("50000"), NOW, "yadio"),
    }
    [target] = [t for t in eltoque.requests if t.startswith("/et/")]
    [headers] = [h for t, h in zip(eltoque.requests, eltoque.request_headers, strict=True) if t.startswith("/et/")]
    window = parse_qs(urlsplit(target).query)
    date_to = datetime.strptime(window["date_to"][0], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    date_from = datetime.strptime(window["date_from"][0], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert urlsplit(target).path == "/et/v1/trmi"
    assert date_to - date_from == timedelta(hours=48)
    assert abs(datetime.now(UTC) - date_to) < timedelta(minutes=1)
    assert headers["Authorization"] == "Bearer tok-123"


@pytest.mark.django_db
def test_eltoque_is_combined_with_a_direct_cup_quote(eltoque):
    eltoque.serve_yadio("/yadio", {"USD": 50000, "CUP": 19000000})
    serve_tasas(eltoque, {"USD": 400})

    prices_refresh(now=NOW, breakers=BreakerBoard())

    assert rows()["CUP"] == (Decimal("19500000"), NOW, "eltoque,yadio")


@pytest.mark.django_db
def test_without_a_usd_anchor_cup_keeps_its_last_known_good_price(eltoque):
    BtcPrice.objects.create(fiat_code="CUP", price=Decimal("18000000"), as_of=NOW - timedelta(hours=1), sources="yadio")
    eltoque.set_status("/yadio/exrates/BTC", 503)
    serve_tasas(eltoque, {"USD": 400, "MLC": 250})

    counts = prices_refresh(now=NOW, breakers=BreakerBoard())

    assert (counts["succeeded"], counts["failed"], counts["currencies"]) == (1, 1, 0)
    assert rows() == {"CUP": (Decimal("18000000"), NOW - timedelta(hours=1), "yadio")}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "tasas",
    [{"MLC": 250}, {"USD": 0, "MLC": 250}, {"USD": "400"}, {"USD": None}],
    ids=["no-usd", "zero", "string", "null"],
)
def test_eltoque_without_a_usable_usd_rate_is_a_failed_provider(eltoque, tasas):
    eltoque.serve_yadio("/yadio", {"USD": 50000})
    serve_tasas(eltoque, tasas)

    counts = prices_refresh(now=NOW, breakers=BreakerBoard())

    assert (counts["succeeded"], counts["failed"]) == (1, 1)
    assert set(rows()) == {"USD"}


def test_eltoque_parse_drops_a_junk_mlc_rate_only():
    assert eltoque_parse({"tasas": {"USD": Decimal(442), "MLC": Decimal(0)}}) == {
        "CUP": eltoque_parse({"tasas": {"USD": Decimal(442)}})["CUP"]
    }


@pytest.mark.django_db
def test_eltoque_token_is_never_sent_across_a_redirect(eltoque):
    eltoque.serve_yadio("/yadio", {"USD": 50000})
    eltoque.set_raw("/et/v1/trmi", b"", status=302, headers={"Location": "/elsewhere/v1/trmi"})
    serve_tasas_elsewhere = {"tasas": {"USD": 400}}
    eltoque.set_json("/elsewhere/v1/trmi", serve_tasas_elsewhere)

    counts = prices_refresh(now=NOW, breakers=BreakerBoard())

    assert counts["failed"] == 1
    assert eltoque.hits("/elsewhere/v1/trmi") == 0
    assert set(rows()) == {"USD"}


def test_eltoque_without_token_and_nostr_without_trusted_nodes_refuse_to_start(settings):
    settings.MOSTRO_PRICE_PROVIDERS = ["eltoque:https://tasas.eltoque.com", "nostr"]
    settings.MOSTRO_ELTOQUE_TOKEN = " "
    settings.MOSTRO_PRICE_TRUSTED_NODES = []
    assert error_ids() == ["mostro.E016", "mostro.E017"]

    settings.MOSTRO_PRICE_TRUSTED_NODES = ["not-a-key"]
    assert error_ids() == ["mostro.E016", "mostro.E017"]

    settings.MOSTRO_ELTOQUE_TOKEN = "tok"
    settings.MOSTRO_PRICE_TRUSTED_NODES = [Keys.generate().public_key_hex]
    assert error_ids() == []


# --- nostr: trusted nodes' rates events ---------------------------------------------------------

TRUSTED = Keys(bytes.fromhex("11" * 32))
OTHER_TRUSTED = Keys(bytes.fromhex("22" * 32))
STRANGER = Keys(bytes.fromhex("33" * 32))


def rates_event(keys: Keys, rates: dict[str, float], *, age_s: int, interval_s: int = 300) -> Event:
    return build_rates_event(
        keys, rates=rates, sources=["yadio"], update_interval_seconds=interval_s, now=int(time.time()) - age_s
    )


def publish(relay_url: str, *events: Event) -> None:
    with connect(relay_url) as websocket:
        for event in events:
            websocket.send(json.dumps(["EVENT", event.to_dict()]))
            reply = json.loads(websocket.recv(timeout=5))
            assert reply[:3] == ["OK", event.id, True], reply


@pytest.fixture
def nostr_feed(feed, settings, local_relay_process):
    settings.MOSTRO_PRICE_PROVIDERS = [f"nostr:{local_relay_process.url}"]
    settings.MOSTRO_PRICE_TRUSTED_NODES = [TRUSTED.public_key_hex, OTHER_TRUSTED.public_key_hex]
    settings.MOSTRO_MAX_PRICE_STALENESS_SECONDS = 1800
    return local_relay_process.url


@pytest.mark.django_db(transaction=True)
def test_nostr_fills_only_currencies_no_other_provider_covered(feed, nostr_feed):
    feed.serve_yadio("/yadio", {"USD": 65000})
    older = rates_event(TRUSTED, {"USD": 1.0, "ARS": 60000000.0, "VES": 1.0}, age_s=120)
    freshest = rates_event(OTHER_TRUSTED, {"USD": 2.0, "ARS": 64000000.5, "VES": 2500000.25}, age_s=60)
    stranger = rates_event(STRANGER, {"ARS": 1.0, "VES": 1.0}, age_s=1)
    publish(nostr_feed, older, freshest, stranger)
    now = datetime.now(UTC).replace(microsecond=0)

    counts = prices_refresh(now=now, breakers=BreakerBoard())

    observed = datetime.fromtimestamp(freshest.created_at, tz=UTC)
    assert (counts["succeeded"], counts["currencies"]) == (2, 3)
    assert rows() == {
        "ARS": (Decimal("64000000.5"), observed, "nostr"),
        "USD": (Decimal("65000"), now, "yadio"),  # the trusted nodes' USD is not used
        "VES": (Decimal("2500000.25"), observed, "nostr"),
    }
    [ours] = [Event.from_dict(json.loads(row.event_json)) for row in OutboundMessage.objects.filter(kind=30078)]
    assert ours.content == '{"BTC":{"USD":65000.0}}'  # never republishes other nodes' prices
    assert ours.tags[2] == ["source", "yadio"]


@pytest.mark.django_db(transaction=True)
def test_nostr_ignores_events_older_than_the_staleness_limit(feed, nostr_feed):
    feed.set_status("/yadio/exrates/BTC", 503)
    # Not expired yet (its expiration is an hour after it was made), but 1,900 s > 1,800 s old.
    publish(nostr_feed, rates_event(TRUSTED, {"ARS": 1.0}, age_s=1900, interval_s=3000))

    counts = prices_refresh(now=NOW, breakers=BreakerBoard())

    assert (counts["succeeded"], counts["failed"], counts["currencies"]) == (0, 2, 0)
    assert rows() == {}
    assert OutboundMessage.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_unreachable_relay_is_a_failed_provider(feed, settings):
    settings.MOSTRO_PRICE_PROVIDERS = ["nostr:ws://127.0.0.1:9"]
    settings.MOSTRO_PRICE_TRUSTED_NODES = [TRUSTED.public_key_hex]
    feed.serve_yadio("/yadio", {"USD": 65000})

    counts = prices_refresh(now=NOW, breakers=BreakerBoard())

    assert (counts["succeeded"], counts["failed"]) == (1, 1)
    assert set(rows()) == {"USD"}


def test_candidates_need_a_valid_signature_the_d_tag_and_no_future_date():
    now = int(time.time())
    good = rates_event(TRUSTED, {"ARS": 1.0}, age_s=10)
    forged = Event.from_dict({**good.to_dict(), "sig": "00" * 64})
    other_d = sign_event(TRUSTED, kind=30078, content=good.content, tags=[["d", "other"]], created_at=now - 5)
    future = rates_event(TRUSTED, {"ARS": 1.0}, age_s=-600)
    newer_junk = rates_event(OTHER_TRUSTED, {"ARS": 1.0}, age_s=5)

    ranked = rates_candidates(
        [good, forged, other_d, future, newer_junk, good],
        trusted=[TRUSTED.public_key_hex, OTHER_TRUSTED.public_key_hex],
        now=now,
        max_age_s=1800,
    )

    assert [event.id for event in ranked] == [newer_junk.id, good.id]


def test_an_event_past_its_own_expiration_is_not_a_candidate():
    event = rates_event(TRUSTED, {"ARS": 1.0}, age_s=0, interval_s=30)  # expires 60 s after it was made
    trusted = [TRUSTED.public_key_hex]

    assert rates_candidates([event], trusted=trusted, now=event.created_at + 59, max_age_s=1800) == [event]
    assert rates_candidates([event], trusted=trusted, now=event.created_at + 60, max_age_s=1800) == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"BTC":{"usd":65000.5,"ARS":-1,"EUR":"60000","GBP":NaN}}', {"USD": Decimal("65000.5")}),
        ('{"BTC":[]}', {}),
        ("not json", {}),
        ('{"ETH":{"USD":1}}', {}),
    ],
    ids=["mixed", "list", "junk", "no-btc"],
)
def test_rates_content_parse(content, expected):
    assert rates_content_parse(content) == expected


def test_relay_frames_other_than_our_plausible_events_are_skipped():
    trusted = [TRUSTED.public_key_hex]
    good = rates_event(TRUSTED, {"ARS": 1.0}, age_s=1)
    found: list[Event] = []
    frames = [
        json.dumps(["EVENT", "someone-else", good.to_dict()]),
        json.dumps(["EVENT", "sub", rates_event(STRANGER, {"ARS": 1.0}, age_s=1).to_dict()]),
        json.dumps(["EVENT", "sub", {**good.to_dict(), "content": "tampered"}]),  # id mismatch
        json.dumps(["NOTICE", "hello"]),
        "not json",
        json.dumps(["EVENT", "sub", good.to_dict()]),
    ]

    assert [_take(frame, "sub", trusted, found) for frame in frames] == [False] * 6
    assert _take(json.dumps(["EOSE", "sub"]), "sub", trusted, found) is True
    assert [event.id for event in found] == [good.id]


@pytest.mark.django_db
def test_a_bad_trusted_node_fails_the_provider_not_the_job(feed, settings):
    settings.MOSTRO_PRICE_PROVIDERS = ["nostr:ws://127.0.0.1:9"]
    settings.MOSTRO_PRICE_TRUSTED_NODES = ["npub1notakey"]
    feed.serve_yadio("/yadio", {"USD": 65000})

    counts = prices_refresh(now=NOW, breakers=BreakerBoard())

    assert (counts["succeeded"], counts["failed"]) == (1, 1)
    assert rows() == {"USD": (Decimal("65000"), NOW, "yadio")}
