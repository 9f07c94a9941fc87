"""`add-bond-invoice` (docs/PROTOCOL.md §Bonds, Payout): the winner of a slash sends its payout invoice."""

from nostrbridge.context import InboundContext, SilentDrop
from nostrbridge.protocol.payloads import PaymentRequestPayload
from orders.bonds.payout import bond_payout_invoice_accept


def handle_add_bond_invoice(ctx: InboundContext) -> None:
    if not isinstance(ctx.payload, PaymentRequestPayload):  # verify() requires it from a client
        raise SilentDrop("add-bond-invoice without a payment_request payload")
    bond_payout_invoice_accept(order_id=ctx.order_id, sender=ctx.sender, invoice=ctx.payload.invoice, atomic=ctx.atomic)
