"""Shared fixtures: real test relays (tests/relays/fixtures.py)."""

pytest_plugins = ["tests.relays.fixtures"]
