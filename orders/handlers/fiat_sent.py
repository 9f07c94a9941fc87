"""`fiat-sent` (docs/PROTOCOL.md §Fiat-sent): the buyer declares the fiat payment sent."""

from nostrbridge.context import InboundContext
from orders.services.release import order_mark_fiat_sent


def handle_fiat_sent(ctx: InboundContext) -> None:
    order_mark_fiat_sent(
        order_id=ctx.order_id, sender=ctx.sender, request_id=ctx.request_id, payload=ctx.payload, atomic=ctx.atomic
    )
