"""Price feeds (docs/PROTOCOL.md §Prices): providers over real HTTP, aggregation, breaker, reads, sats math."""

import socket
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from mostro_site.config import clear_node_config_cache
from orders.models import BtcPrice
from orders.pricing import (
    BreakerBoard,
    PriceError,
    PriceProvider,
    PriceTooStale,
    PriceUnavailable,
    btc_price_get,
    is_fiat_code,
    market_amount_sats,
    price_aggregate,
    price_provider_parse,
    price_refresh_interval_seconds,
    prices_refresh,
    refresh_prices,
    sats_for_fiat,
)
from orders.pricing.fetch import MAX_RESPONSE_BYTES
from orders.pricing.providers import COINGECKO_VS_CURRENCIES

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(minutes=10)
YADIO_PATH = "/yadio/exrates/BTC"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def board(clock):
    return BreakerBoard(clock=clock)


def _cases(cases):
    """Parametrize cases labelled by their leading `_case` name."""
    return [pytest.param(*case, id=case[0]) for case in cases]


def _rows():
    return {row.fiat_code: (row.price, row.as_of, row.sources) for row in BtcPrice.objects.order_by("fiat_code")}


def _counts(*, providers=1, skipped=0, polled=1, succeeded=1, failed=0, currencies):
    return {
        "providers": providers,
        "skipped": skipped,
        "polled": polled,
        "succeeded": succeeded,
        "failed": failed,
        "currencies": currencies,
    }


def _seed_last_known_good():
    BtcPrice.objects.create(fiat_code="USD", price=Decimal("60000.5"), as_of=EARLIER, sources="yadio")
    BtcPrice.objects.create(fiat_code="EUR", price=Decimal("55000"), as_of=EARLIER, sources="coingecko,yadio")
    return _rows()


# --- refresh: one provider ------------------------------------------------------------------


@pytest.mark.django_db
def test_refresh_stores_the_fiat_prices_exactly_as_sent(feed, board):
    feed.serve_yadio(
        "/yadio",
        {
            "USD": 65000.5,
            "EUR": 60123.12345678,
            "ARS": 65000000,
            "brl": 350000.25,  # lower case still names a fiat
            "BTC": 1,  # not fiat
            "XAU": 28.7,  # metal
            "ETH": 19.2,  # crypto
            "VEF": 1000000000,  # pre-redenomination unit, left out on purpose
            "BGN": None,
            "GBP": 0,
            "CHF": -5,
            "JPY": "10000000",
            "CAD": True,
        },
    )

    counts = prices_refresh(now=NOW, breakers=board)

    assert counts == _counts(currencies=4)
    assert _rows() == {
        "ARS": (Decimal("65000000"), NOW, "yadio"),
        "BRL": (Decimal("350000.25"), NOW, "yadio"),
        "EUR": (Decimal("60123.12345678"), NOW, "yadio"),
        "USD": (Decimal("65000.5"), NOW, "yadio"),
    }
    assert feed.requests == [YADIO_PATH]


@pytest.mark.django_db
def test_refresh_again_overwrites_the_same_rows(feed, board):
    feed.serve_yadio("/yadio", {"USD": 65000.5})
    prices_refresh(now=EARLIER, breakers=board)
    feed.serve_yadio("/yadio", {"USD": 66000})

    prices_refresh(now=NOW, breakers=board)

    assert _rows() == {"USD": (Decimal("66000"), NOW, "yadio")}


@pytest.mark.django_db
def test_non_finite_and_out_of_range_numbers_are_dropped(feed, board):
    feed.set_raw(YADIO_PATH, b'{"BTC": {"USD": NaN, "EUR": Infinity, "GBP": 1e400, "JPY": 1e-9, "ARS": 64000000}}')

    counts = prices_refresh(now=NOW, breakers=board)

    assert counts == _counts(currencies=1)
    assert _rows() == {"ARS": (Decimal("64000000"), NOW, "yadio")}


# --- refresh: several providers and aggregation --------------------------------------------------


@pytest.mark.django_db
def test_two_sources_give_their_mean(feed, board, settings):
    settings.MOSTRO_PRICE_PROVIDERS = [f"coingecko:{feed.url}/cg"]
    feed.serve_yadio("/yadio", {"USD": 65000.5, "EUR": 60000})
    feed.serve_coingecko("/cg", {"usd": 65001})

    counts = prices_refresh(now=NOW, breakers=board)

    assert counts == _counts(providers=2, polled=2, succeeded=2, currencies=2)
    assert _rows() == {
        "EUR": (Decimal("60000"), NOW, "yadio"),
        "USD": (Decimal("65000.75"), NOW, "coingecko,yadio"),
    }
    assert sorted(feed.requests) == [
        f"/cg/simple/price?ids=bitcoin&vs_currencies={COINGECKO_VS_CURRENCIES}",
        YADIO_PATH,
    ]


