"""`trade-pubkey` (docs/PROTOCOL.md §Trade-pubkey): a maker moves its pending order to a new trade key."""

from nostrbridge.context import InboundContext
from orders.services.session import order_rotate_trade_pubkey


def handle_trade_pubkey(ctx: InboundContext) -> None:
    order_rotate_trade_pubkey(
        order_id=ctx.order_id,
        sender=ctx.sender,
        identity=ctx.identity,
        request_id=ctx.request_id,
        atomic=ctx.atomic,
    )
