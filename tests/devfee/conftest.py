"""Fixtures for the dev-fee tests: the node of the vector scenarios (tests/vectors/) and a local dev-fund service."""

import pytest

from mostro_site.config import clear_node_config_cache
from tests.devfee.lnurl_server import DevFundServer
from tests.orders.services.support import fake_ln, mint_invoice, node  # noqa: F401 - fixtures


@pytest.fixture
def fund(node, settings):  # noqa: F811
    """The development fund's Lightning address, served on loopback; fresh invoice per callback."""
    with DevFundServer(lambda sats: mint_invoice(amount_sats=sats)) as server:
        settings.MOSTRO_DEV_FEE_LIGHTNING_ADDRESS = server.address
        clear_node_config_cache()
        yield server
    clear_node_config_cache()
