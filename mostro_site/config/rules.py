"""The node settings' rules, one function per value, and the one check of a whole settings row.

`node_settings_errors` is the only place a `NodeSettings` row is judged: the model's `clean`
calls it, so the settings form, the importer and anything else that saves through
`node_settings_update` (which runs `full_clean`) refuse exactly the same values. The single-
value functions are also what `mostro_site.checks` applies to the environment, so a value the
web form accepts is one the system checks accept at the next start. Each function returns an
error message (or a list of them), never raises.
"""

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from mostro_site.config.currencies import currency_codes

_FIAT = re.compile(r"^[A-Z]{3}$")
MAX_POW_BITS = 255
# 21 million bitcoin: no order or payment bound above the supply makes sense.
MAX_SATS = 21_000_000 * 100_000_000
FRACTION_FIELDS = ("fee", "max_routing_fee")
# Operator policies (docs/OPERATIONS.md §Policies): field -> (low, high, what it is). 0 turns a
# limit or a requirement off; the window of the automatic ban is at least one day.
POLICY_BOUNDS: dict[str, tuple[float, float, str]] = {
    "max_open_orders": (0, 10_000, "orders on the book per trader (0 = no limit)"),
    "take_cooldown_seconds": (0, 7 * 86_400, "seconds between two takes of a trader (0 = none)"),
    "daily_volume_sats": (0, MAX_SATS, "sats a trader may trade in 24 hours (0 = no cap)"),
    "counterparty_threshold_sats": (0, MAX_SATS, "sats above which takers must qualify (0 = off)"),
    "counterparty_min_trades": (0, 100_000, "completed trades a taker needs"),
    "counterparty_min_rating": (0, 5, "rating a taker needs (0–5)"),
    "counterparty_min_age_days": (0, 3_650, "days since a taker's first record here"),
    "auto_ban_disputes_lost": (0, 1_000, "disputes lost that ban a trader (0 = off)"),
    "auto_ban_window_days": (1, 3_650, "days in which those disputes count"),
}
HTTP_URL_FIELDS = ("bitcoin_price_api_url", "picture", "website")
BOND_APPLY_TO = ("take", "make", "both")
# The anti-abuse bond's settings: the same names in NodeSettings, NodeConfig and the form.
BOND_FIELDS = (
    "bond_enabled",
    "bond_apply_to",
    "bond_amount_pct",
    "bond_base_amount_sats",
    "bond_slash_on_waiting_timeout",
    "bond_slash_node_share_pct",
    "bond_payout_invoice_window_seconds",
    "bond_payout_max_retries",
    "bond_payout_claim_window_days",
)


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


def bond_apply_to_error(value: str) -> str | None:
    if value not in BOND_APPLY_TO:
        return f"{value!r} is not one of take, make, both (who posts a bond)."
    return None


def bond_fraction_error(value: float) -> str | None:
    if not 0 <= value <= 1:
        return f"{value} is outside 0–1: a fraction (0.01 = 1 %)."
    return None


def bond_base_amount_error(value: int) -> str | None:
    # At least 1 sat: a bond of 0 would be an amountless hold invoice.
    if not 1 <= value <= MAX_SATS:
        return f"{value} is outside 1 sat – 21M BTC."
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
    if min_sats < 1 or max_sats < min_sats or max_sats > MAX_SATS:
        return (
            f"minimum {min_sats} / maximum {max_sats} sats must satisfy 1 ≤ minimum ≤ maximum ≤ {MAX_SATS:,} "
            "(all bitcoin)."
        )
    return None


def protocol_version_error(value: int) -> str | None:
    if value not in (1, 2):
        return f"{value} is unknown: 1 = NIP-59 gift wrap (kind 1059), 2 = NIP-44 kind 14."
    return None


def is_relay_url(value: str) -> bool:
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    return parts.scheme in ("ws", "wss") and bool(parts.hostname) and not any(c.isspace() for c in value)


def relay_errors(relays: list[str]) -> list[str]:
    if not relays:
        return ["at least one relay is needed."]
    return [f"{relay!r} is not a ws:// or wss:// URL." for relay in relays if not is_relay_url(relay)]


