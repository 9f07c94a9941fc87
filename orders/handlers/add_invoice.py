"""`add-invoice` (docs/PROTOCOL.md §Add-invoice): the buyer sends (or replaces) its payout invoice."""

from nostrbridge.context import InboundContext, SilentDrop
from nostrbridge.protocol.payloads import PaymentRequestPayload
from orders.services.invoice import lightning_address_ready, order_add_invoice


def handle_add_invoice(ctx: InboundContext) -> None:
    if not isinstance(ctx.payload, PaymentRequestPayload):  # verify() already requires it
        raise SilentDrop("add-invoice without a payment_request payload")
    lightning_address_ready(ctx.payload.invoice)
    # The third element is ignored: the amount is the order's (docs/PROTOCOL.md §Add-invoice).
    order_add_invoice(
        order_id=ctx.order_id,
        sender=ctx.sender,
        invoice=ctx.payload.invoice,
        request_id=ctx.request_id,
        atomic=ctx.atomic,
    )
