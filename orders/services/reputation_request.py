"""The first three checks of `export-reputation` and `import-reputation`, in mostrod's order
(upstream_after_0185.md §3.3 and §3.4, steps 1–3)."""

from nostrbridge.protocol.enums import CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.payloads import Payload


def reputation_request_check(
    *, enabled: bool, payload: Payload | None, payload_type: type[Payload], identity: str, sender: str
) -> None:
    """The feature on (`invalid_action`), the action's payload (`invalid_payload`), an identity
    proof (`reputation_identity_required`): the account is always the proved identity."""
    if not enabled:
        raise CantDo(CantDoReason.INVALID_ACTION)
    if not isinstance(payload, payload_type):
        raise CantDo(CantDoReason.INVALID_PAYLOAD)
    if identity == sender:
        raise CantDo(CantDoReason.REPUTATION_IDENTITY_REQUIRED)
