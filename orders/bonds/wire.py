"""The order view of the bond messages (docs/PROTOCOL.md §Bonds): `status`, `created_at` and
`expires_at` null, `amount` the bond (`bond-slashed`) or the counterparty's share (payout)."""

import dataclasses

from nostrbridge.protocol.structs import SmallOrder
from orders.models import Order
from orders.wire import small_order


def bond_order_view(order: Order, *, amount_sats: int) -> SmallOrder:
    view = small_order(order, amount_sats=amount_sats, include_created_at=False, include_expires_at=False)
    return dataclasses.replace(view, status=None)
