"""`last-trade-index` (docs/PROTOCOL.md §Last-trade-index): the identity's last used trade index."""

from nostrbridge.context import InboundContext
from nostrbridge.outbox import enqueue_message
from nostrbridge.protocol.enums import Action, MessageType
from nostrbridge.protocol.messages import Message
from orders.services.session import last_trade_index_get


def handle_last_trade_index(ctx: InboundContext) -> None:
    index = last_trade_index_get(identity=ctx.identity)
    message = Message.new(
        Action.LAST_TRADE_INDEX, type=MessageType.RESTORE, request_id=ctx.request_id, trade_index=index
    )
    with ctx.atomic():
        enqueue_message(recipient_pubkey=ctx.sender, message=message)
