"""The configuration rules of `mostro_site.checks`, one function per value.

The settings form and `import_mostrod` apply these to values an operator types, so a value
the web form accepts is one the system checks accept at the next start. Each function
returns an error message, or None when the value is acceptable.
"""

import re
from urllib.parse import urlsplit

from mostro_site.operator.currencies import currency_codes

_FIAT = re.compile(r"^[A-Z]{3}$")
MAX_POW_BITS = 255


def fee_error(value: float) -> str | None:
    if not 0 <= value <= 1:
        return f"{value} is outside 0–1: the fee is a fraction of the amount (0.006 = 0.6 %)."
    return None


def max_routing_fee_error(value: float) -> str | None:
    if not 0 <= value <= 1:
        return f"{value} is outside 0–1: a fraction of the payout (0.002 = 0.2 %)."
    return None


def dev_fee_percentage_error(fraction: float) -> str | None:
    if not 0.10 <= fraction <= 1.0:
        return f"{fraction * 100:g} % is outside 10–100 %."
    return None


def pow_error(value: int) -> str | None:
    if not 0 <= value <= MAX_POW_BITS:
        return f"{value} is outside 0–{MAX_POW_BITS} (leading zero bits of the event id)."
    return None


def at_least_one_error(value: int) -> str | None:
    if value < 1:
        return f"{value} must be at least 1."
    return None


def amount_bounds_error(min_sats: int, max_sats: int) -> str | None:
    if min_sats < 1 or max_sats < min_sats:
        return f"minimum {min_sats} / maximum {max_sats} sats must satisfy 1 ≤ minimum ≤ maximum."
    return None


def protocol_version_error(value: int) -> str | None:
    if value not in (1, 2):
        return f"{value} is unknown: 1 = NIP-59 gift wrap (kind 1059), 2 = NIP-44 kind 14."
    return None


def relay_errors(relays: list[str]) -> list[str]:
    if not relays:
        return ["at least one relay is needed."]
    errors = []
    for relay in relays:
        parts = urlsplit(relay)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            errors.append(f"{relay!r} is not a ws:// or wss:// URL.")
    return errors


def fiat_code_errors(codes: list[str]) -> list[str]:
    known = currency_codes()
    errors = []
    for code in codes:
        if not _FIAT.match(code):
            errors.append(f"{code!r} is not a 3-letter ISO 4217 code.")
        elif code not in known:
            errors.append(f"{code!r} is not in the ISO 4217 list.")
    return errors


def split_list(value: str) -> list[str]:
    """Comma- or newline-separated text as a list of trimmed, non-empty items."""
    return [item.strip() for item in re.split(r"[,\n]", value or "") if item.strip()]
