"""Order lookups shared by the completion-side services."""

from uuid import UUID

from nostrbridge.protocol.enums import CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.statements import select_one
from orders.models import Order


def order_get_or_not_found(order_id: UUID | str | None) -> Order:
    """The order named by a message `id`; `not_found` when absent (or when no id was sent)."""
    order = select_one(Order, id=order_id)  # plain SQL: every trade step looks its order up (selectors.py)
    if order is None:
        raise CantDo(CantDoReason.NOT_FOUND)
    return order
