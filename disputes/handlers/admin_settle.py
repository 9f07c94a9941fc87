"""`admin-settle` (docs/PROTOCOL.md §Admin-settle): the assigned solver pays the buyer."""

from disputes.services import dispute_settle
from nostrbridge.context import InboundContext


def handle_admin_settle(ctx: InboundContext) -> None:
    dispute_settle(
        order_id=ctx.order_id,
        actor_pubkey=ctx.identity,
        actor_trade_pubkey=ctx.sender,
        request_id=ctx.request_id,
        trade_index=ctx.trade_index,
        payload=ctx.payload,
        reply_to=ctx.sender,
        atomic=ctx.atomic,
    )
