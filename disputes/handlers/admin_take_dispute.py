"""`admin-take-dispute` (docs/PROTOCOL.md §Admin-take-dispute): the message `id` is the dispute id."""

from disputes.services import dispute_take
from nostrbridge.context import InboundContext


def handle_admin_take_dispute(ctx: InboundContext) -> None:
    # Authorised and answered by identity: the solver's reply goes to its identity key.
    dispute_take(
        dispute_id=ctx.order_id,
        actor_pubkey=ctx.identity,
        actor_trade_pubkey=ctx.sender,
        request_id=ctx.request_id,
        reply_to=ctx.identity,
        atomic=ctx.atomic,
    )
