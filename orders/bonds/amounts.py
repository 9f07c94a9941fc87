"""Bond arithmetic (docs/PROTOCOL.md §Bonds): integer sats, the daemon's rounding."""

import math


def bond_amount_sats(*, notional_sats: int, amount_pct: float, base_amount_sats: int) -> int:
    """max(round(pct × notional), base): Rust's `round` (half away from zero) on a non-negative value."""
    return max(int(amount_pct * max(notional_sats, 0) + 0.5), base_amount_sats)


def bond_node_share_sats(*, bond_sats: int, share_pct: float) -> int:
    """floor(bond × share): the node's part of a slashed bond; the counterparty gets the rest."""
    return min(bond_sats, max(0, math.floor(bond_sats * share_pct)))
