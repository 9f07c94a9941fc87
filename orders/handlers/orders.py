"""`orders` (docs/PROTOCOL.md §Orders): the caller's own orders by id, full views without invoices."""

from nostrbridge.context import InboundContext
from nostrbridge.outbox import enqueue_message
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.payloads import IdsPayload, OrdersPayload
from orders.services.session import orders_for_identity
from orders.wire import small_order


def handle_orders(ctx: InboundContext) -> None:
    if not isinstance(ctx.payload, IdsPayload):
        raise CantDo(CantDoReason.INVALID_PARAMETERS)
    found = orders_for_identity(identity=ctx.identity, ids=ctx.payload.ids)
    views = [small_order(order, include_pubkeys=True) for order in found]
    message = Message.new(Action.ORDERS, request_id=ctx.request_id, payload=OrdersPayload(views))
    with ctx.atomic():
        enqueue_message(recipient_pubkey=ctx.sender, message=message)
