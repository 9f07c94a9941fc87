"""`cancel` (docs/PROTOCOL.md §Cancel): maker, taker and cooperative cancellation."""

from nostrbridge.context import InboundContext
from orders.services.cancel import order_cancel


def handle_cancel(ctx: InboundContext) -> None:
    order_cancel(order_id=ctx.order_id, sender=ctx.sender, request_id=ctx.request_id, atomic=ctx.atomic)
