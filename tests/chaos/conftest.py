"""The fault suite's shared fixture: each module's `net` comes from `support.network_fixture`."""

import pytest

from tests.chaos.support import Book
from tests.e2e.trade_clients import TradeNetwork


@pytest.fixture(scope="module")
def book(net: TradeNetwork) -> Book:
    """Every trade of the module, for the ledger check after each fault."""
    return Book(net)
