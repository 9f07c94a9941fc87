"""Shared fixtures: real test relays (tests/relays/fixtures.py)."""

import pytest

pytest_plugins = ["tests.relays.fixtures"]


@pytest.fixture(autouse=True)
def _fresh_lightning_address_verdicts():
    """Each test starts without the Lightning-address verdicts another test left (they are
    kept a minute in a running node, lightning.address_check)."""
    from lightning.address_check import address_checker

    address_checker().forget()
