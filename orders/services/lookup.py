"""Order lookups shared by the completion-side services."""

from uuid import UUID

from nostrbridge.protocol.enums import CantDoReason
from nostrbridge.protocol.errors import CantDo
from orders.models import Order


def order_get_or_not_found(order_id: UUID | str | None) -> Order:
    """The order named by a message `id`; `not_found` when absent (or when no id was sent)."""
    order = Order.objects.filter(pk=order_id).first() if order_id is not None else None
    if order is None:
        raise CantDo(CantDoReason.NOT_FOUND)
    return order
