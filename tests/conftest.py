"""Shared fixtures: real test relays (tests/relays/fixtures.py)."""

import pytest

pytest_plugins = ["tests.relays.fixtures"]


@pytest.fixture(autouse=True)
def _fresh_lightning_address_verdicts():
    """Each test starts without the Lightning-address verdicts another test left (they are
    kept a minute in a running node, lightning.address_check)."""
    from lightning.address_check import address_checker

    address_checker().forget()


class RecordingPriceFetcher:
    """The on-demand price fetcher of the in-process tests: counts the ticks asked for and never
    leaves the process (tests/orders/test_price_on_demand.py drives the real one)."""

    def __init__(self) -> None:
        self.requests = 0
        self.on_done = None

    def request(self) -> float:
        self.requests += 1
        return 0.5


@pytest.fixture(autouse=True)
def price_fetcher():
    from orders.pricing.on_demand import price_fetcher_replace

    fetcher = RecordingPriceFetcher()
    price_fetcher_replace(fetcher)  # type: ignore[arg-type]
    yield fetcher
    price_fetcher_replace(None)