@pytest.mark.django_db
def test_three_sources_drop_the_outlier_and_average_the_rest(feed, board, settings):
    settings.MOSTRO_PRICE_PROVIDERS = [f"coingecko:{feed.url}/cg", f"blockchain:{feed.url}/bc"]
    feed.serve_yadio("/yadio", {"USD": 65000.5, "EUR": 60000, "CUP": 28000000})
    feed.serve_coingecko("/cg", {"usd": 65010, "eur": 60000})
    # USD 70000 is 7.7 % above the median 65010: dropped. EUR 60001 is within 5 %: kept.
    feed.serve_blockchain("/bc", {"USD": 70000, "EUR": 60001})

    counts = prices_refresh(now=NOW, breakers=board)

    assert counts == _counts(providers=3, polled=3, succeeded=3, currencies=3)
    assert _rows() == {
        "CUP": (Decimal("28000000"), NOW, "yadio"),
        "EUR": (Decimal("60000.33333333"), NOW, "blockchain,coingecko,yadio"),  # 180001 / 3
        "USD": (Decimal("65005.25"), NOW, "coingecko,yadio"),
    }


@pytest.mark.django_db
def test_four_sources_use_the_midpoint_median(feed, board, settings):
    settings.MOSTRO_PRICE_PROVIDERS = [
        f"coingecko:{feed.url}/cg",
        f"currency_api:{feed.url}/ca",
        f"blockchain:{feed.url}/bc",
    ]
    # USD: median (65000.5 + 65010) / 2 = 65005.25; 70000 is out, the other three average.
    # GBP: bimodal, nothing within 5 % of the median 51000, so the median itself.
    feed.serve_yadio("/yadio", {"USD": 65000.5, "GBP": 1000})
    feed.serve_coingecko("/cg", {"usd": 65010, "gbp": 2000})
    # currency-api's CUP/MLC are official rates, a different market: never used.
    feed.serve_currency_api("/ca", {"usd": 64990, "gbp": 100000, "cup": 1600000, "mlc": 1700000, "eth": 19.2})
    feed.serve_blockchain("/bc", {"USD": 70000, "GBP": 101000})

    counts = prices_refresh(now=NOW, breakers=board)

    assert counts == _counts(providers=4, polled=4, succeeded=4, currencies=2)
    assert _rows() == {
        "GBP": (Decimal("51000"), NOW, "coingecko,currency_api"),
        "USD": (Decimal("65000.16666667"), NOW, "coingecko,currency_api,yadio"),  # 195000.5 / 3
    }


@pytest.mark.parametrize(
    ("_case", "values", "expected"),
    _cases(
        [
            ("none", [], None),
            ("one", ["100"], "100"),
            ("two_mean_without_outlier_cut", ["100", "200"], "150"),
            ("three_outlier_dropped", ["100", "101", "200"], "100.5"),
            ("bound_is_inclusive", ["100", "100", "105"], "101.66666667"),
            ("just_past_the_bound", ["100", "100", "105.00000001"], "100"),
            ("even_bimodal_falls_back_to_median", ["1", "2", "100", "101"], "51"),
            ("non_positive_and_nan_ignored", ["0", "-5", "NaN", "100"], "100"),
            ("mean_rounded_half_even_up", ["1.00000001", "1.00000002"], "1.00000002"),
            ("mean_rounded_half_even_down", ["1.00000000", "1.00000001"], "1.00000000"),
        ]
    ),
)
def test_price_aggregate(_case, values, expected):
    result = price_aggregate([Decimal(v) for v in values], outlier_pct=Decimal("5"))

    assert result == (None if expected is None else Decimal(expected))


# --- refresh: failures keep the last-known-good rows -------------------------------------------


@pytest.mark.django_db
def test_failing_provider_keeps_last_known_good(feed, board):
    before = _seed_last_known_good()
    feed.set_status(YADIO_PATH, 503)

    counts = prices_refresh(now=NOW, breakers=board)

    assert counts == _counts(succeeded=0, failed=1, currencies=0)
    assert _rows() == before


@pytest.mark.django_db
def test_currency_missing_from_the_tick_keeps_its_row_and_age(feed, board):
    _seed_last_known_good()
    feed.serve_yadio("/yadio", {"USD": 65000.5})

    prices_refresh(now=NOW, breakers=board)

    assert _rows() == {
        "EUR": (Decimal("55000"), EARLIER, "coingecko,yadio"),
        "USD": (Decimal("65000.5"), NOW, "yadio"),
    }


