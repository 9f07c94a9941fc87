"""`user-info` (docs/PROTOCOL.md §User-info): the reputation the node holds for the proved identity.

Read-only: no record is created and nothing is published. The intake already dropped any other
wrapper than `restore`, an `id` or a payload, and answered a bad identity proof or a missing
trade signature with `invalid_signature` (`nostrbridge.protocol.inbound`).
"""

from nostrbridge.context import InboundContext
from nostrbridge.outbox import enqueue_message
from nostrbridge.protocol.enums import Action, CantDoReason, MessageType
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.payloads import UserInfoPayload
from orders.services.traders import trader_user_info


def handle_user_info(ctx: InboundContext) -> None:
    if ctx.full_privacy:  # no identity proof: the trade key has no reputation of its own
        raise CantDo(CantDoReason.REPUTATION_IDENTITY_REQUIRED)
    info = trader_user_info(identity=ctx.identity)
    reply = Message.new(
        Action.USER_INFO, type=MessageType.RESTORE, request_id=ctx.request_id, payload=UserInfoPayload(info)
    )
    with ctx.atomic():
        enqueue_message(recipient_pubkey=ctx.sender, message=reply)
