"""`restore-session` (docs/PROTOCOL.md §Restore-session): open orders and disputes of the sender's identity.

A handler of disputes because its reply reports both, and disputes is the lowest layer that
sees orders and disputes.

The reply never echoes the request_id (as mostrod). It is built and queued at once: the
query is indexed and bounded by the identity's own orders, so no background queue is needed.
"""

from disputes.selectors import restorable_disputes
from nostrbridge.context import InboundContext
from nostrbridge.outbox import enqueue_message
from nostrbridge.protocol.enums import Action, MessageType
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.payloads import RestoreDataPayload
from nostrbridge.protocol.structs import RestoreData
from orders.services.session import restorable_orders


def handle_restore_session(ctx: InboundContext) -> None:
    data = RestoreData(
        orders=restorable_orders(identity=ctx.identity), disputes=restorable_disputes(identity=ctx.identity)
    )
    message = Message.new(Action.RESTORE_SESSION, type=MessageType.RESTORE, payload=RestoreDataPayload(data))
    with ctx.atomic():
        enqueue_message(recipient_pubkey=ctx.sender, message=message)