@pytest.mark.django_db
def test_one_failing_provider_does_not_stop_the_others(feed, board, settings):
    settings.MOSTRO_PRICE_PROVIDERS = [f"coingecko:{feed.url}/cg"]
    feed.set_status(YADIO_PATH, 500)
    feed.serve_coingecko("/cg", {"usd": 65001})

    counts = prices_refresh(now=NOW, breakers=board)

    assert counts == _counts(providers=2, polled=2, succeeded=1, failed=1, currencies=1)
    assert _rows() == {"USD": (Decimal("65001"), NOW, "coingecko")}


_VALID = b'{"BTC": {"USD": 65000.5}}'


@pytest.mark.parametrize(
    ("_case", "body", "status", "send_length"),
    _cases(
        [
            ("truncated_json", b'{"BTC": {"USD": 65000.5', 200, True),
            ("html", b"<html>busy</html>", 200, True),
            ("top_level_list", b"[65000.5]", 200, True),
            ("btc_not_an_object", b'{"BTC": [65000.5]}', 200, True),
            ("btc_missing", b'{"base": "BTC"}', 200, True),
            ("no_usable_quote", b'{"BTC": {"BTC": 1, "XAU": 30.5, "USD": null, "EUR": "60000"}}', 200, True),
            ("deeply_nested", b"[" * 100_000, 200, True),
            ("not_utf8", b"\xff\xfe\xfa\xfb", 200, True),
            ("declared_oversize", _VALID + b" " * MAX_RESPONSE_BYTES, 200, True),
            ("streamed_oversize", _VALID + b" " * MAX_RESPONSE_BYTES, 200, False),
            ("server_error", _VALID, 500, True),
            ("rate_limited", _VALID, 429, True),
        ]
    ),
)
@pytest.mark.django_db
def test_bad_answers_change_nothing(feed, board, _case, body, status, send_length):
    before = _seed_last_known_good()
    feed.set_raw(YADIO_PATH, body, status=status, send_length=send_length)

    counts = prices_refresh(now=NOW, breakers=board)

    assert counts == _counts(succeeded=0, failed=1, currencies=0)
    assert _rows() == before
    assert feed.hits(YADIO_PATH) == 1


@pytest.mark.django_db
def test_just_under_the_size_cap_is_accepted(feed, board):
    feed.set_raw(YADIO_PATH, _VALID + b" " * (MAX_RESPONSE_BYTES - len(_VALID)), send_length=False)

    counts = prices_refresh(now=NOW, breakers=board)

    assert counts == _counts(currencies=1)
    assert _rows() == {"USD": (Decimal("65000.5"), NOW, "yadio")}


@pytest.mark.django_db
def test_slow_provider_times_out(feed, board, settings):
    settings.MOSTRO_PRICE_PROVIDER_TIMEOUT_SECONDS = 0.3
    before = _seed_last_known_good()
    feed.serve_yadio("/yadio", {"USD": 65000.5}, delay=5.0)

    started = time.monotonic()
    counts = prices_refresh(now=NOW, breakers=board)
    elapsed = time.monotonic() - started

    assert counts == _counts(succeeded=0, failed=1, currencies=0)
    assert _rows() == before
    assert elapsed < 1.3  # the provider timeout plus the poll grace, never the 5 s delay


