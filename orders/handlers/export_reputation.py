"""`export-reputation` (docs/PROTOCOL.md §Export-reputation): the proved identity's native reputation,
attested for the destination it names."""

from nostrbridge.context import InboundContext
from orders.services.reputation_export import reputation_export


def handle_export_reputation(ctx: InboundContext) -> None:
    reputation_export(
        identity=ctx.identity, sender=ctx.sender, payload=ctx.payload, request_id=ctx.request_id, atomic=ctx.atomic
    )
