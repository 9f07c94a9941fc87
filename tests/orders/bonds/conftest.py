import pytest

from tests.orders.services.support import configure, fake_ln, lnurl_server, node  # noqa: F401 - fixtures
from tests.trade.harness import TradeClient


@pytest.fixture
def bonds(node, settings):  # noqa: F811 - the imported fixture
    """Taker bonds on, the issue's defaults otherwise."""
    configure(settings, MOSTRO_ANTI_ABUSE_BOND_ENABLED=True, MOSTRO_ANTI_ABUSE_BOND_APPLY_TO="take")
    return settings


@pytest.fixture
def alice():
    return TradeClient("alice")


@pytest.fixture
def bob():
    return TradeClient("bob")


@pytest.fixture
def carol():
    return TradeClient("carol")
