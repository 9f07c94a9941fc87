"""ISO 4217 currencies for the fiat picker, shipped as data (from Debian's iso-codes)."""

import functools
import json
from pathlib import Path

_DATA = Path(__file__).with_name("iso4217.json")


@functools.lru_cache(maxsize=1)
def iso4217() -> tuple[tuple[str, str], ...]:
    """(code, name) pairs, sorted by code."""
    rows = json.loads(_DATA.read_text(encoding="utf-8"))["currencies"]
    return tuple(sorted((code, name) for code, name in rows))


def currency_codes() -> frozenset[str]:
    return frozenset(code for code, _ in iso4217())
