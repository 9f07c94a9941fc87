"""`admin-cancel` (docs/PROTOCOL.md §Admin-cancel): the assigned solver refunds the seller."""

from disputes.services import dispute_cancel
from nostrbridge.context import InboundContext


def handle_admin_cancel(ctx: InboundContext) -> None:
    dispute_cancel(
        order_id=ctx.order_id,
        actor_pubkey=ctx.identity,
        actor_trade_pubkey=ctx.sender,
        request_id=ctx.request_id,
        trade_index=ctx.trade_index,
        payload=ctx.payload,
        reply_to=ctx.sender,
        atomic=ctx.atomic,
    )
