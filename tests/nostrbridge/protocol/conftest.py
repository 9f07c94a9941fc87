"""Shared fixtures: the wire vectors (tests/vectors/) and the deterministic keys they use."""

from __future__ import annotations

import pytest

from nostrbridge.protocol import Keys
from tests.vectors import load_vectors

ZERO_AUX = bytes(32)  # the vectors' BIP-340 auxiliary randomness


MOSTRO_VECTORS = load_vectors("mostro.vectors.json")
NIP44_VECTORS = load_vectors("nip44.vectors.json")["v2"]


@pytest.fixture(scope="session")
def vectors() -> dict:
    return MOSTRO_VECTORS


@pytest.fixture(scope="session")
def keys() -> dict[str, Keys]:
    """Every labelled key pair of mostro.vectors.json (secret key = sha256(label))."""
    return {label: Keys.from_hex(pair["sk"]) for label, pair in MOSTRO_VECTORS["keys"].items()}


@pytest.fixture(scope="session")
def node(keys: dict[str, Keys]) -> Keys:
    return keys["mostro-node"]
