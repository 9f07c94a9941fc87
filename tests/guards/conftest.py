"""Fixtures for the guard tests: the node of 07-examples.md on the fake LND."""

from tests.devfee.conftest import fund  # noqa: E402, F401 - fixture
from tests.orders.services.support import fake_ln, node  # noqa: F401 - fixtures
