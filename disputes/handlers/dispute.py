"""`dispute` (docs/PROTOCOL.md §Dispute): the buyer or the seller opens a dispute."""

from disputes.services import dispute_open
from nostrbridge.context import InboundContext


def handle_dispute(ctx: InboundContext) -> None:
    dispute_open(order_id=ctx.order_id, sender=ctx.sender, request_id=ctx.request_id, atomic=ctx.atomic)
