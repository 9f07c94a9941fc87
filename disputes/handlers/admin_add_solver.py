"""`admin-add-solver` (docs/PROTOCOL.md §Admin-add-solver): the node identity registers a solver."""

from disputes.services import solver_add
from nostrbridge.context import InboundContext


def handle_admin_add_solver(ctx: InboundContext) -> None:
    solver_add(
        actor_pubkey=ctx.identity,
        payload=ctx.payload,
        request_id=ctx.request_id,
        reply_to=ctx.sender,
        atomic=ctx.atomic,
    )
