"""Routing-fee cap for outgoing payments (pure; docs/PROTOCOL.md §Fees)."""

from __future__ import annotations

import math

SMALL_PAYMENT_SATS = 1_000
SMALL_PAYMENT_FEE_RATE = 0.01
SMALL_PAYMENT_MIN_FEE_SATS = 10


def routing_fee_cap_sats(amount_sats: int, *, max_routing_fee: float | None = None) -> int:
    """`fee_limit_sat` for a payment of `amount_sats`.

    Small payments get max(1 % of the amount, 10 sats) because a proportional cap of 0.2 %
    would be below any real route's base fee. Larger ones get amount × MOSTRO_MAX_ROUTING_FEE.
    Results are truncated to whole sats, as the Rust daemon does with `as i64`.
    """
    if amount_sats <= SMALL_PAYMENT_SATS:
        return max(math.floor(amount_sats * SMALL_PAYMENT_FEE_RATE), SMALL_PAYMENT_MIN_FEE_SATS)
    if max_routing_fee is None:
        from django.conf import settings

        max_routing_fee = float(getattr(settings, "MOSTRO_MAX_ROUTING_FEE", 0.002))
    return math.floor(amount_sats * max_routing_fee)
