"""Relay fixtures come from the root conftest (tests.relays.fixtures plugin)."""
