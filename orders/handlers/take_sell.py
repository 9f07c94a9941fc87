"""`take-sell` (docs/PROTOCOL.md §Take): a buyer takes a sell order."""

from nostrbridge.context import InboundContext
from nostrbridge.protocol.payloads import AmountPayload, PaymentRequestPayload
from orders.services.invoice import lightning_address_ready
from orders.services.take import Taker, order_take_sell, take_price_ready
from orders.services.traders import trade_gate_read, trade_index_check


def handle_take_sell(ctx: InboundContext) -> None:
    gate = trade_gate_read(identity=ctx.identity, sender=ctx.sender)  # the ban and the index in one read
    gate.refuse_banned()  # before the index gate registers anyone
    fiat_amount, invoice = take_payload(ctx.payload)
    lightning_address_ready(invoice)
    order = take_price_ready(order_id=ctx.order_id)
    known = gate.unless_waited(invoice)
    trade_index_check(identity=ctx.identity, sender=ctx.sender, trade_index=ctx.trade_index, gate=known)
    taker = Taker(sender=ctx.sender, identity=ctx.identity, trade_index=ctx.trade_index, request_id=ctx.request_id)
    order_take_sell(
        order_id=ctx.order_id, taker=taker, fiat_amount=fiat_amount, invoice=invoice, atomic=ctx.atomic, loaded=order
    )


def take_payload(payload) -> tuple[int | None, str | None]:
    """(requested fiat amount, payout destination) from a take's payload.

    `amount` carries a range order's fiat amount; `payment_request` carries the destination
    and, as its third element, that amount. Any other payload means neither.
    """
    if isinstance(payload, AmountPayload):
        return payload.amount, None
    if isinstance(payload, PaymentRequestPayload):
        return payload.amount, payload.invoice
    return None, None
