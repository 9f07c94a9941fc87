"""`take-buy` (docs/PROTOCOL.md §Take): a seller takes a buy order."""

from nostrbridge.context import InboundContext
from orders.handlers.take_sell import take_payload
from orders.services.take import Taker, order_take_buy, take_price_ready
from orders.services.traders import trade_gate_read, trade_index_check


def handle_take_buy(ctx: InboundContext) -> None:
    gate = trade_gate_read(identity=ctx.identity, sender=ctx.sender)  # the ban and the index in one read
    gate.refuse_banned()  # before the index gate registers anyone
    order = take_price_ready(order_id=ctx.order_id)
    trade_index_check(identity=ctx.identity, sender=ctx.sender, trade_index=ctx.trade_index, gate=gate)
    # A `payment_request` payload only contributes its third element (the range amount);
    # its invoice string is ignored, as the daemon does.
    fiat_amount, _ignored_invoice = take_payload(ctx.payload)
    taker = Taker(sender=ctx.sender, identity=ctx.identity, trade_index=ctx.trade_index, request_id=ctx.request_id)
    order_take_buy(order_id=ctx.order_id, taker=taker, fiat_amount=fiat_amount, atomic=ctx.atomic, loaded=order)
