"""The on-demand price tick (orders/pricing/on_demand.py): one at a time, spaced after a miss,
the inbox nudged when it ends; a real tick over HTTP stores the price the waiting message needs."""

import threading
from decimal import Decimal

import pytest

from orders.models import BtcPrice
from orders.pricing import BreakerBoard, on_demand, prices_refresh
from orders.pricing.on_demand import FETCHING_RECHECK_S, PriceFetcher

YADIO_PATH = "/yadio/exrates/BTC"


class BlockingRefresh:
    """A tick that runs until the test lets it end."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        self.release.wait(10)


def test_one_tick_at_a_time_and_the_inbox_nudged_when_it_ends():
    refresh = BlockingRefresh()
    fetcher = PriceFetcher(refresh=refresh)
    nudges = []
    fetcher.on_done = lambda: nudges.append(1)

    assert fetcher.request() == FETCHING_RECHECK_S
    assert fetcher.request() == FETCHING_RECHECK_S  # the same tick: nothing new started
    assert (fetcher.ticks, nudges) == (1, [])
    refresh.release.set()
    fetcher.wait_idle(10)
    fetcher._pool.shutdown(wait=True)  # noqa: SLF001 - the done callback has run once this returns
    assert (refresh.calls, fetcher.ticks, nudges) == (1, 1, [1])


def test_after_a_tick_the_next_waits_out_the_gap(monkeypatch):
    refresh = BlockingRefresh()
    refresh.release.set()
    fetcher = PriceFetcher(refresh=refresh)
    fetcher.request()
    fetcher.wait_idle(10)
    fetcher._pool.submit(lambda: None).result(10)  # noqa: SLF001 - the tick's done callback ran

    again_in_s = fetcher.request()
    assert 0 < again_in_s <= on_demand.RETRY_GAP_S
    assert fetcher.ticks == 1  # a burst of messages costs the providers one tick per gap
    monkeypatch.setattr(on_demand, "RETRY_GAP_S", 0.0)
    assert fetcher.request() == FETCHING_RECHECK_S
    fetcher.wait_idle(10)
    assert (refresh.calls, fetcher.ticks) == (2, 2)


def test_a_failing_tick_is_logged_and_still_nudges(caplog):
    def broken() -> None:
        raise RuntimeError("database gone")

    fetcher = PriceFetcher(refresh=broken)
    nudges = []
    fetcher.on_done = lambda: nudges.append(1)
    fetcher.request()
    fetcher.wait_idle(10)
    fetcher._pool.shutdown(wait=True)  # noqa: SLF001
    assert nudges == [1]
    assert "on-demand price refresh failed: RuntimeError('database gone')" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_real_tick_stores_the_price(feed):
    feed.set_json(YADIO_PATH, {"BTC": {"VES": 2_500_000.5}})
    board = BreakerBoard()
    fetcher = PriceFetcher(refresh=lambda: on_demand_tick(board))
    assert BtcPrice.objects.count() == 0
    fetcher.request()
    fetcher.wait_idle(10)
    assert list(BtcPrice.objects.values_list("fiat_code", "price")) == [("VES", Decimal("2500000.5"))]
    assert feed.requests == ["/yadio/exrates/BTC"]


def on_demand_tick(board: BreakerBoard) -> None:
    """The default tick (`_refresh_tick`) with this test's breaker board."""
    from django.db import connections

    try:
        prices_refresh(breakers=board)
    finally:
        connections.close_all()