@pytest.mark.django_db
def test_unreachable_provider_fails(feed, board, settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.MOSTRO_BITCOIN_PRICE_API_URL = f"http://127.0.0.1:{closed_port}"
    clear_node_config_cache()
    before = _seed_last_known_good()

    counts = prices_refresh(now=NOW, breakers=board)

    assert counts == _counts(succeeded=0, failed=1, currencies=0)
    assert _rows() == before


@pytest.mark.django_db
def test_file_url_is_never_read(feed, board, settings, tmp_path):
    (tmp_path / "exrates").mkdir()
    (tmp_path / "exrates" / "BTC").write_bytes(_VALID)
    settings.MOSTRO_BITCOIN_PRICE_API_URL = tmp_path.as_uri()
    clear_node_config_cache()

    counts = prices_refresh(now=NOW, breakers=board)

    assert counts == _counts(succeeded=0, failed=1, currencies=0)
    assert _rows() == {}


# --- circuit breaker --------------------------------------------------------------------------


@pytest.mark.django_db
def test_breaker_skips_after_three_failures_and_retries_after_cooldown(feed, board, clock, settings):
    settings.MOSTRO_PRICE_PROVIDERS = [f"coingecko:{feed.url}/cg"]
    feed.set_status(YADIO_PATH, 503)
    feed.serve_coingecko("/cg", {"usd": 65001})
    failing = _counts(providers=2, polled=2, succeeded=1, failed=1, currencies=1)
    skipped = _counts(providers=2, skipped=1, polled=1, succeeded=1, currencies=1)

    # given three consecutive failures
    assert [prices_refresh(now=NOW, breakers=board) for _ in range(3)] == [failing] * 3
    assert feed.hits(YADIO_PATH) == 3

    # then the provider is skipped for 120 s, the healthy one still polled every tick
    assert prices_refresh(now=NOW, breakers=board) == skipped
    clock.advance(119.5)
    assert prices_refresh(now=NOW, breakers=board) == skipped
    assert (feed.hits(YADIO_PATH), feed.hits("/cg/simple/price")) == (3, 5)

    # after the cool-down one poll is tried; it fails again, so the next cool-down is 240 s
    clock.advance(0.5)
    assert prices_refresh(now=NOW, breakers=board) == failing
    assert feed.hits(YADIO_PATH) == 4
    clock.advance(239.5)
    assert prices_refresh(now=NOW, breakers=board) == skipped
    assert feed.hits(YADIO_PATH) == 4

    # a success closes the breaker: a single later failure does not skip the provider
    clock.advance(0.5)
    feed.serve_yadio("/yadio", {"USD": 65000.5})
    assert prices_refresh(now=NOW, breakers=board) == _counts(providers=2, polled=2, succeeded=2, currencies=1)
    assert _rows() == {"USD": (Decimal("65000.75"), NOW, "coingecko,yadio")}
    feed.set_status(YADIO_PATH, 503)
    assert [prices_refresh(now=NOW, breakers=board) for _ in range(2)] == [failing] * 2
    assert feed.hits(YADIO_PATH) == 7


def test_breaker_cooldown_doubles_up_to_the_cap(clock, board):
    cooldowns = [board.record_failure("yadio:x") for _ in range(9)]

    assert cooldowns == [None, None, 120.0, 240.0, 480.0, 960.0, 1800.0, 1800.0, 1800.0]
    clock.advance(1799.5)
    assert board.is_available("yadio:x") is False
    assert board.is_available("coingecko:x") is True
    clock.advance(0.5)
    assert board.is_available("yadio:x") is True


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("coingecko:https://api.coingecko.com/api/v3/", PriceProvider("coingecko", "https://api.coingecko.com/api/v3")),
        (" Blockchain : https://blockchain.info ", PriceProvider("blockchain", "https://blockchain.info")),
        ("currency_api:http://127.0.0.1:9000/v1", PriceProvider("currency_api", "http://127.0.0.1:9000/v1")),
    ],
)
def test_provider_entry_parses(entry, expected):
    assert price_provider_parse(entry) == expected


@pytest.mark.parametrize(
    "entry",
    ["https://api.yadio.io", "kraken:https://api.kraken.com", "yadio:", "yadio:ftp://host/x", "yadio:file:///etc"],
)
def test_invalid_provider_entry_is_refused(entry):
    with pytest.raises(ValueError):
        price_provider_parse(entry)


@pytest.mark.django_db
def test_invalid_and_duplicate_entries_are_skipped(feed, board, settings):
    settings.MOSTRO_PRICE_PROVIDERS = ["kraken:https://api.kraken.com", f"yadio:{feed.url}/yadio/"]
    feed.serve_yadio("/yadio", {"USD": 65000.5})

    counts = prices_refresh(now=NOW, breakers=board)

    assert counts == _counts(currencies=1)
    assert feed.hits(YADIO_PATH) == 1


@pytest.mark.django_db
def test_no_provider_configured_writes_nothing(feed, board, settings):
    settings.MOSTRO_BITCOIN_PRICE_API_URL = ""
    clear_node_config_cache()
    before = _seed_last_known_good()

    counts = prices_refresh(now=NOW, breakers=board)

    assert counts == _counts(providers=0, polled=0, succeeded=0, currencies=0)
    assert _rows() == before
    assert feed.requests == []


@pytest.mark.django_db
def test_scheduled_job_refreshes(feed):
    feed.serve_yadio("/yadio", {"USD": 65000.5})

    counts = refresh_prices()

    assert counts == _counts(currencies=1)
    assert list(BtcPrice.objects.values_list("fiat_code", "price", "sources")) == [("USD", Decimal("65000.5"), "yadio")]


