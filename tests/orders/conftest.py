"""Fixtures shared by the price tests: a local price API the providers are pointed at."""

import pytest

from mostro_site.config import clear_node_config_cache
from tests.orders.price_server import PriceServer


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with PriceServer() as price_server:
        yield price_server


@pytest.fixture
def feed(settings, server):
    """The primary (Yadio) provider points at the local server, no extra providers."""
    settings.MOSTRO_BITCOIN_PRICE_API_URL = server.url + "/yadio"
    settings.MOSTRO_PRICE_PROVIDERS = []
    settings.MOSTRO_PRICE_PROVIDER_TIMEOUT_SECONDS = 2.0
    settings.MOSTRO_PRICE_OUTLIER_THRESHOLD_PCT = 5.0
    clear_node_config_cache()
    yield server
    clear_node_config_cache()
