"""Steps 2 and 3 of `export-reputation` and `import-reputation`, in mostrod's order
(docs/PROTOCOL.md §Export-reputation and §Import-reputation); step 1, the feature being on, is
each action's own."""

from typing import TypeVar

from nostrbridge.protocol.enums import CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.payloads import Payload

P = TypeVar("P", bound=Payload)


def reputation_request_payload(*, payload: Payload | None, payload_type: type[P], identity: str, sender: str) -> P:
    """The action's payload (else `invalid_payload`), from a proved identity (else
    `reputation_identity_required`): the account is always the proved identity."""
    if not isinstance(payload, payload_type):
        raise CantDo(CantDoReason.INVALID_PAYLOAD)
    if identity == sender:
        raise CantDo(CantDoReason.REPUTATION_IDENTITY_REQUIRED)
    return payload
