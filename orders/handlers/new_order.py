"""`new-order` (docs/PROTOCOL.md §New-order): a maker publishes an order."""

from nostrbridge.context import InboundContext, SilentDrop
from nostrbridge.protocol.payloads import OrderPayload
from orders.services.create import Maker, order_create, order_price_ready
from orders.services.invoice import lightning_address_ready
from orders.services.traders import TradeGate, trade_gate_read, trade_index_check


def handle_new_order(ctx: InboundContext) -> None:
    gate = trade_gate_read(identity=ctx.identity, sender=ctx.sender)  # the ban and the index in one read
    gate.refuse_banned()  # before the index gate registers anyone
    known: TradeGate | None = gate
    if isinstance(ctx.payload, OrderPayload):
        lightning_address_ready(ctx.payload.order.buyer_invoice)
        order_price_ready(ctx.payload.order)
        known = gate.unless_waited(ctx.payload.order.buyer_invoice)
    trade_index_check(identity=ctx.identity, sender=ctx.sender, trade_index=ctx.trade_index, gate=known)
    if not isinstance(ctx.payload, OrderPayload):  # verify() already requires it
        raise SilentDrop("new-order without an order payload")
    maker = Maker(sender=ctx.sender, identity=ctx.identity, trade_index=ctx.trade_index, request_id=ctx.request_id)
    order_create(maker=maker, terms=ctx.payload.order, atomic=ctx.atomic)
