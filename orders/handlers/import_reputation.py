"""`import-reputation` (docs/PROTOCOL.md §Import-reputation): redeem an attestation from a trusted issuer."""

from nostrbridge.context import InboundContext
from orders.services.reputation_import import reputation_import


def handle_import_reputation(ctx: InboundContext) -> None:
    reputation_import(
        identity=ctx.identity, sender=ctx.sender, payload=ctx.payload, request_id=ctx.request_id, atomic=ctx.atomic
    )
