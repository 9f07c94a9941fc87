"""Shared fixtures: the spec's vector files and the deterministic keys they use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nostrbridge.protocol import Keys

SPEC_DIR = Path("/work/shared/protocol")
ZERO_AUX = bytes(32)  # the vectors' BIP-340 auxiliary randomness


def load_json(name: str) -> dict:
    return json.loads((SPEC_DIR / name).read_text(encoding="utf-8"))


MOSTRO_VECTORS = load_json("mostro.vectors.json")
NIP44_VECTORS = load_json("nip44.vectors.json")["v2"]


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