@pytest.mark.parametrize(("configured", "expected"), [(10, 60), (60, 60), (300, 300)])
def test_refresh_interval_is_at_least_a_minute(settings, configured, expected):
    settings.MOSTRO_EXCHANGE_RATES_UPDATE_INTERVAL_SECONDS = configured

    assert price_refresh_interval_seconds() == expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [("USD", True), ("CUP", True), ("MLC", True), ("IRT", True), ("VES", True), ("usd", False)]
    + [(code, False) for code in ("BTC", "ETH", "ADA", "BNB", "XAU", "XAG", "XPT", "VEF", "", "USDT")],
)
def test_fiat_allowlist(code, expected):
    assert is_fiat_code(code) is expected


# --- order-path read ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_price_exactly_at_the_staleness_limit_is_served():
    BtcPrice.objects.create(fiat_code="USD", price=Decimal("65000.5"), as_of=NOW, sources="yadio")

    assert btc_price_get(fiat_code="USD", now=NOW + timedelta(seconds=1800)) == Decimal("65000.5")
    assert btc_price_get(fiat_code="usd", now=NOW) == Decimal("65000.5")


@pytest.mark.django_db
def test_price_past_the_staleness_limit_is_refused():
    BtcPrice.objects.create(fiat_code="USD", price=Decimal("65000.5"), as_of=NOW, sources="yadio")
    before = _rows()

    with pytest.raises(PriceTooStale) as refusal:
        btc_price_get(fiat_code="USD", now=NOW + timedelta(seconds=1800, microseconds=1))

    assert (refusal.value.fiat_code, refusal.value.as_of, refusal.value.max_age_seconds) == ("USD", NOW, 1800)
    assert isinstance(refusal.value, PriceError)
    assert _rows() == before


@pytest.mark.django_db
def test_staleness_window_follows_the_node_config(settings):
    settings.MOSTRO_MAX_PRICE_STALENESS_SECONDS = 60
    clear_node_config_cache()
    BtcPrice.objects.create(fiat_code="EUR", price=Decimal("60000"), as_of=NOW, sources="yadio")
    try:
        assert btc_price_get(fiat_code="EUR", now=NOW + timedelta(seconds=60)) == Decimal("60000")
        with pytest.raises(PriceTooStale):
            btc_price_get(fiat_code="EUR", now=NOW + timedelta(seconds=61))
    finally:
        clear_node_config_cache()


@pytest.mark.django_db
def test_unknown_currency_is_unavailable():
    BtcPrice.objects.create(fiat_code="USD", price=Decimal("65000.5"), as_of=NOW, sources="yadio")
    before = _rows()

    with pytest.raises(PriceUnavailable) as refusal:
        btc_price_get(fiat_code="EUR", now=NOW)

    assert refusal.value.fiat_code == "EUR"
    assert isinstance(refusal.value, PriceError)
    assert _rows() == before


# --- sats quotes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("_case", "fiat_amount", "price", "premium", "expected"),
    _cases(
        [
            ("no_premium", 100, "50000", 0, 200_000),
            ("positive_premium_lowers_sats", 100, "50000", 5, 190_000),
            ("negative_premium_raises_sats", 100, "50000", -3, 206_000),
            ("fractional_price", 100, "65000.5", 2, 150_768),  # 150768.071...
            ("f64_lands_below_the_integer", 3, "40000", 5, 7_124),  # exact decimal math gives 7125
            ("negative_result_truncates_toward_zero", 100, "50000", 110, -20_000),  # f64 -20000.00000000003
            ("zero_fiat", 0, "50000", 5, 0),
            ("saturates_like_rust_as_i64", 2**62, "0.00000001", 0, 2**63 - 1),
        ]
    ),
)
def test_market_amount_sats(_case, fiat_amount, price, premium, expected):
    assert market_amount_sats(fiat_amount=fiat_amount, price=Decimal(price), premium=premium) == expected


@pytest.mark.parametrize(
    ("_case", "fiat_amount", "price", "expected"),
    _cases(
        [
            ("whole", 100, "50000", 200_000),
            ("truncated", 100, "65000.5", 153_844),  # 153844.97...
            ("small", 1, "65000.5", 1_538),
            ("f64_lands_below_the_integer", 9, "30000", 29_999),  # exact decimal math gives 30000
        ]
    ),
)
def test_sats_for_fiat(_case, fiat_amount, price, expected):
    assert sats_for_fiat(fiat_amount=fiat_amount, price=Decimal(price)) == expected


def test_market_amount_needs_a_positive_price():
    with pytest.raises(ValueError):
        market_amount_sats(fiat_amount=100, price=Decimal("0"), premium=0)
