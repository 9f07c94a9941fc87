"""`rate-user` (docs/PROTOCOL.md §Rate-user): a party rates its counterparty once per order."""

from nostrbridge.context import InboundContext
from orders.services.rating import order_rate_user


def handle_rate_user(ctx: InboundContext) -> None:
    order_rate_user(
        order_id=ctx.order_id, sender=ctx.sender, request_id=ctx.request_id, payload=ctx.payload, atomic=ctx.atomic
    )