def is_fiat_code(code: str) -> bool:
    return bool(_FIAT.match(code)) and code in currency_codes()


def fiat_code_errors(codes: list[str]) -> list[str]:
    known = currency_codes()
    errors = []
    for code in codes:
        if not _FIAT.match(code):
            errors.append(f"{code!r} is not a 3-letter ISO 4217 code.")
        elif code not in known:
            errors.append(f"{code!r} is not in the ISO 4217 list.")
    return errors


def http_url_error(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        return f"{value!r} is not an http:// or https:// URL."
    return None


def policy_error(field: str, value: float) -> str | None:
    low, high, meaning = POLICY_BOUNDS[field]
    if not low <= value <= high:
        return f"{value:g} is outside {low:g}–{high:g}: {meaning}."
    return None


def split_list(value: str) -> list[str]:
    """Comma- or newline-separated text as a list of trimmed, non-empty items."""
    return [item.strip() for item in re.split(r"[,\n]", value or "") if item.strip()]


def valid_relays(value: str | None) -> tuple[str, ...]:
    """The stored relay list as readers may use it: only well-formed ws:// / wss:// URLs."""
    return tuple(relay for relay in split_list(value or "") if is_relay_url(relay))


def valid_fiat_codes(value: str | None) -> tuple[str, ...]:
    return tuple(code for code in split_list(value or "") if is_fiat_code(code))


# --- a whole row ------------------------------------------------------------------------------
def node_settings_errors(values: Mapping[str, Any], *, env=None) -> dict[str, list[str]]:
    """Every problem of a NodeSettings row (field -> messages). None means "environment default".

    `values` holds model field values; list fields are comma-separated text. `env` is the
    environment's NodeConfig, against which a blank amount bound is compared.
    """
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str | None) -> None:
        if message:
            errors.setdefault(field, []).append(message)

    single: dict[str, Callable[[Any], str | None]] = {
        "fee": fee_error,
        "max_routing_fee": max_routing_fee_error,
        "dev_fee_percentage": dev_fee_percentage_error,
        "pow_bits": pow_error,
        "expiration_hours": at_least_one_error,
        "expiration_seconds": at_least_one_error,
        "protocol_version": protocol_version_error,
        "bond_apply_to": bond_apply_to_error,
        "bond_amount_pct": bond_fraction_error,
        "bond_slash_node_share_pct": bond_fraction_error,
        "bond_base_amount_sats": bond_base_amount_error,
        "bond_payout_invoice_window_seconds": at_least_one_error,
        "bond_payout_max_retries": at_least_one_error,
        "bond_payout_claim_window_days": at_least_one_error,
    }
    for field, rule in single.items():
        value = values.get(field)
        if value is not None:
            add(field, rule(value))
    for field in POLICY_BOUNDS:
        if values.get(field) is not None:
            add(field, policy_error(field, values[field]))
    for field in HTTP_URL_FIELDS:
        if values.get(field):
            add(field, http_url_error(str(values[field])))
    _amount_errors(values, env, add)
    if values.get("relays") is not None:
        for message in relay_errors(split_list(str(values["relays"]))):
            add("relays", message)
    if values.get("fiat_currencies_accepted"):
        for message in fiat_code_errors(split_list(str(values["fiat_currencies_accepted"]))):
            add("fiat_currencies_accepted", message)
    return errors


def _amount_errors(values: Mapping[str, Any], env, add) -> None:
    low: Any = values.get("min_payment_amount_sats")
    high: Any = values.get("max_order_amount_sats")
    if low is None and high is None:
        return
    if env is not None:
        low = env.min_payment_amount_sats if low is None else low
        high = env.max_order_amount_sats if high is None else high
    elif low is None or high is None:
        low = high = low if high is None else high  # one bound alone: only its own range applies
    error = amount_bounds_error(low, high)
    if error:
        field = "max_order_amount_sats" if 1 <= low <= MAX_SATS else "min_payment_amount_sats"
        add(field, error)
