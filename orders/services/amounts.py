"""Pure money math, no ORM (mostro `get_fee`, `calculate_dev_fee`, `show_hold_invoice`).

The arithmetic mirrors mostrod's f64 computation followed by Rust's `round()` (half away from
zero), so both daemons charge the same satoshi for the same order.
"""

import math


def _round_half_away(value: float) -> int:
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def fee_sats(*, amount_sats: int, fee_rate: float) -> int:
    """One party's fee: round(fee × amount / 2). The node keeps twice this."""
    return _round_half_away(fee_rate * amount_sats / 2.0)


def dev_fee_sats(*, fee_sats: int, dev_fee_percentage: float) -> int:
    """The development fund's share of the node's total fee (2 × fee)."""
    return _round_half_away(2 * fee_sats * dev_fee_percentage)


def seller_escrow_sats(*, amount_sats: int, fee_sats: int) -> int:
    """What the hold invoice asks the seller to lock."""
    return amount_sats + fee_sats


def buyer_payout_sats(*, amount_sats: int, fee_sats: int) -> int:
    """What the buyer's invoice receives."""
    return amount_sats - fee_sats


def range_remainder(*, min_fiat: int, max_fiat: int, taken_fiat: int) -> tuple[int, int] | None:
    """The child order's (min, max) after a range slice is traded, or None when exhausted.

    min == max afterwards means the child is a fixed order for that fiat amount.
    """
    new_max = max_fiat - taken_fiat
    if new_max < min_fiat:
        return None
    return (min_fiat, new_max)
