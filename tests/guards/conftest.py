"""Fixtures for the guard tests: the node of the canonical vectors (tests/vectors) on the fake LND."""

from tests.devfee.conftest import fund  # noqa: E402, F401 - fixture
from tests.orders.services.support import fake_ln, node  # noqa: F401 - fixtures
