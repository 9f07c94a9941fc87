"""Simulated Mostro clients for handler tests: real wrapped events through the real pipeline.

A `TradeClient` builds protocol-v2 events exactly as mostro-core clients do (trade key,
identity proof, trade signature), stores them in the durable inbox, runs the dispatcher, and
reads back the node's replies by decrypting the outbox rows addressed to its trade keys.
No relay is involved; the end-to-end tests in tests/e2e use real relays and simnet.
"""

import itertools
import json
from dataclasses import dataclass, field

from nostrbridge.dispatch import process_inbound
from nostrbridge.inbox import inbox_claim, inbox_store
from nostrbridge.models import InboundEvent, OutboundMessage
from nostrbridge.node_identity import node_pubkey
from nostrbridge.outbox import node_keys
from nostrbridge.protocol.enums import Action, MessageType
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.nip01 import Event
from nostrbridge.protocol.transport import unwrap_v2, wrap_v2

_request_ids = itertools.count(1000)


@dataclass
class Reply:
    recipient: str
    message: Message

    @property
    def action(self) -> str:
        return self.message.action.value

    @property
    def payload(self):
        return self.message.payload

    @property
    def json(self) -> dict:
        return json.loads(self.message.to_json())


@dataclass
class TradeClient:
    name: str
    full_privacy: bool = False
    identity: Keys = field(default_factory=Keys.generate)
    trade_keys: dict[int, Keys] = field(default_factory=dict)
    seen_outbox_pk: int = 0

    def trade_key(self, index: int) -> Keys:
        if self.full_privacy:
            return self.trade_keys.setdefault(index, self.identity if index == 0 else Keys.generate())
        return self.trade_keys.setdefault(index, Keys.generate())

    def pubkey(self, index: int) -> str:
        return self.trade_key(index).public_key_hex

    def build(
        self,
        action: Action,
        *,
        index: int,
        order_id=None,
        payload=None,
        request_id: int | None = None,
        trade_index: int | None | str = "auto",
        type: MessageType = MessageType.ORDER,
        sign: bool = True,
    ) -> Event:
        if trade_index == "auto":
            trade_index = None if self.full_privacy else index
        message = Message.new(
            action,
            type=type,
            request_id=next(_request_ids) if request_id is None else request_id,
            trade_index=trade_index,
            id=order_id,
            payload=payload,
        )
        trade = self.trade_key(index)
        identity = None if self.full_privacy else self.identity
        return wrap_v2(message, trade, node_pubkey(), identity_keys=identity, sign=sign and not self.full_privacy)

    def send(self, action: Action, *, index: int, **kwargs) -> list[Reply]:
        """Deliver one message through inbox → dispatcher; return every new reply to this client."""
        deliver(self.build(action, index=index, **kwargs))
        return self.replies()

    def replies(self) -> list[Reply]:
        mine = {keys.public_key_hex: keys for keys in self.trade_keys.values()} | {
            self.identity.public_key_hex: self.identity
        }
        rows = OutboundMessage.objects.filter(
            pk__gt=self.seen_outbox_pk, kind=14, recipient_pubkey__in=list(mine)
        ).order_by("pk")
        out = []
        for row in rows:
            event = Event.from_json(row.event_json)
            unwrapped = unwrap_v2(event, mine[row.recipient_pubkey])
            out.append(Reply(recipient=row.recipient_pubkey, message=unwrapped.message))
        last = OutboundMessage.objects.order_by("-pk").values_list("pk", flat=True).first()
        self.seen_outbox_pk = last or 0
        return out


def deliver(event: Event, *, relay: str = "ws://test") -> str:
    """Store and process one event as the bridge would; return the inbox status."""
    inbox_store(items=[(relay, event.to_dict())])
    status = ""
    for pk in inbox_claim(worker_id="test"):
        status = process_inbound(pk)
    return status or InboundEvent.objects.get(event_id=event.id).status


def reset_seen(*clients: TradeClient) -> None:
    last = OutboundMessage.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    for client in clients:
        client.seen_outbox_pk = last


def node() -> Keys:
    return node_keys()
