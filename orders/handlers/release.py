"""`release` (docs/PROTOCOL.md §Release): the seller releases the escrow; the buyer is paid after commit."""

from nostrbridge.context import InboundContext
from orders.services.release import order_release


def handle_release(ctx: InboundContext) -> None:
    order_release(
        order_id=ctx.order_id, sender=ctx.sender, request_id=ctx.request_id, payload=ctx.payload, atomic=ctx.atomic
    )
